"""A partitioned run that merges totals, not rows: each pod reduces its own rows (PodTask.reduce_span)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import InputError
from sim.modes.cluster import run_cluster
from sim.modes.common import prepare_workload
from sim.modes.partition import Partition, pod_tasks, run_pod
from sim.modes.partition_merge import Merger, Reduce
from sim.modes.partition_run import PodStore
from sim.report.cluster_totals import ClusterTotals
from sim.report.saturation import ArrivalSpan, SaturationStream
from tests.modes.test_partition import _cfg
from trace.source import workload_from_config

PART = Partition(4, "prefix_root")


def _setup(timing: bool):
    cfg = _cfg("report.exact_quantiles_max_requests=100")  # 300 requests: past it, so the run merges totals
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    return cfg, w


def _totals_equal(a: ClusterTotals, b: ClusterTotals) -> None:
    sa, sb = a.state(), b.state()
    assert sa[0].keys() == sb[0].keys() and sa[1] == sb[1]
    for k in sa[0]:
        assert np.array_equal(sa[0][k], sb[0][k]), k


@pytest.mark.parametrize("timing", [False, True])
def test_reducing_pods_return_the_totals_of_their_rows(timing):
    """Each pod's totals equal the totals of the rows it returns otherwise (a pod below a row block: one block,
    the same sums to the bit), it returns no row, and the merged totals are the row merge's, field by field."""
    cfg, w = _setup(timing)
    lay_cfg = run_cluster(cfg, w.head(1), "lru", "prefix_aware", timing=False).setup.layout
    span = ArrivalSpan.of(w.arrival_ms / 1000.0)
    reduce = Reduce(cfg, timing, lay_cfg.n_workers, lay_cfg.topo.n_racks, lay_cfg.workers_per_rack, span)
    by_pods = Merger(len(w), reduce)
    by_rows = ClusterTotals(cfg, timing=timing, n_workers=lay_cfg.n_workers, workers_per_rack=lay_cfg.workers_per_rack,
                            n_racks=lay_cfg.topo.n_racks, arrival_s=w.arrival_ms / 1000.0)  # the rows' totals
    rows_tasks = pod_tasks(cfg, w, PART, "lru", "prefix_aware", timing)
    reduce_tasks = pod_tasks(cfg, w, PART, "lru", "prefix_aware", timing, reduce_span=span)
    for rt, pt in zip(rows_tasks, reduce_tasks, strict=True):
        assert rt.reduce_span is None and pt.reduce_span == span
        r, p = run_pod(rt), run_pod(pt)
        assert p.arrays == {} and p.totals is not None
        assert r.totals is None and r.arrays["worker"].shape == (len(rt.index),)
        # the pod's own totals, from its rows
        own = ClusterTotals(cfg, timing=timing, n_workers=p.scalars["workers_per_pod"],
                            workers_per_rack=lay_cfg.workers_per_rack, n_racks=len(p.totals[0]["busy_per_rack"]),
                            arrival_s=span)
        own.add(r.arrays, w.arrival_ms[r.index] / 1000.0)
        mine = ClusterTotals(cfg, timing=timing, n_workers=own.requests_per_worker.size,
                             workers_per_rack=lay_cfg.workers_per_rack, n_racks=own.requests_per_rack.size,
                             arrival_s=span)
        mine.merge_state(*p.totals, worker_offset=0)
        _totals_equal(own, mine)
        offset = r.pod * r.scalars["workers_per_pod"]  # the pod's workers in the whole deployment
        by_rows.add({**r.arrays, "worker": r.arrays["worker"] + offset}, w.arrival_ms[r.index] / 1000.0)
        by_pods.add(p)
    merged = by_pods.totals
    assert merged is not None
    _totals_equal(by_rows, merged)  # pod by pod both ways: the same sums in the same order
    assert merged.requests == len(w) and merged.requests_per_rack.sum() == len(w)
    assert (merged.requests_per_worker > 0).sum() > PART.pods  # the pods' workers at their offsets
    if timing:
        assert merged.sink.dist_ms("ttft") == by_rows.sink.dist_ms("ttft")
        assert merged.saturation.result(0.1, 4) == by_rows.saturation.result(0.1, 4)


def test_a_pod_of_a_run_merging_totals_holds_a_block_of_rows(monkeypatch):
    """With 50-request row blocks a reducing pod holds at most its open blocks, not a row a request."""
    import sim.modes.result_rows as rr

    monkeypatch.setattr(rr, "ROW_BLOCK", 50)
    cfg, w = _setup(False)
    span = ArrivalSpan.of(w.arrival_ms / 1000.0)
    res = run_cluster(cfg, w, "lru", "prefix_aware", timing=False, whole_span=span, stream_rows=True)
    assert res.worker is None and res.most_blocks == 1 and res.totals.requests == len(w)
    timed = run_cluster(cfg, w, "lru", "prefix_aware", timing=True, whole_span=span, stream_rows=True)
    kept = run_cluster(cfg, w, "lru", "prefix_aware", timing=True, whole_span=span)  # rows for a per-request file
    assert kept.ttft_s is not None and kept.totals.requests == len(w) and kept.totals.saturation.span == span
    assert timed.ttft_s is None and 1 <= timed.most_blocks < len(w) // 50 and timed.totals.requests == len(w)
    assert timed.totals.saturation.span == span


def test_a_stored_reducing_pod_loads_as_it_was_saved(tmp_path):
    cfg, w = _setup(True)
    task = pod_tasks(cfg, w, PART, "lru", "prefix_aware", True, reduce_span=ArrivalSpan.of(w.arrival_ms / 1000.0))[0]
    r = run_pod(task)
    store = PodStore(tmp_path)
    store.save("k1", r)
    back = store.load("k1")
    assert back is not None and back.arrays == {} and back.totals is not None
    assert back.totals[1] == r.totals[1] and back.totals[0].keys() == r.totals[0].keys()
    for k, v in r.totals[0].items():
        assert np.array_equal(back.totals[0][k], v), k


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 100.0), st.one_of(st.floats(0.0, 50.0), st.just(np.inf)),
                          st.integers(0, 3)), min_size=1, max_size=80))
def test_saturation_streams_of_parts_merge_into_the_whole(rows):
    """Requests split among parts, each part's stream on the whole run's span: the merged stream reads as the
    whole one (sums up to their order)."""
    arr = np.sort(np.array([r[0] for r in rows]))
    ttft = np.array([r[1] for r in rows])
    part = np.array([r[2] for r in rows])
    whole = SaturationStream(arr)
    whole.add(arr, ttft)
    span = ArrivalSpan.of(arr)
    merged = SaturationStream(span)
    for k in range(4):
        s = SaturationStream(span)
        s.add(arr[part == k], ttft[part == k])
        merged.merge(SaturationStream.from_state(*s.state()))
    assert merged.served == whole.served and merged.served_sum == pytest.approx(whole.served_sum)
    assert merged.wait_s == pytest.approx(whole.wait_s)
    if whole.trend:
        for a, b in ((merged.early, whole.early), (merged.late, whole.late)):
            assert np.array_equal(np.sort(np.concatenate(a)), np.sort(np.concatenate(b)))
    # the figures the class is read from (the class itself could flip on a threshold met within rounding)
    a, b = merged.result(0.3, 2), whole.result(0.3, 2)
    assert a.keys() == b.keys()
    for k in a.keys() - {"load_class"}:
        assert a[k] == pytest.approx(b[k]), k


def test_saturation_streams_of_different_runs_do_not_merge():
    a = SaturationStream(ArrivalSpan(0.0, 10.0, 100))
    with pytest.raises(ValueError, match="different runs"):
        a.merge(SaturationStream(ArrivalSpan(0.0, 11.0, 100)))


def test_the_estimate_of_a_run_merging_totals_counts_a_block_of_rows_a_pod(monkeypatch):
    """Hit-rate-only, a reducing pod holds one block of rows (50 here), so its part of the estimate drops by the
    rest of its rows; timed, the blocks the run's in-flight span covers (a row a request without a span)."""
    import sim.modes.result_rows as rr
    from sim.modes.memory import AT_ONCE, MERGED_PER_REQ_B
    from sim.modes.partition import pod_sizes
    from sim.modes.result_rows import CLUSTER_COLUMNS, row_bytes
    from sim.modes.runner import _partition_estimate

    monkeypatch.setattr(rr, "ROW_BLOCK", 50)
    cfg, w = _setup(False)
    cap = 10 ** 6
    biggest = max(s.requests for s in pod_sizes(w, PART))
    part = AT_ONCE + "per-request results"
    rows = _partition_estimate(w, PART, cap, True, False, 1, True).parts[part]
    reduced = _partition_estimate(w, PART, cap, True, False, 1, False).parts[part]
    assert biggest > 50 and rows - reduced == (biggest - 50) * row_bytes(CLUSTER_COLUMNS, False)
    timed = [_partition_estimate(w, PART, cap, True, True, 1, r).parts[part] for r in (True, False)]
    assert timed[0] == timed[1]
    spanned = _partition_estimate(w, PART, cap, True, True, 1, False, rows_span=20).parts[part]
    assert biggest > 20 + 2 * 50 and timed[0] - spanned == (biggest - 120) * row_bytes(CLUSTER_COLUMNS, True)
    # a pod merging rows keeps them all, span or not
    assert _partition_estimate(w, PART, cap, True, True, 1, True, rows_span=20).parts[part] == timed[0]
    # a per-request file past the limit: the pods keep their rows, the driver reads back a block and its table
    spilled = _partition_estimate(w, PART, cap, True, False, 1, False, pod_rows=True)
    assert spilled.parts[part] == rows and "merged per-request results" not in spilled.parts
    assert spilled.parts["per-request file block"] == 2 * 50 * MERGED_PER_REQ_B


def test_a_timed_reducing_pod_holds_no_more_rows_than_the_runs_span_covers(monkeypatch):
    """The estimate counts a timed pod merging totals as holding the blocks the whole run's in-flight span covers
    (its requests are a subset of the run's, so fewer arrive within a request's stay): each pod, replayed as
    run_pod replays it with 10-request blocks, holds no more; and the run's check passes that span on."""
    import sim.modes.result_rows as rr
    from sim.config import Config
    from sim.modes.load import node_pools, pre_run
    from sim.modes.memory import AT_ONCE
    from sim.modes.runner import _cluster_need, _in_flight_span, _partition_estimate
    from sim.timing.topology import Topology

    monkeypatch.setattr(rr, "ROW_BLOCK", 10)
    cfg = _cfg("report.exact_quantiles_max_requests=100", "synthetic.rate_per_s=0.2")  # a light load: a short span
    w, ctx = prepare_workload(cfg, workload_from_config(cfg)[0])
    lay = run_cluster(cfg, w.head(1), "lru", "prefix_aware", timing=False).setup
    rows_span = _in_flight_span(cfg, w, pre_run(cfg, w, node_pools(lay.layout.n_workers, lay.node)))[0]
    assert 0 < rows_span + 2 * 10 < max(len(t.index) for t in pod_tasks(cfg, w, PART, "lru", "prefix_aware", True))
    span = ArrivalSpan.of(w.arrival_ms / 1000.0)
    for t in pod_tasks(cfg, w, PART, "lru", "prefix_aware", True, reduce_span=span):
        res = run_cluster(Config.model_validate(t.config), t.workload, "lru", "prefix_aware", timing=True,
                          whole_span=span, stream_rows=True)
        assert res.ttft_s is None and res.totals.requests == len(t.index)
        assert res.most_blocks * 10 <= rows_span + 2 * 10, t.pod
    # the run's check counts that span for its timed pods merging totals
    need = _cluster_need(cfg, w, ctx, Topology.from_config(cfg), ["lru"], ["prefix_aware"], True, PART, rows=False)
    part = AT_ONCE + "per-request results"
    got = need.est.parts[part]
    assert got == _partition_estimate(w, PART, 10 ** 9, False, True, 1, False, rows_span=rows_span).parts[part]
    assert got < _partition_estimate(w, PART, 10 ** 9, False, True, 1, False).parts[part]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_per_request_file_of_pods_past_the_limit_is_written_from_their_spilled_rows(suffix, tmp_path, monkeypatch):
    """Past the exact-quantile limit the pods' rows are not merged in memory: each pod's go to a scratch folder
    as it finishes and the file is written from there a block (7 requests here) at a time, in request order -
    the same file as the in-memory merge writes; the scratch folder is removed."""
    import json
    import tempfile

    import pyarrow.parquet as pq

    import main
    import sim.modes.partition_run as partition_run
    import sim.report.requests as requests_mod
    from tests.report.test_sketched_runs import SMALL

    monkeypatch.setattr(partition_run, "ROW_BLOCK", 7)
    blocks: list[int] = []
    read_back = Merger.row_blocks

    def spy(self, size):
        for b in read_back(self, size):
            blocks.append(b.n)
            yield b

    monkeypatch.setattr(Merger, "row_blocks", spy)
    monkeypatch.setattr(requests_mod, "CSV_CHUNK_ROWS", 5)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = {}
    for name, extra in (("rows", []), ("spilled", ["--set", "report.exact_quantiles_max_requests=1"])):
        f, rj = tmp_path / f"{name}{suffix}", tmp_path / f"{name}.json"
        code = main.main(["run", "--mode", "cluster", "--trace", str(SMALL), "--preset", "smoke", "--pods", "2",
                          "--set", "cluster.remote_ssd_capacity_gib=0",
                          "--no-plot", "--quiet", "--report-json", str(rj), "--requests-out", str(f), *extra])
        assert code == 0
        out[name] = (f, json.loads(rj.read_text()))
    (f_rows, r_rows), (f_sp, r_sp) = out["rows"], out["spilled"]
    assert r_sp["metrics"]["quantiles"].startswith("sketch") and not r_rows["metrics"]["quantiles"].startswith("sketch")
    if suffix == ".csv":
        assert f_sp.read_bytes() == f_rows.read_bytes()
    else:
        assert pq.read_table(f_sp).equals(pq.read_table(f_rows))
    n = pq.read_table(f_sp).num_rows if suffix == ".parquet" else len(f_sp.read_text().splitlines()) - 1
    assert n > 2 * 7 and sum(blocks) == n and max(blocks) == 7  # the spilled run wrote it, a block at a time
    assert list(scratch.iterdir()) == []  # the spilled rows are gone
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_spilled_per_request_file_without_scratch_room_is_refused_up_front(tmp_path, monkeypatch, capsys):
    """The spilled rows must fit the scratch folder: else one line naming the flag, the space and TMPDIR, exit 2,
    before any pod runs, and no file or report left."""
    import collections

    import main
    import sim.modes.partition as partition
    import sim.modes.partition_run as partition_run
    from tests.report.test_sketched_runs import SMALL

    assert partition_run.spill_bytes(1000) == 1000 * (168 + 8)  # 21 columns of 8 bytes (latencies too), the index
    usage = collections.namedtuple("usage", "total used free")
    free = [1000]
    monkeypatch.setattr(partition_run.shutil, "disk_usage", lambda _p: usage(10 ** 9, 10 ** 9, free[0]))
    for m in (partition, partition_run):
        monkeypatch.setattr(m, "run_pod", lambda *_a, **_k: pytest.fail("a pod ran"))
    f, rj = tmp_path / "r.csv", tmp_path / "r.json"
    code = main.main(["run", "--mode", "cluster", "--trace", str(SMALL), "--preset", "smoke", "--pods", "2",
                      "--set", "cluster.remote_ssd_capacity_gib=0", "--set", "report.exact_quantiles_max_requests=1",
                      "--no-plot", "--quiet", "--report-json", str(rj), "--requests-out", str(f)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: --requests-out: ") and "TMPDIR" in err[0] and "GiB free" in err[0]
    assert not f.exists() and not rj.exists()
    free[0] = partition_run.spill_bytes(10 ** 6)  # just enough room
    partition_run.check_scratch(10 ** 6)
    free[0] -= 1
    with pytest.raises(InputError, match="TMPDIR"):
        partition_run.check_scratch(10 ** 6)
