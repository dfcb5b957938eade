"""Per-request rows held a block at a time (sim.modes.result_rows): a run above the exact-quantile limit
hands each block to its report as soon as it is complete, so it holds the blocks its requests in flight
span, and reports what the run holding every row reports."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import main
import sim.modes.result_rows as result_rows
import sim.modes.single as single
import sim.report.requests as requests_mod
from sim.modes.result_rows import ResultRows
from sim.modes.single import run_single
from tests.conftest import MOONCAKE, ROOT
from tests.report.test_sketched_runs import TINY, _close

SMALL = ROOT / "tests" / "data" / "mooncake_small.jsonl"


def test_blocks_go_over_in_order_once_complete():
    got = []
    rows = ResultRows(10, True, 4, lambda b: got.append((b.lo, b.n)))
    for i in (4, 5, 6, 7):  # the second block completes first: held until the first is
        rows.at(i)
        rows.done(i)
    assert got == [] and rows.most_open == 1
    for i in (0, 1, 2):
        rows.at(i)
        rows.done(i)
    rows.at(8)
    assert got == [] and rows.most_open == 3
    rows.done(3)
    assert got == [(0, 4), (4, 4)] and set(rows.open) == {2}
    rows.done(8)
    rows.done(9)
    rows.close()
    assert got == [(0, 4), (4, 4), (8, 2)]


def test_a_row_never_completed_is_an_error():
    rows = ResultRows(5, False, 2, lambda b: None)
    for i in range(4):
        rows.done(i)
    rows.at(4)
    with pytest.raises(RuntimeError, match="1 requests never completed"):
        rows.close()
    with pytest.raises(IndexError):
        ResultRows(5, False, 2, lambda b: None).at(5)


def test_an_empty_run_hands_over_one_empty_block():
    got = []
    ResultRows(0, True, 1, got.append).close()
    assert len(got) == 1 and got[0].n == 0 and got[0].ttft_s.shape == (0,)


CASES = {
    "timed compiled": ["--policy", "lru"],
    "timed python": ["--policy", "lru", "--set", "cache.engine=python"],
    "hit-rate-only compiled": ["--policy", "lru,fifo", "--hit-rate-only"],
    "hit-rate-only python": ["--policy", "arc", "--hit-rate-only", "--set", "cache.engine=python"],
}


def _run(tmp_path, name: str, args, extra=()) -> tuple[dict, bytes]:
    out, rj = tmp_path / f"{name}.csv", tmp_path / f"{name}.json"
    assert main.main(["run", "--trace", str(SMALL), *args, "--no-plot", "--quiet", "--report-json", str(rj),
                      "--requests-out", str(out), *extra]) == 0
    return json.loads(rj.read_text()), out.read_bytes()


@pytest.mark.parametrize("case", list(CASES))
def test_streamed_rows_report_the_whole_rows(case, tmp_path, monkeypatch):
    monkeypatch.setattr(requests_mod, "CSV_CHUNK_ROWS", 5)
    whole, f_whole = _run(tmp_path, "whole", CASES[case])
    monkeypatch.setattr(result_rows, "ROW_BLOCK", 7)  # many blocks, several open at once when timed
    streamed, f_streamed = _run(tmp_path, "streamed", CASES[case], TINY)
    _close(whole["policies"], streamed["policies"])  # the sums, counts and classes equal; the dists within 1%
    assert f_streamed == f_whole  # the per-request file, byte for byte


CLUSTER = ["--mode", "cluster", "--preset", "smoke"]
CLUSTER_CASES = {
    "timed compiled": [*CLUSTER, "--policy", "lru"],
    "timed python": [*CLUSTER, "--policy", "lru", "--set", "cache.engine=python"],
    "hit-rate-only compiled": [*CLUSTER, "--policy", "lru,fifo", "--hit-rate-only"],
    "hit-rate-only python, two routers": [*CLUSTER, "--policy", "arc", "--router", "prefix_aware,round_robin",
                                          "--hit-rate-only", "--set", "cache.engine=python"],
}


@pytest.mark.parametrize("case", list(CLUSTER_CASES))
def test_streamed_cluster_rows_report_the_whole_rows(case, tmp_path, monkeypatch):
    """The cluster replays' rows (sim.modes.result_rows.CLUSTER_COLUMNS) in blocks of 7, the hit-rate-only
    replay's buffer flushed every 5 rows (so flushes cross blocks): the report and the per-request file are
    the whole rows' ones."""
    import sim.modes.cluster_result as cluster_result

    monkeypatch.setattr(requests_mod, "CSV_CHUNK_ROWS", 5)
    whole, f_whole = _run(tmp_path, "whole", CLUSTER_CASES[case])
    monkeypatch.setattr(result_rows, "ROW_BLOCK", 7)
    monkeypatch.setattr(cluster_result, "ROWS_CHUNK", 5)
    streamed, f_streamed = _run(tmp_path, "streamed", CLUSTER_CASES[case], TINY)
    for a, b in zip(whole["policies"] + whole["routers"], streamed["policies"] + streamed["routers"], strict=True):
        for scope in ("worker", "rack"):  # busy seconds are summed block by block: equal to the last bits
            wl, sl = a["metrics"]["skew"][scope]["load"], b["metrics"]["skew"][scope]["load"]
            assert sl == pytest.approx(wl, rel=1e-12), scope
            b["metrics"]["skew"][scope]["load"] = wl
    _close(whole["policies"], streamed["policies"])
    _close(whole["routers"], streamed["routers"])
    assert f_streamed == f_whole


PD = ["--mode", "pd", "--set", "model.name=llama-3-8b", "--set", "model.tp=1", "--set", "pd.gpus_per_rack=8"]
PD_CASES = {
    "push": PD,
    "pull, some requests rejected": [*PD, "--set", "pd.transfer=pull", "--set", "pd.kv_capacity_gib=2.5"],
}


@pytest.mark.parametrize("case", list(PD_CASES))
def test_streamed_pd_rows_report_the_whole_rows(case, tmp_path, monkeypatch):
    """PD and colocated deployments' finished requests (sim.modes.pd.finished) in blocks of 7: the report and the
    per-request file (rejected requests interleaved in input order) are the whole rows' ones."""
    monkeypatch.setattr(requests_mod, "CSV_CHUNK_ROWS", 5)
    whole, f_whole = _run(tmp_path, "whole", PD_CASES[case])
    monkeypatch.setattr(result_rows, "ROW_BLOCK", 7)
    streamed, f_streamed = _run(tmp_path, "streamed", PD_CASES[case], TINY)
    if "rejected" in case:
        assert 0 < whole["rejected"]["count"] < 10 and whole["rejected"]["first"][0] < 50  # not all at the end
    _close(whole["policies"], streamed["policies"])
    assert f_streamed == f_whole


def test_a_streamed_pd_deployment_keeps_no_column(monkeypatch):
    from sim.config import load_config
    from sim.modes.pd.setup import prepare
    from sim.modes.pd.simulator import simulate
    from sim.report.pd import PDTotals, deployment_metrics
    from trace.formats import load_trace

    cfg = load_config(overrides=[s for s in PD if "=" in s])
    prep = prepare(cfg, load_trace(SMALL)[0], "lru")
    monkeypatch.setattr(result_rows, "ROW_BLOCK", 5)
    totals = PDTotals(cfg, prep.workload, prep.setup.block_tokens, "pd", streamed=True)
    res = simulate("pd", cfg, prep, "lru", totals=totals)
    with pytest.raises(RuntimeError, match="keeps no whole column"):
        res.reqs.col("t_arr")
    ref = simulate("pd", cfg, prep, "lru")
    assert ref.reqs.col("t_done").shape == (len(prep.workload),) and res.totals.n == ref.totals.n
    m, r = deployment_metrics(res, cfg), deployment_metrics(ref, cfg)
    assert (m["hit_rate"], m["slo_attainment"], m["span_s"]) == (r["hit_rate"], r["slo_attainment"], r["span_s"])


def test_a_streamed_cluster_run_keeps_no_row_and_holds_the_blocks_in_flight(monkeypatch):
    from sim.config import load_config
    from sim.modes.cluster import run_cluster
    from sim.modes.common import prepare_workload
    from sim.report.cluster import cluster_metrics
    from trace.synthetic import generate

    cfg = load_config(preset="smoke")
    cfg.synthetic = cfg.synthetic.model_copy(update={"kind": "multi_turn", "requests": 2000, "sessions": 200})
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    sketched = cfg.model_copy(update={"report": cfg.report.model_copy(update={"exact_quantiles_max_requests": 0})})
    monkeypatch.setattr(result_rows, "ROW_BLOCK", 50)
    res = run_cluster(sketched, w, "lru", ctx=ctx, timing=True, stream_rows=True)
    assert res.ttft_s is None and res.worker is None and res.totals.requests == 2000
    assert 2 <= res.most_blocks <= 20  # of 40 blocks: the span of the requests in flight
    ref = run_cluster(cfg, w, "lru", ctx=ctx, timing=True, stream_rows=True)  # under the limit: kept whole
    assert ref.most_blocks == 1 and ref.ttft_s is not None
    t, r = res.totals, ref.totals
    assert (t.slo_met, t.requests) == (r.slo_met, r.requests)
    for k in ("hit_tokens", "hit_blocks", "requests_per_worker", "requests_per_rack"):
        assert np.array_equal(getattr(t, k), getattr(r, k)), k
    assert np.allclose(t.busy_per_worker, r.busy_per_worker, rtol=1e-12)
    assert t.ttft_sum_s == pytest.approx(float(np.nansum(ref.ttft_s)), rel=1e-12)
    assert cluster_metrics(res, sketched)["hit_rate"] == cluster_metrics(ref, cfg)["hit_rate"]
    # a pod keeps its rows whatever the limit (its merge reads them)
    pod = run_cluster(sketched, w, "lru", ctx=ctx, timing=False)
    assert pod.worker is not None and pod.most_blocks == 1


def test_a_streamed_timed_run_holds_the_blocks_in_flight(monkeypatch):
    from sim.config import Config
    from sim.modes.common import prepare_workload
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"kind": "multi_turn", "requests": 3000, "sessions": 300})
    cfg.report = cfg.report.model_copy(update={"exact_quantiles_max_requests": 0})
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    monkeypatch.setattr(result_rows, "ROW_BLOCK", 50)
    monkeypatch.setattr(single, "COMPILED_EVENTS", False)  # SimPy's replay fills each row where it is
    res = run_single(cfg, w, "lru", ctx=ctx, timing=True)
    assert res.ttft_s is None and res.totals.rows == 3000  # no whole arrays kept
    assert 2 <= res.most_blocks <= 15  # of 60 blocks: the span of the requests in flight (9 today)
    ref = run_single(cfg.model_copy(update={"report": Config().report}), w, "lru", ctx=ctx, timing=True)
    assert ref.most_blocks == 1 and ref.totals.slo_met == res.totals.slo_met
    assert np.array_equal(ref.totals.hit_tokens, res.totals.hit_tokens)
    assert res.totals.hit_tokens.sum() == ref.hit_tokens.sum()
    # the compiled replay keeps the rows in flight in a ring of its own and hands over complete blocks only
    monkeypatch.setattr(single, "COMPILED_EVENTS", True)
    fast = run_single(cfg, w, "lru", ctx=ctx, timing=True)
    assert fast.ttft_s is None and fast.most_blocks == 1 and fast.totals.slo_met == res.totals.slo_met
    assert np.array_equal(fast.totals.hit_tokens, res.totals.hit_tokens)


def _offered(cfg, w, node, workers: int) -> dict:
    """The offered-load block `run` computes for `workers` workers of NodeSetup `node`."""
    from sim.modes.load import node_pools, pre_run

    return pre_run(cfg, w, node_pools(workers, node))


def _held_and_span(cfg, w, ctx, monkeypatch) -> tuple[int, int]:
    """(the rows a streamed timed single-node run held, in 50-request blocks; the runner's estimate of them)."""
    from sim.modes.common import NodeSetup
    from sim.modes.runner import _in_flight_span

    monkeypatch.setattr(result_rows, "ROW_BLOCK", 50)
    res = run_single(cfg, w, "lru", ctx=ctx, timing=True)
    node = NodeSetup.from_config(cfg, w.block_tokens)
    return res.most_blocks * 50, _in_flight_span(cfg, w, _offered(cfg, w, node, node.n_workers))[0]


@pytest.mark.parametrize("rate", [2.0, 10.0])  # offered load 0.46 (stable) and 2.3 (overloaded: a backlog)
def test_the_estimated_span_covers_the_blocks_a_timed_run_held(rate, monkeypatch):
    """The runner's estimate of the rows a streamed timed run holds (the arrivals within 4x a request's uncontended
    service time plus its wait in a fluid queue) covers what the run held, without counting every row of a stable
    run."""
    from sim.config import Config
    from sim.modes.common import prepare_workload
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"kind": "multi_turn", "requests": 3000, "sessions": 300,
                                                     "rate_per_s": rate})
    cfg.report = cfg.report.model_copy(update={"exact_quantiles_max_requests": 0})
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    held, span = _held_and_span(cfg, w, ctx, monkeypatch)
    assert held <= span + 2 * 50  # the estimate's held rows (run_estimate)
    if rate == 2.0:
        assert span < len(w) // 5  # 301 today, held 100
    else:
        assert span > len(w) // 2  # the fluid queue of an overloaded run: 1,974 today, held 450


def test_the_estimate_counts_one_block_of_a_streamed_hit_rate_only_run():
    from sim.modes.memory import RUN_PER_REQ_B, WorkloadSize, run_estimate

    s = WorkloadSize(requests=1_000_000, nbytes=0, accesses=0, own_blocks=0, compact=False, renumber=False)

    def rows(mode="single", **kw) -> float:
        return run_estimate(s, mode=mode, per_access=False, slots=0, runs=2, **kw).parts["per-request results"]

    # a hit-rate-only row: worker, 3 tiers' blocks and tokens, recomputed; the cluster's 6 locations and busy_s
    assert result_rows.row_bytes(result_rows.COLUMNS) == 8 * 8
    assert result_rows.row_bytes(result_rows.CLUSTER_COLUMNS) == 15 * 8
    assert rows(timing=False) == 2 * 1_000_000 * RUN_PER_REQ_B["single"]  # every row, each policy's run
    assert rows(timing=False, streamed_rows=True) == \
        1_000_000 * (RUN_PER_REQ_B["single"] - 64) + result_rows.ROW_BLOCK * 64
    # a cluster run's other per-request parts are counted per run (a run's result may outlive the next's start)
    assert rows("cluster", timing=False, streamed_rows=True) == \
        2 * 1_000_000 * (RUN_PER_REQ_B["cluster"] - 120) + result_rows.ROW_BLOCK * 120
    # timed: the blocks the requests in flight span (rows_span, estimated by the runner: below) and the partial
    # blocks at both ends, with the latency columns; without a span, every row
    assert result_rows.row_bytes(result_rows.COLUMNS, timing=True) == 14 * 8
    assert result_rows.row_bytes(result_rows.CLUSTER_COLUMNS, timing=True) == 21 * 8
    assert rows(timing=True, streamed_rows=True) == rows(timing=True) == 2 * 1_000_000 * RUN_PER_REQ_B["single_timed"]
    assert rows(timing=True, streamed_rows=True, rows_span=100_000) == \
        1_000_000 * (RUN_PER_REQ_B["single_timed"] - 112) + (100_000 + 2 * result_rows.ROW_BLOCK) * 112
    assert rows("cluster", timing=True, streamed_rows=True, rows_span=0) == \
        2 * 1_000_000 * (RUN_PER_REQ_B["cluster_timed"] - 168) + 2 * result_rows.ROW_BLOCK * 168
    # at most every row, of one run at a time (as hit-rate-only: a streamed run's blocks are gone when it ends)
    assert rows("cluster", timing=True, streamed_rows=True, rows_span=999_999) == \
        2 * 1_000_000 * (RUN_PER_REQ_B["cluster_timed"] - 168) + 1_000_000 * 168
    assert rows("cluster", timing=True, streamed_rows=False, rows_span=0) == rows("cluster", timing=True)


def test_span_in_flight_counts_the_arrivals_within_a_time_in_system():
    from sim.modes.memory import span_in_flight

    arr = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    offs = np.array([0, 4, 5, 6, 26, 27])  # request 3 has 20 blocks
    # request 0 stays 2.5 s: requests 0, 1, 2 arrive meanwhile (6 accesses); request 3 stays 7 s: 3 and 4 (21)
    assert span_in_flight(arr, np.array([2.5, 0.0, 0.0, 7.0, 0.0]), offs) == (3, 21)
    assert span_in_flight(arr, np.zeros(5), offs) == (1, 20)
    assert span_in_flight(arr, np.full(5, 100.0), offs) == (5, 27)
    assert span_in_flight(np.zeros(0), np.zeros(0), np.zeros(1, dtype=np.int64)) == (0, 0)
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = np.sort(rng.exponential(1.0, 300).cumsum() * rng.choice([0.01, 1.0]))
        stay = rng.exponential(5.0, 300)
        offs = np.concatenate([[0], rng.integers(0, 50, 300).cumsum()])
        within = [np.flatnonzero((a >= a[i]) & (a <= a[i] + stay[i]) & (np.arange(300) >= i)) for i in range(300)]
        assert span_in_flight(a, stay, offs) == (max(len(j) for j in within),
                                                 max(int(offs[j[-1] + 1] - offs[i]) for i, j in enumerate(within)))


def _lindley(arrival, work):
    wait, out = 0.0, []
    for i in range(len(arrival)):
        if i:
            wait = max(0.0, wait + work[i - 1] - (arrival[i] - arrival[i - 1]))
        out.append(wait)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 5)), min_size=0, max_size=40), st.integers(1, 7))
def test_fluid_wait_is_lindleys_recursion_in_any_chunks(rows, chunk):
    import sim.modes.memory as memory

    gaps = np.array([g for g, _ in rows])
    arrival, work = np.cumsum(gaps), np.array([x for _, x in rows])
    want = _lindley(arrival, work)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memory, "ESTIMATE_CHUNK", chunk)
        got = memory.fluid_wait_s(arrival, work)
    assert np.allclose(got, want, atol=1e-9)


def test_fluid_wait_by_hand():
    from sim.modes.memory import fluid_wait_s

    # request 0 brings 3 s of work at t=0: request 1 (t=1) waits 2 s; request 2 (t=2) waits 2 + 0.5 - 1; the queue
    # is empty again by t=10
    assert fluid_wait_s(np.array([0.0, 1.0, 2.0, 10.0]), np.array([3.0, 0.5, 1.0, 1.0])).tolist() == [0, 2, 1.5, 0]
    # twice the work the server drains, steadily: the wait grows by the work minus the gap each arrival
    assert fluid_wait_s(np.arange(5.0), np.full(5, 2.0)).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("policy", ["lru", "session_prefetch"])
def test_heaps_grown_between_small_chunks_give_the_same_replay(policy, monkeypatch):
    """The hit-rate-only replay's departure and prefetch heaps start at one chunk and double as they fill
    (sim.engine.replay._heap_room): chunks of 3 requests grow them many times, with the same results."""
    import functools

    import sim.engine.replay as replay
    import sim.modes.single as single
    from sim.config import Config
    from sim.modes.common import prepare_workload
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"kind": "multi_turn", "requests": 1500, "sessions": 100})
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    ref = run_single(cfg, w, policy, ctx=ctx, timing=False)
    sizes = []
    real_room = replay._heap_room

    def room(Q, st, k):
        Q = real_room(Q, st, k)
        sizes.append((len(Q[0]), len(Q[2])))
        return Q

    monkeypatch.setattr(replay, "_heap_room", room)
    monkeypatch.setattr(single, "run_fast_compiled", functools.partial(replay.run_fast, chunk=3))
    got = run_single(cfg, w, policy, ctx=ctx, timing=False)
    assert sizes[0] == (3, 3) and sizes[-1][0] >= 48  # grown from one chunk
    if policy == "session_prefetch":
        assert sizes[-1][1] >= 24
    for col in ("worker", "hit_blocks", "hit_tokens"):
        assert np.array_equal(getattr(got, col), getattr(ref, col)), col
    assert got.cache.occupancy == ref.cache.occupancy


def test_the_runner_estimates_a_streamed_timed_run_by_its_span(monkeypatch):
    """`run`'s up-front check of a timed run above the exact-quantile limit counts the blocks its requests in flight
    span; one whose rows a list keeps (--compare-measured) or that stays under the limit counts every row."""
    from sim.config import Config
    from sim.modes.memory import RUN_PER_REQ_B
    from sim.modes.pd.finished import PD_COLUMNS
    from sim.modes.runner import _cluster_need, _cluster_setup, _in_flight_span, _single_need, _single_setup, pd_need
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"kind": "multi_turn", "requests": 3000, "sessions": 300,
                                                     "rate_per_s": 2.0})
    w0 = generate(cfg.synthetic, cfg.seed)
    monkeypatch.setattr(result_rows, "ROW_BLOCK", 50)
    streamed = cfg.model_copy(update={"report": cfg.report.model_copy(update={"exact_quantiles_max_requests": 0})})
    w, ctx, node = _single_setup(streamed, w0, ["lru"])

    def part(c, **kw) -> float:
        return _single_need(c, w, ctx, node, ["lru"], True, **kw).est.parts["per-request results"]

    span = _in_flight_span(streamed, w, _offered(streamed, w, node, node.n_workers))[0]
    assert part(streamed) == 3000 * (RUN_PER_REQ_B["single_timed"] - 112) + (span + 100) * 112
    assert part(streamed, requests=[]) == part(cfg) == 3000 * RUN_PER_REQ_B["single_timed"]
    # the cluster (one rack): its 168-byte timed rows, the span over its workers
    cw, cctx, topo, cnode, crows, pods = _cluster_setup(streamed, w0, ["lru"], ["prefix_aware"], None, False)
    cspan = _in_flight_span(streamed, cw, _offered(streamed, cw, cnode, topo.n_nodes * cnode.n_workers))[0]
    got = _cluster_need(streamed, cw, cctx, topo, ["lru"], ["prefix_aware"], True, None, crows, pods)
    assert got.est.parts["per-request results"] == 3000 * (RUN_PER_REQ_B["cluster_timed"] - 168) + (cspan + 100) * 168
    assert cspan < 3000 // 5
    # PD: its 21-field rows; the deployment that streams them counts the blocks in flight, not every row
    assert result_rows.row_bytes(PD_COLUMNS, timing=True) == 21 * 8
    whole = pd_need(cfg, w0, "lru").est.parts["per-request results"]
    assert whole == 3000 * RUN_PER_REQ_B["pd_timed"]
    assert pd_need(streamed, w0, "lru").est.parts["per-request results"] < whole - 3000 * 100


@pytest.mark.skipif(not MOONCAKE.exists(), reason="real trace not present (../shared/traces)")
@pytest.mark.parametrize("compress", [0.3, 0.4, 1.0])
def test_the_span_on_the_mooncake_trace_at_three_loads(compress, monkeypatch):
    """The Mooncake conversation trace (bursty: its load varies through the trace) with its arrivals `compress`ed:
    cold offered load 0.85 and 1.13 (covered) and 2.82 (overloaded: the run's queue outgrows the cold load's fluid
    queue slightly, and the estimate is within 5% of what it held). The whole run's backlog share, 1 - 1/load,
    that the estimate took before fell 45% short at compression 0.5 (2,286 rows against 4,150 held)."""
    from sim.config import load_config
    from sim.modes.common import prepare_workload
    from trace.formats import load_trace

    cfg = load_config(overrides=["report.exact_quantiles_max_requests=0"])
    w, _ = load_trace(str(MOONCAKE))
    w.arrival_ms = w.arrival_ms / compress
    w, ctx = prepare_workload(cfg, w)
    held, span = _held_and_span(cfg, w, ctx, monkeypatch)
    if compress < 1:
        assert held <= span + 2 * 50
        assert span < len(w) // 5  # not every row: 445 and 1,857 of 12,031 today (held 300 and 1,900)
    else:
        assert span + 2 * 50 >= 0.95 * held  # 8,433 of the 8,650 held today
