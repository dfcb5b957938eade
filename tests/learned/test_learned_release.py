"""The sequential hit-rate-only replay releases the learned priorities request by request
(AccessContext.accesses_done): the same decisions, a window of priorities instead of one per access."""
from __future__ import annotations

import numpy as np
import pytest

import learned.policy as lp
from sim.config import Config
from sim.modes.common import prepare_workload
from sim.modes.memory import LEARNED_MODEL_PER_ACCESS_B, LEARNED_RELEASED_POSITIONS, run_estimate
from sim.modes.single import run_single
from sim.policies.base import AccessContext
from trace.synthetic import generate

STEP = 512  # a small release step, so that a small workload releases many times


def _setup(requests: int = 500, rate: float | None = None):
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"requests": requests, "sessions": requests // 10,
                                                     "kind": "multi_turn", "block_tokens": 64,
                                                     "rate_per_s": rate or cfg.synthetic.rate_per_s})
    # small tiers: HBM victims go to DRAM and DRAM's to SSD with old positions all the time
    cfg.hardware = cfg.hardware.model_copy(update={
        "hbm": cfg.hardware.hbm.model_copy(update={"capacity_gib": 0.2}),
        "dram": cfg.hardware.dram.model_copy(update={"capacity_gib": 1}),
        "ssd": cfg.hardware.ssd.model_copy(update={"capacity_gib": 4})})
    cfg.policies = cfg.policies.model_copy(update={"learned_retrain_every": 100})  # trained priorities
    w, _ = prepare_workload(cfg, generate(cfg.synthetic, 0))
    return cfg, w


def _run(cfg, w, release: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not release:
            m.setattr(AccessContext, "accesses_done", lambda self, pos: None)
        return run_single(cfg, w, "learned", ctx=AccessContext.from_workload(w), timing=False)


def test_the_window_constant_is_the_policys():
    assert LEARNED_RELEASED_POSITIONS == lp.RELEASE_STEP + lp.CHUNK


def test_released_priorities_give_the_same_replay_and_follow_a_window(monkeypatch):
    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    cfg, w = _setup(1000)  # 42,849 accesses: one training before the end (20,000 accesses apart at least)
    kept = _run(cfg, w, False, monkeypatch)
    rel = _run(cfg, w, True, monkeypatch)
    for col in ("worker", "hit_blocks", "hit_tokens"):
        assert np.array_equal(getattr(kept, col), getattr(rel, col)), col
    assert rel.cache.traffic == kept.cache.traffic
    tiers = [*rel.cache.hbm, rel.cache.dram, rel.cache.ssd]
    assert [t.stats for t in tiers] == [t.stats for t in [*kept.cache.hbm, kept.cache.dram, kept.cache.ssd]]
    assert rel.cache.dram.stats.evictions > 0 and rel.cache.ssd.stats.inserts > 0  # victims moved down
    sc, old = rel.cache.hbm[0].policy.scorer, kept.cache.hbm[0].policy.scorer
    assert sc.scored == old.scored == w.total_blocks > 20 * STEP
    widest = int(w.n_blocks().max())
    assert sc.base > 0 and len(sc.prio) == sc.scored - sc.base <= STEP + lp.CHUNK + 2 * widest
    assert len(old.prio) == old.scored  # one per access without the release
    assert np.array_equal(np.frombuffer(sc.prio), np.frombuffer(old.prio)[sc.base:])
    assert sc.stats()["trainings"] > 0  # model priorities, not LRU order


def test_a_released_position_no_victim_carries_is_an_error(monkeypatch):
    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    cfg, w = _setup(200)
    res = _run(cfg, w, True, monkeypatch)
    sc = res.cache.hbm[0].policy.scorer
    assert sc.base >= STEP
    with pytest.raises(RuntimeError, match="access position 0 was released"):
        sc.value(0)
    sc.carry[0] = 1.5
    assert sc.value(0) == 1.5
    assert sc.value(sc.base) == sc.prio[0]


def test_the_estimate_counts_a_window_for_the_hit_rate_only_replay(monkeypatch):
    import sim.modes.memory as memory
    from sim.modes.common import NodeSetup
    from sim.modes.runner import _single_need

    monkeypatch.setattr(memory, "LEARNED_RELEASED_POSITIONS", 1000)  # a window smaller than this workload
    cfg, w = _setup()
    ctx = AccessContext.from_workload(w)
    node = NodeSetup.from_config(cfg, w.block_tokens)
    widest = int(w.n_blocks().max())
    hro = _single_need(cfg, w, ctx, node, ["learned"], timing=False).est.parts["learned priorities"]
    timed = _single_need(cfg, w, ctx, node, ["learned"], timing=True).est.parts["learned priorities"]
    # this workload is overloaded (offered load 2.0): its backlog spans at least the share 1 - 1/2 of it, at most all
    assert w.total_blocks // 2 * LEARNED_MODEL_PER_ACCESS_B <= timed <= w.total_blocks * LEARNED_MODEL_PER_ACCESS_B
    assert hro == (1000 + 2 * widest) * LEARNED_MODEL_PER_ACCESS_B < timed
    big = run_estimate(w, mode="single", timing=False, per_access=False, slots=0, learned="model",
                       learned_widest=widest)
    assert big.parts["learned priorities"] == hro


def test_the_timed_estimate_counts_the_accesses_in_flight_and_covers_a_run(monkeypatch):
    """A timed replay releases the learned priorities behind its oldest request between arrival and first token
    (sim.modes.single): the estimate counts the accesses of the requests in flight (runner._in_flight_span) on
    top of the window, and the run holds no more than that."""
    import sim.modes.memory as memory
    from sim.modes.common import NodeSetup
    from sim.modes.load import node_pools, pre_run
    from sim.modes.runner import _in_flight_span, _single_need

    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    monkeypatch.setattr(memory, "LEARNED_RELEASED_POSITIONS", STEP + lp.CHUNK)  # as the policy's (first test)
    cfg, w = _setup(1000, rate=1.0)  # a stable load
    ctx = AccessContext.from_workload(w)
    node = NodeSetup.from_config(cfg, w.block_tokens)
    offered = pre_run(cfg, w, node_pools(node.n_workers, node))
    _, accesses = _in_flight_span(cfg, w, offered)
    widest = int(w.n_blocks().max())
    est = _single_need(cfg, w, ctx, node, ["learned"], timing=True).est.parts["learned priorities"]
    assert est == (STEP + lp.CHUNK + accesses + 2 * widest) * LEARNED_MODEL_PER_ACCESS_B
    assert est < w.total_blocks * LEARNED_MODEL_PER_ACCESS_B / 2
    held = []
    release = lp.Scorer.release

    def watched(self, pos):
        held.append(self.scored - self.base)  # what it holds when the replay releases
        release(self, pos)

    monkeypatch.setattr(lp.Scorer, "release", watched)
    res = run_single(cfg, w, "learned", ctx=ctx, timing=True)
    sc = res.cache.hbm[0].policy.scorer
    assert sc.base > 0 and len(held) >= len(w) // 2
    assert max(max(held), sc.scored - sc.base) * LEARNED_MODEL_PER_ACCESS_B <= est


def test_a_second_replay_on_the_same_context_gets_a_scorer_of_its_own(monkeypatch):
    """The scorer is shared by the tiers of one run; once a replay released positions, the next run on the
    same context (a benchmark's repeat) must not reuse it."""
    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    cfg, w = _setup(200)
    ctx = AccessContext.from_workload(w)
    a = run_single(cfg, w, "learned", ctx=ctx, timing=False)
    b = run_single(cfg, w, "learned", ctx=ctx, timing=False)
    assert a.cache.hbm[0].policy.scorer is not b.cache.hbm[0].policy.scorer
    assert np.array_equal(a.hit_blocks, b.hit_blocks)
    import pickle

    assert pickle.loads(pickle.dumps(ctx))._on_release == []  # the listeners stay in this process


def test_the_timed_replay_releases_behind_its_oldest_request_in_flight(monkeypatch):
    """Timed, a request stores at its first token, after later requests arrived: the release follows the
    oldest request between arrival and first token. Same results as keeping every priority."""
    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    cfg, w = _setup(300)

    def run(release: bool):
        with monkeypatch.context() as m:
            if not release:
                m.setattr(AccessContext, "accesses_done", lambda self, pos: None)
            return run_single(cfg, w, "learned", ctx=AccessContext.from_workload(w), timing=True)

    kept, rel = run(False), run(True)
    for col in ("worker", "hit_blocks", "hit_tokens", "ttft_s", "tpot_s", "e2e_s"):
        assert np.array_equal(getattr(kept, col), getattr(rel, col)), col
    assert rel.cache.dram.stats.evictions > 0
    sc = rel.cache.hbm[0].policy.scorer
    assert sc.base > 0 and len(sc.prio) < sc.scored == w.total_blocks


@pytest.mark.parametrize("timing", [False, True])
def test_the_cluster_replay_on_the_python_caches_releases_too(monkeypatch, timing):
    """Cluster mode (the Python caches: HBM per worker, DRAM per node, EIC per rack, remote SSD): the same
    results with the priorities released request by request (timed: behind the oldest request between arrival
    and first token)."""
    from sim.config import load_config
    from sim.modes.cluster import run_cluster
    from trace.source import workload_from_config

    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    cfg = load_config(overrides=[
        "model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=4", "cluster.racks=2",
        "cluster.gpus_per_rack=8", "synthetic.requests=300", "synthetic.sessions=30",
        "hardware.hbm.capacity_gib=0.02", "hardware.dram.capacity_gib=0.05", "hardware.eic.capacity_gib=0.1",
        "cluster.remote_ssd_capacity_gib=0.5",
        "policies.learned_retrain_every=100"])
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])

    def run(release: bool):
        with monkeypatch.context() as m:
            if not release:
                m.setattr(AccessContext, "accesses_done", lambda self, pos: None)
            return run_cluster(cfg, w, "learned", "prefix_aware", ctx=AccessContext.from_workload(w), timing=timing)

    kept, rel = run(False), run(True)
    for col in ("worker", "hit_blocks", "hit_tokens", "ttft_s", "tpot_s", "e2e_s", "net_s"):
        assert np.array_equal(getattr(kept, col), getattr(rel, col), equal_nan=True), col
    assert rel.cache_summary() == kept.cache_summary()
    tiers = rel.cache_summary()["tiers"]
    assert sum(t["evictions"] for t in tiers.values()) > 0
    sc = next(t.policy.scorer for t in rel.cache.tier_groups()["hbm"])
    assert sc.base > 0 and len(sc.prio) < sc.scored == w.total_blocks and sc.stats()["trainings"] > 0


def test_the_cluster_estimate_counts_the_window_when_hit_rate_only(monkeypatch):
    import sim.modes.memory as memory
    from sim.config import load_config
    from sim.modes.runner import _cluster_need, _cluster_setup
    from trace.source import workload_from_config

    cfg = load_config(overrides=["model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=4", "cluster.racks=2",
                                 "cluster.gpus_per_rack=8", "synthetic.requests=300", "synthetic.sessions=30"])
    w, ctx, topo, *_ = _cluster_setup(cfg, workload_from_config(cfg)[0], ["learned"], ["prefix_aware"], None, False)
    widest = int(w.n_blocks().max())
    monkeypatch.setattr(memory, "LEARNED_RELEASED_POSITIONS", 1000)  # a window smaller than this workload
    hro = _cluster_need(cfg, w, ctx, topo, ["learned"], ["prefix_aware"], False).est.parts["learned priorities"]
    timed = _cluster_need(cfg, w, ctx, topo, ["learned"], ["prefix_aware"], True).est.parts["learned priorities"]
    assert timed == w.total_blocks * LEARNED_MODEL_PER_ACCESS_B  # its requests in flight span this small workload
    assert hro == (1000 + 2 * widest) * LEARNED_MODEL_PER_ACCESS_B < timed


def _pd_runs(release: bool, monkeypatch) -> dict:
    """PD and colocated with the learned policy on small radix trees (2,457 blocks: thousands of evictions, inner
    nodes pushed as their children leave); per kind: (per-request fields, the scorer's most priorities held)."""
    from sim.config import load_config
    from sim.modes.pd.setup import prepare
    from sim.modes.pd.simulator import simulate
    from trace.source import workload_from_config

    cfg = load_config(overrides=["synthetic.requests=600", "synthetic.sessions=60", "pd.kv_capacity_gib=3",
                                 "policies.learned_retrain_every=100"])
    w = workload_from_config(cfg)[0]
    most = [0]
    release_of = lp.Scorer.release

    def track(sc, pos):
        release_of(sc, pos)
        most[0] = max(most[0], len(sc.prio))

    out = {}
    with monkeypatch.context() as m:
        if not release:
            m.setattr(AccessContext, "accesses_done", lambda self, pos: None)
        m.setattr(lp.Scorer, "release", track)
        m.setattr("sim.modes.pd.simulator.RELEASE_MIN_ACCESSES", 0)  # this small workload releases too
        prep = prepare(cfg, w, "learned")
        for kind in ("pd", "colocated"):
            most[0] = 0
            a = simulate(kind, cfg, prep, "learned")
            fields = {f: [getattr(r, f) for r in a.reqs] for f in ("t_kv", "t_done", "hit_hbm", "hit_low", "pre")}
            out[kind] = (fields, most[0], prep)
    return out


def test_pd_deployments_release_the_priorities_with_the_same_results(monkeypatch):
    """The PD and colocated deployments release the learned priorities behind their oldest request not done
    (sim.modes.pd.simulator): the same per-request results as keeping one per access, a window held."""
    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    kept, rel = _pd_runs(False, monkeypatch), _pd_runs(True, monkeypatch)
    from sim.modes.pd.run import prepared_run
    from sim.modes.runner import _in_flight_span

    for kind in ("pd", "colocated"):
        assert rel[kind][0] == kept[kind][0], kind
        prep = rel[kind][2]
        w = prep.workload
        assert kept[kind][1] == 0  # never released: no release call
        # what the estimate allows (the window, the accesses of the requests in flight, two requests), and fewer
        # than one per access (96,692 here; the most held was 76,590 in each today)
        _p, _lay, offered = prepared_run(prep.setup.cfg, w, "learned")
        bound = STEP + lp.CHUNK + _in_flight_span(prep.setup.cfg, w, offered)[1] + 2 * int(w.n_blocks().max())
        assert 0 < rel[kind][1] <= min(bound, w.total_blocks - STEP), (kind, rel[kind][1], bound)


def test_pd_needs_the_positions_its_trees_keep(monkeypatch):
    """Without Policy.keep_position a tree's inner node, pushed once its children left, reads a released
    position: the check in Scorer.value stops the run (so the kept positions above are exercised)."""
    monkeypatch.setattr(lp, "RELEASE_STEP", STEP)
    monkeypatch.setattr(lp.Learned, "keeps_positions", False)
    with pytest.raises(RuntimeError, match="was released"):
        _pd_runs(True, monkeypatch)


def test_a_small_pd_deployment_keeps_every_priority_and_its_estimate_says_so(monkeypatch):
    """Below RELEASE_MIN_ACCESSES a deployment releases nothing (no per-lock bookkeeping; the colocated baseline
    reuses the PD run's scorer), and the estimate counts one priority an access; above it, the window."""
    from sim.config import load_config
    from sim.modes.runner import pd_need
    from trace.source import workload_from_config

    cfg = load_config(overrides=["synthetic.requests=300", "synthetic.sessions=30"])
    w = workload_from_config(cfg)[0]
    calls = []
    monkeypatch.setattr(lp.Scorer, "release", lambda sc, pos: calls.append(pos))
    small = pd_need(cfg, w, "learned").est.parts
    assert small["learned priorities"] == w.total_blocks * LEARNED_MODEL_PER_ACCESS_B
    assert "learned kept positions" not in small
    from sim.modes.pd.setup import prepare
    from sim.modes.pd.simulator import simulate

    prep = prepare(cfg, w, "learned")
    simulate("pd", cfg, prep, "learned")
    assert calls == []  # nothing released
    monkeypatch.setattr("sim.modes.pd.simulator.RELEASE_MIN_ACCESSES", 0)
    big = pd_need(cfg, w, "learned").est.parts
    assert big["learned kept positions"] > 0


def test_pd_estimate_counts_a_window_and_the_kept_positions():
    from sim.modes.memory import LEARNED_KEPT_B, WorkloadSize, pd_estimate

    s = WorkloadSize(requests=1_000, nbytes=0, accesses=10_000_000, own_blocks=0, compact=False, renumber=False)
    whole = pd_estimate(s, slots={"pd": 5_000}, in_flight=10, per_access=False, learned="model")[1].parts
    rel = pd_estimate(s, slots={"pd": 5_000}, in_flight=10, per_access=False, learned="model", learned_widest=700,
                      learned_span=30_000, tree_slots={"pd": 2_000})[1].parts
    assert whole["learned priorities"] == 10_000_000 * LEARNED_MODEL_PER_ACCESS_B
    assert "learned kept positions" not in whole
    assert rel["learned priorities"] == (LEARNED_RELEASED_POSITIONS + 30_000 + 2 * 700) * LEARNED_MODEL_PER_ACCESS_B
    assert rel["learned kept positions"] == 2_000 * LEARNED_KEPT_B
