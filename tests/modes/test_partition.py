"""Cluster mode split into pods (--pods K): partition, independent pods, exact merge, kept pods, refusals."""
import json
import os
import re
import signal

import numpy as np
import pytest

from sim.config import load_config
from sim.errors import InputError
from sim.modes.cluster import run_cluster
from sim.modes.common import prepare_workload
from sim.modes.partition import Partition, assign_pods, pod_config, pod_sizes
from sim.modes.partition_run import PodStore, in_process
from sim.modes.runner import run_mode
from tests.golden.harness import diff
from trace.source import workload_from_config

SETS = ["model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=8", "cluster.racks=4",
        "cluster.gpus_per_rack=16", "cluster.remote_ssd_capacity_gib=0", "hardware.hbm.capacity_gib=0.05",
        "hardware.eic.capacity_gib=0.2", "synthetic.requests=300", "synthetic.sessions=30", "cache.engine=python"]
WALL = ("wall_s", "sim_speed_req_s", "started_utc")


def _cfg(*extra):
    return load_config(overrides=SETS + list(extra))


def _same(a: dict, b: dict, rel: float = 0.0) -> list[str]:
    """Field-by-field differences of two reports (floats within `rel`), wall-clock fields aside."""
    a, b = json.loads(json.dumps(a, default=str)), json.loads(json.dumps(b, default=str))
    return [d for d in diff(a, b, rel=rel) if not any(w in d for w in WALL)]


@pytest.mark.parametrize("timing", [False, True])
def test_one_pod_is_the_unpartitioned_run(timing):
    # K = 1: the merge path (summaries, arrays put back in order, histogram) rebuilds the direct report
    cfg = _cfg()
    a = run_mode(cfg, "cluster", timing=timing)
    b = run_mode(cfg, "cluster", timing=timing, partition=Partition(1))
    b.pop("partition")
    assert _same(a, b) == []


def test_pods_are_independent_clusters_and_merge_by_sums():
    cfg = _cfg()
    part = Partition(2, "session")
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    pods = assign_pods(w, part)
    # a session never spans pods; both pods get traffic; the assignment is a fixed function
    for s in np.unique(w.session_id):
        assert len(np.unique(pods[w.session_id == s])) == 1
    assert set(pods.tolist()) == {0, 1}
    assert (assign_pods(w, part) == pods).all()
    # each pod by hand: a 2-rack cluster of its own with only its requests
    hits = np.zeros((len(w), 6), dtype=np.int64)
    worker = np.zeros(len(w), dtype=np.int64)
    evictions = 0
    for k in range(2):
        idx = np.flatnonzero(pods == k)
        pc = pod_config(cfg, part, k)
        assert pc.cluster.racks == 2 and pc.seed == cfg.seed + k
        r = run_cluster(pc, w.select(idx), "lru", "prefix_aware", timing=False)
        hits[idx] = r.hit_tokens
        worker[idx] = r.worker + k * r.setup.layout.n_workers
        evictions += sum(t["evictions"] for t in r.cache_summary()["tiers"].values())
    rep = run_mode(cfg, "cluster", timing=False, partition=part)
    m = rep["metrics"]
    assert m["hit_rate"] == pytest.approx(hits.sum() / w.input_tokens.sum(), abs=0)
    assert m["evictions"] == evictions
    assert m["workers"] == 64 and m["racks"] == 4
    assert m["skew"]["worker"]["requests"]["max"] == np.bincount(worker).max()
    assert rep["partition"] == {"pods": 2, "by": "session", "racks_per_pod": 2}
    # the per-request rows are the pods' rows in request order
    tables: list = []
    run_mode(cfg, "cluster", timing=False, partition=part, requests=tables)
    assert (tables[0].columns["worker"] == worker).all()
    assert (tables[0].columns["request_id"] == np.arange(len(w))).all()


@pytest.mark.parametrize("engine,timing", [("python", False), ("auto", False), ("auto", True)])
def test_a_pod_in_parent_form_replays_like_the_expanded_pod(engine, timing):
    """A pod of a compact workload stays in parent form (re-parented, dense ids: trace.reparent.subset) and
    replays exactly as its expanded rows with the original ids (the old path)."""
    cfg = _cfg(f"cache.engine={engine}")
    part = Partition(2, "session")
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    assert w.compact
    pods = assign_pods(w, part)
    for k in range(2):
        idx = np.flatnonzero(pods == k)
        sub, ref = w.select(idx), w.expanded().select(idx)
        assert sub.compact and not ref.compact
        pc = pod_config(cfg, part, k)
        a = run_cluster(pc, sub, "lru", "prefix_aware", timing=timing)
        b = run_cluster(pc, ref, "lru", "prefix_aware", timing=timing)
        assert (a.hit_tokens == b.hit_tokens).all() and (a.worker == b.worker).all()
        assert a.cache_summary() == b.cache_summary()
        if timing:
            assert (a.ttft_s == b.ttft_s).all()


def test_pods_fit_a_memory_bound_the_whole_cluster_does_not(monkeypatch, capsys):
    """The estimate of a partitioned run counts the largest pod once per pod at once (plus the driver's
    copies), so a bound between the two estimates refuses the whole cluster and runs the pods."""
    from sim.modes.memory import GiB, WorkloadSize, run_estimate
    from sim.modes.runner import _partition_estimate
    from sim.policies.base import AccessContext

    cfg = _cfg("cache.engine=auto", "hardware.hbm.capacity_gib=4", "hardware.eic.capacity_gib=16")
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    key_bound = AccessContext.from_workload(w).key_bound
    cap = 10 * key_bound  # the whole trace stays resident, as at 102,400 GPUs
    whole = run_estimate(w, mode="cluster", timing=False, per_access=False, slots=key_bound, cluster_compiled=True)
    one = _partition_estimate(w, Partition(4), cap, True, False, 1, True)
    two = _partition_estimate(w, Partition(4, at_once=2), cap, True, False, 1, True)
    assert one.total < whole.total < two.total
    # the largest pod's records and slots: about a quarter of the whole (sessions hash to pods unevenly)
    sizes = [s.own_blocks for s in pod_sizes(w, Partition(4))]
    assert sum(sizes) == w.prefix_blocks().n_own() and max(sizes) < 0.5 * sum(sizes)
    assert isinstance(WorkloadSize.of(w), WorkloadSize) and WorkloadSize.of(w).requests == len(w)
    # the merged arrays' bytes per request, as the estimate counts them
    from sim.modes.memory import MERGED_PER_REQ_B
    from sim.modes.partition_merge import ARRAYS

    res = run_cluster(cfg, w.head(10), "lru", "prefix_aware", timing=False)
    assert MERGED_PER_REQ_B == sum(getattr(res, k).nbytes for k in ARRAYS) // 10
    # ... and a reduced merge's: the cover count (TTFT goes into the totals' saturation stream)
    from sim.modes.memory import REDUCED_PER_REQ_B
    from sim.modes.partition_merge import Merger

    assert REDUCED_PER_REQ_B == Merger(10).seen.itemsize
    reduced = _partition_estimate(w, Partition(4), cap, True, False, 1, False)
    assert one.total - reduced.total == len(w) * (MERGED_PER_REQ_B - REDUCED_PER_REQ_B)
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", repr((one.total + whole.total) / 2 / GiB))
    # the refusal names the fewest pods that fit, one at a time (cluster.remote_ssd_capacity_gib is 0 already)
    with pytest.raises(InputError, match=r"split the cluster into pods: --pods (\d+) fits \((\d+\.\d) GiB") as e:
        run_mode(cfg, "cluster", timing=False)
    assert e.value.where == "--mode cluster"
    k = int(re.search(r"--pods (\d+) fits", str(e.value)).group(1))
    assert k in (2, 4)
    rep = run_mode(cfg, "cluster", timing=False, partition=Partition(k))
    assert rep["partition"]["pods"] == k
    if k == 4:  # fewer pods do not fit
        with pytest.raises(InputError, match="in 2 pods"):
            run_mode(cfg, "cluster", timing=False, partition=Partition(2))
    else:  # more pods fit too
        assert run_mode(cfg, "cluster", timing=False, partition=Partition(4))["partition"]["pods"] == 4
    # with a remote SSD pool the pods cannot share, the refusal says to drop it
    with pytest.raises(InputError, match=r"--pods \d+ --set cluster.remote_ssd_capacity_gib=0 fits"):
        run_mode(_cfg("cache.engine=auto", "hardware.hbm.capacity_gib=4", "hardware.eic.capacity_gib=16",
                      "cluster.remote_ssd_capacity_gib=1"), "cluster", timing=False)
    with pytest.raises(InputError, match=r"in 4 pods \(2 at once\).*use more pods or fewer --workers"):
        run_mode(cfg, "cluster", timing=False, partition=Partition(4, at_once=2))


def test_the_fewest_pods_that_fit_are_found_among_the_divisors_of_the_racks(monkeypatch):
    from sim.modes.memory import BASE_B, Estimate, GiB
    from sim.modes.runner import _pods_that_fit

    cfg = _cfg("cluster.racks=12", "cluster.gpus_per_rack=8")
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    asked = []

    def estimate(part, assignment) -> Estimate:  # 12 GiB over the pods: 6, 4, 3, 2 and 1 GiB
        assert len(assignment) == len(w) and assignment.max() < part.pods and part.at_once == 1
        asked.append(part.pods)
        e = Estimate()
        e.add("pods", 12 * GiB / part.pods)
        return e

    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "3.5")  # every estimate also counts the interpreter's BASE_B
    assert _pods_that_fit(cfg, estimate, w) == (4, 3 * GiB + BASE_B)
    assert len(asked) <= 3  # a binary search over 2, 3, 4, 6, 12
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "6.5")
    assert _pods_that_fit(cfg, estimate, w) == (2, 6 * GiB + BASE_B)
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", "0.5")
    assert _pods_that_fit(cfg, estimate, w) is None


def test_merger_takes_pods_in_any_order_and_refuses_a_bad_cover():
    """Merger: the pods' rows land at their requests whatever order pods finish in; a request in no pod
    or in two is refused, not reported."""
    from sim.modes.partition_merge import ARRAYS, Merger, PodResult

    def pod(k: int, index: list[int]) -> PodResult:
        idx = np.array(index, dtype=np.int64)
        arrays = {a: (idx * 10 + k).astype(float) for a in ARRAYS}
        arrays["worker"] = np.full(len(idx), 1, dtype=np.int64)
        summary = {"eic_blocks": 1, "ssd_blocks": 2, "hits": 1}
        return PodResult(k, f"p{k}", idx, arrays, summary, {"b": 1.0}, {"sim_time_s": 1.0 + k, "wall_s": 0.0,
                         "preemptions": 0, "workers_per_pod": 4}, {}, {})

    m = Merger(5)
    m.add(pod(1, [1, 4]))
    m.add(pod(0, [0, 2, 3]))
    r = m.result(policy="lru", router="r", timing=False, setup=None, workload=None, wall_s=0.0)
    assert r.ttft_s.tolist() == [0.0, 11.0, 20.0, 30.0, 41.0]
    assert r.worker.tolist() == [1, 5, 1, 1, 5]  # pod 1's workers numbered after pod 0's 4
    assert r.cache == {"eic_blocks": 1, "ssd_blocks": 2, "hits": 2} and r.network == {"b": 2.0}
    assert r.sim_time_s == 2.0 and not m.pods[0].arrays  # the pod's arrays were moved, not kept
    # latencies NaN in every pod (hit-rate-only) are held as one view; NaN in one pod only stay NaN there
    m = Merger(5)
    a, b = pod(0, [0, 2, 3]), pod(1, [1, 4])
    a.arrays["ttft_s"] = a.arrays["tpot_s"] = np.full(3, np.nan)
    b.arrays["tpot_s"] = np.full(2, np.nan)
    m.add(a)
    m.add(b)
    r = m.result(policy="lru", router="r", timing=False, setup=None, workload=None, wall_s=0.0)
    assert np.isnan(r.tpot_s).all() and r.tpot_s.shape == (5,) and r.tpot_s.base is not None
    assert np.array_equal(r.ttft_s, [np.nan, 11.0, np.nan, np.nan, 41.0], equal_nan=True)
    for pods in ([[0, 1, 2], [3]], [[0, 1, 2, 3], [3, 4]]):
        m = Merger(5)
        for k, idx in enumerate(pods):
            m.add(pod(k, idx))
        with pytest.raises(ValueError, match="cover the workload once"):
            m.result(policy="lru", router="r", timing=False, setup=None, workload=None, wall_s=0.0)


@pytest.mark.parametrize("timing", [False, True])
def test_a_reduced_merge_reports_what_the_merged_rows_report(timing):
    """Past the exact-quantile threshold and without a per-request file, pods are merged into totals
    (sim.report.cluster_totals) and TTFT only: the report equals the merged rows' one, up to float sums
    taken pod by pod (the network share, the sketch's served means)."""
    cfg = _cfg("report.exact_quantiles_max_requests=100")
    part = Partition(4, "prefix_root")
    reduced = run_mode(cfg, "cluster", timing=timing, partition=part)
    tables: list = []
    rows = run_mode(cfg, "cluster", timing=timing, partition=part, requests=tables)
    assert _same(reduced, rows, rel=1e-12) == []
    assert reduced["metrics"]["quantiles" if timing else "hit_rate"] is not None
    if timing:
        assert reduced["metrics"]["quantiles"].startswith("sketch")


def test_the_reduced_merger_sums_pods_at_their_offsets():
    """Two hand-made pods of 2 workers (1 rack each), each reducing its rows into totals of its own: per-worker
    and per-rack counts land at the pod's offset, the SLO count, network and TTFT sums add, the saturation
    check is fed, and no value a request stays."""
    from sim.modes.partition_merge import Merger, PodResult, Reduce
    from sim.report.cluster_totals import ClusterTotals
    from sim.report.saturation import ArrivalSpan

    cfg = _cfg("slo.ttft_ms=1000", "slo.tpot_ms=100", "report.exact_quantiles_max_requests=1")
    arrival_s = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    span = ArrivalSpan.of(arrival_s)

    def pod(k: int, index: list[int], worker: list[int], ttft: list[float]) -> PodResult:
        idx = np.array(index, dtype=np.int64)
        n = len(idx)
        hits = np.zeros((n, 6), dtype=np.int64)
        hits[:, 0] = 16
        arrays = {"hit_blocks": hits // 16, "hit_tokens": hits, "worker": np.array(worker, dtype=np.int64),
                  "net_s": np.full(n, 0.25), "queue_s": np.zeros(n), "prefill_s": np.zeros(n),
                  "ttft_s": np.array(ttft), "tpot_s": np.full(n, 0.05), "e2e_s": np.ones(n), "busy_s": np.full(n, 2.0),
                  "recomputed_tokens": np.zeros(n, dtype=np.int64)}
        own = ClusterTotals(cfg, timing=True, n_workers=2, workers_per_rack=2, n_racks=1, arrival_s=span)
        own.add(arrays, arrival_s[idx])
        return PodResult(k, f"p{k}", idx, {}, {"eic_blocks": 1, "ssd_blocks": 0}, {}, {"sim_time_s": 1.0,
                         "wall_s": 0.0, "preemptions": 0, "workers_per_pod": 2}, {}, {}, totals=own.state())

    m = Merger(5, Reduce(cfg, True, n_workers=4, n_racks=2, workers_per_rack=2, span=span))
    m.add(pod(1, [1, 4], [0, 0], [0.5, 2.0]))  # 2.0 s misses the 1 s TTFT target
    m.add(pod(0, [0, 2, 3], [1, 1, 0], [0.1, 0.2, 0.3]))
    r = m.result(policy="lru", router="r", timing=True, setup=None, workload=None, wall_s=0.0)
    t = r.totals
    assert t.requests_per_worker.tolist() == [1, 2, 2, 0] and t.busy_per_worker.tolist() == [2.0, 4.0, 4.0, 0.0]
    assert t.requests_per_rack.tolist() == [3, 2] and t.busy_per_rack.tolist() == [6.0, 4.0]
    assert t.hit_tokens.tolist() == [80, 0, 0, 0, 0, 0] and t.hit_blocks[0] == 5
    assert (t.requests, t.slo_met, t.net_sum_s) == (5, 4, 1.25)
    assert t.ttft_sum_s == pytest.approx(3.1) and (t.saturation.served, t.saturation.served_sum) == (5, t.ttft_sum_s)
    assert r.ttft_s is None and r.hit_tokens is None and r.worker is None
    assert t.sink.dist_ms("ttft")["p50"] == pytest.approx(300.0, rel=0.01)
    # a pod of rows does not go into a merge of totals, nor a pod of totals into one of rows
    with pytest.raises(ValueError, match="brought rows"):
        m.add(PodResult(2, "p2", np.zeros(0, np.int64), {"worker": np.zeros(0, np.int64)}, {}, {},
                        {"workers_per_pod": 2}, {}, {}))
    with pytest.raises(ValueError, match="brought totals"):
        Merger(5).add(pod(0, [0], [0], [0.1]))


def test_in_process_pods_report_progress_inside_each_pod():
    cfg = _cfg()
    calls: list[tuple[str, int, int]] = []
    run_mode(cfg, "cluster", timing=False, partition=Partition(2), progress=lambda *a: calls.append(a))
    done = [c[1] for c in calls]
    assert done == sorted(done) and done[-1] == 300 and all(c[2] == 300 for c in calls)
    sizes = np.bincount(assign_pods(prepare_workload(cfg, workload_from_config(cfg)[0])[0], Partition(2)))
    assert len(set(done) - {0, int(sizes[0]), 300}) > 0  # counts from inside a pod, not only pod ends


def test_pods_on_the_local_pool_equal_the_single_process_run():
    from experiments.pods import pod_runner

    cfg = _cfg()
    part = Partition(2, "prefix_root")
    ref = run_mode(cfg, "cluster", timing=True, partition=part, pod_runner=in_process)
    par = run_mode(cfg, "cluster", timing=True, partition=part, pod_runner=pod_runner("local", 2))
    assert _same(ref, par) == []
    assert ref["metrics"]["ttft_ms"]["p99"] is not None


def test_pods_on_ray_equal_the_single_process_run():
    pytest.importorskip("ray", reason="ray is an optional extra (pip install 'ray>=2.9')")
    from experiments.pods import pod_runner

    cfg = _cfg()
    part = Partition(2)
    ref = run_mode(cfg, "cluster", timing=False, partition=part)
    par = run_mode(cfg, "cluster", timing=False, partition=part, pod_runner=pod_runner("ray", 2))
    assert _same(ref, par) == []


def test_finished_pods_are_kept_and_reused_and_a_failed_pod_is_named(tmp_path):
    cfg = _cfg()
    part = Partition(2)
    store = PodStore(tmp_path / "pods")
    calls: list[str] = []

    def pod1_dies(tasks, on_result):
        for t in tasks:
            calls.append(t.task_id)
            if t.pod == 1:
                on_result({"task_id": t.task_id, "status": "failed", "error": "worker process died twice"})
            else:
                in_process([t], on_result)

    with pytest.raises(InputError, match=r"pod 1 \(prefix_aware/lru/pod1, [\d,]+ requests\) failed: worker process "
                                         r"died twice; the 1 finished pod\(s\) are kept in"):
        run_mode(cfg, "cluster", timing=False, partition=part, pod_runner=pod1_dies, pod_store=store)
    assert len(list((tmp_path / "pods").glob("pod-*.npz"))) == 1
    calls.clear()
    rerun = run_mode(cfg, "cluster", timing=False, partition=part, pod_runner=_record(calls), pod_store=store)
    assert calls == ["prefix_aware/lru/pod1"]  # pod 0 came from its file
    assert _same(rerun, run_mode(cfg, "cluster", timing=False, partition=part)) == []
    # a damaged pod file is not trusted: that pod runs again
    for f in (tmp_path / "pods").glob("pod-*.npz"):
        f.write_bytes(b"garbage")
    calls.clear()
    run_mode(cfg, "cluster", timing=False, partition=part, pod_runner=_record(calls), pod_store=store)
    assert sorted(calls) == ["prefix_aware/lru/pod0", "prefix_aware/lru/pod1"]


def _record(calls):
    def run(tasks, on_result):
        calls.extend(t.task_id for t in tasks)
        in_process(tasks, on_result)
    return run


def test_partitions_that_would_share_state_are_refused():
    with pytest.raises(InputError, match="3 pods cannot split cluster.racks = 4"):
        run_mode(_cfg(), "cluster", partition=Partition(3))
    with pytest.raises(InputError, match="remote_ssd_capacity_gib = 64 is one pool every rack shares"):
        run_mode(_cfg("cluster.remote_ssd_capacity_gib=64"), "cluster", partition=Partition(2))
    with pytest.raises(InputError, match="pods split cluster mode only"):
        run_mode(_cfg(), "single", partition=Partition(2))


def test_cli_pods_keeps_pods_in_out_and_refuses_pod_flags_without_pods(tmp_path, capsys):
    from sim.cli import main

    sets = [a for s in SETS for a in ("--set", s)]
    out = tmp_path / "run"
    assert main(["run", "--mode", "cluster", *sets, "--hit-rate-only", "--pods", "2", "--out", str(out),
                 "--no-plot", "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["partition"]["pods"] == 2 and len(list((out / "pods").glob("pod-*.npz"))) == 2
    assert main(["run", "--mode", "cluster", *sets, "--workers", "2", "--quiet"]) == 2
    assert "--workers: runs the pods of a partitioned cluster: add --pods K" in capsys.readouterr().err


def test_pods_as_config_keys_equal_the_flags_and_are_recorded(tmp_path, capsys):
    from sim.cli import main

    sets = [a for s in SETS for a in ("--set", s)]
    reps = []
    for i, how in enumerate((["--pods", "2", "--partition-by", "prefix_root"],
                             ["--set", "cluster.pods=2", "--set", "cluster.partition_by=prefix_root"])):
        out = tmp_path / f"r{i}"
        assert main(["run", "--mode", "cluster", *sets, "--hit-rate-only", *how, "--out", str(out), "--no-plot",
                     "--quiet"]) == 0
        reps.append(json.loads((out / "report.json").read_text()))
    assert _same(reps[0], reps[1]) == []
    assert reps[0]["partition"] == {"pods": 2, "by": "prefix_root", "racks_per_pod": 2}
    assert reps[0]["config"]["cluster"]["pods"] == 2  # in the resolved config, so in its hash
    unpartitioned = run_mode(_cfg(), "cluster", timing=False)
    assert unpartitioned["config_hash"] != reps[0]["config_hash"]
    # a sweep point or library call partitions from the config alone
    lib = run_mode(_cfg("cluster.pods=2", "cluster.partition_by=prefix_root"), "cluster", timing=False)
    assert _same(lib, reps[0]) == []
    capsys.readouterr()
    assert main(["run", "--mode", "single", *sets, "--set", "cluster.pods=2", "--quiet"]) == 2
    assert "cluster.pods (--pods): pods split cluster mode only" in capsys.readouterr().err
    assert main(["run", "--mode", "cluster", *sets, "--partition-by", "session", "--quiet"]) == 2
    assert "--partition-by: pins requests to pods: add --pods K" in capsys.readouterr().err
    assert main(["run", "--mode", "cluster", *sets, "--set", "cluster.pods=2",
                 "--set", "cluster.partition_by=turn", "--quiet"]) == 2
    assert "cluster.partition_by (--partition-by): unknown partition key 'turn'" in capsys.readouterr().err


def _die(task):
    """A pod task whose worker process is killed (as by the kernel's OOM killer)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_pod_whose_worker_process_dies_is_named():
    from experiments.engine import run_local

    def crashing_pool(tasks, on_result):
        run_local(tasks, 2, on_result, fn=_die, id_key="task_id", what="pod task")

    with pytest.raises(InputError, match=r"pod 0 \(prefix_aware/lru/pod0, [\d,]+ requests\) failed: worker process "
                                         r"died twice \(killed, out of memory or crashed\) while pod task "
                                         r"prefix_aware/lru/pod0 was queued or running \(1 more pod\(s\) failed too\)"):
        run_mode(_cfg(), "cluster", timing=False, partition=Partition(2), pod_runner=crashing_pool)
