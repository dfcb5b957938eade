"""Coalesced decode stretches give the per-iteration timeline, in every mode (``pd.coalesce_decode``).

Random small workloads on small KV memories and few batch slots, so batches change often and requests
are preempted (recompute or swap); every request's TTFT, TPOT and e2e must be the same with one SimPy
event per decode stretch as with one per iteration.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.config import load_config
from sim.modes.cluster import run_cluster
from sim.modes.pd.setup import prepare
from sim.modes.pd.simulator import simulate
from sim.modes.single import run_single
from tests.modes.test_pd import cfg as pd_cfg
from tests.modes.test_pd import run as pd_run
from tests.modes.test_pd import workload as pd_workload
from trace.workload import Workload

BT = 16  # tokens per block
MODEL = ["model.name=llama-3-8b", "model.tp=1", "hardware.gpu=h100-sxm", "cache.block_tokens=16",
         "hardware.dram.capacity_gib=0", "hardware.eic.capacity_gib=0", "network.contention=false",
         "network.jitter_cv=0", "compute.max_num_seqs=6", "compute.max_num_batched_tokens=2048"]
# Llama-3-8B fp16 KV is 131,072 bytes/token: 0.05 GiB holds ~410 tokens per worker (0.12 GiB ~980 per
# PD replica), fewer than a few running requests need, so batches preempt.
NODE = MODEL + ["hardware.gpus_per_node=1", "hardware.hbm.capacity_gib=0.05"]
CLUSTER = NODE + ["cluster.racks=1", "cluster.gpus_per_rack=2", "cluster.router=round_robin"]
PD = MODEL + ["hardware.gpus_per_node=1", "pd.racks=1", "pd.gpus_per_rack=4", "pd.kv_capacity_gib=0.12",
              "pd.prefill_ratio=1", "pd.decode_ratio=1", "pd.transfer=push", "pd.layerwise=true"]


@st.composite
def workloads(draw) -> Workload:
    """2-20 requests within 0.1-1.5 s; a request may extend an earlier one's prompt (prefix hits)."""
    n = draw(st.integers(2, 20))
    spread_ms = draw(st.floats(100.0, 1500.0))
    reqs: list[list[int]] = []
    nid = 0
    for _ in range(n):
        nb = draw(st.integers(1, 40))
        base: list[int] = []
        if reqs and draw(st.booleans()):
            parent = reqs[draw(st.integers(0, len(reqs) - 1))]
            base = parent[: draw(st.integers(1, len(parent)))]
        fresh = max(0, nb - len(base))
        reqs.append(base + list(range(nid, nid + fresh)))
        nid += fresh
    arr = np.sort(np.array(draw(st.lists(st.floats(0.0, spread_ms), min_size=n, max_size=n))))
    out = np.array(draw(st.lists(st.integers(1, 80), min_size=n, max_size=n)))
    return Workload.from_requests(reqs, arrival_ms=arr, output_tokens=out, block_tokens=BT, name="prop")


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True), np.flatnonzero(~np.isclose(a, b, equal_nan=True))


def _node_times(run, overrides: list[str], w: Workload) -> tuple[np.ndarray, int]:
    out = []
    for co in (True, False):
        res = run(load_config(overrides=overrides + [f"pd.coalesce_decode={str(co).lower()}"]), w)
        out.append((np.stack([res.ttft_s, res.tpot_s, res.e2e_s]), res.preemptions))
    (ta, pa), (tb, pb) = out
    _same(ta, tb)
    assert pa == pb
    return ta, pa


PROP = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@PROP
@given(w=workloads(), preemption=st.sampled_from(["recompute", "swap"]))
def test_single_node(w, preemption):
    _node_times(lambda c, w: run_single(c, w, "lru", timing=True), NODE + [f"compute.preemption={preemption}"], w)


@PROP
@given(w=workloads(), preemption=st.sampled_from(["recompute", "swap"]))
def test_cluster(w, preemption):
    _node_times(lambda c, w: run_cluster(c, w, "lru", "round_robin", timing=True),
                CLUSTER + [f"compute.preemption={preemption}"], w)


def _pd_times(kind: str, overrides: list[str], w: Workload) -> tuple[np.ndarray, int]:
    out = []
    for co in (True, False):
        cfg = load_config(overrides=overrides + [f"pd.coalesce_decode={str(co).lower()}"])
        res = simulate(kind, cfg, prepare(cfg, w, "lru"), "lru")
        t = np.array([[r.t_kv - r.t_arr, r.t_done - r.t_arr] for r in res.reqs])
        pre = sum(e.stats.preemptions for p in res.pools.values() for e in p)
        out.append((t, pre))
    (ta, pa), (tb, pb) = out
    _same(ta, tb)
    assert pa == pb
    return ta, pa


@PROP
@given(w=workloads(), preemption=st.sampled_from(["recompute", "swap"]))
def test_pd(w, preemption):
    _pd_times("pd", PD + [f"compute.preemption={preemption}"], w)


@settings(PROP, max_examples=60)
@given(w=workloads(), preemption=st.sampled_from(["recompute", "swap"]))
def test_colocated(w, preemption):
    # colocated replicas keep prompts in the radix tree: tighter memory, so decode growth evicts cached
    # prefixes (which later requests would match) and preempted requests' prompts are released
    _pd_times("colocated", PD + [f"compute.preemption={preemption}", "pd.kv_capacity_gib=0.08"], w)


def test_a_preempted_request_that_fits_at_once_rejoins_at_the_next_boundary():
    # the scenario of tests/modes/test_pd.py squeezed into 1 s: a colocated replica preempts a request whose
    # released prompt blocks let it rejoin at the next boundary; a coalesced stretch used to claim that
    # memory for itself and keep the request out until the stretch ended
    rng = np.random.default_rng(7)
    n = 60
    w = pd_workload(list(rng.integers(32, 1500, n)), list(rng.integers(1, 120, n)), list(np.sort(rng.random(n))))
    sets = {"pd.gpus_per_rack": 4, "pd.kv_capacity_gib": 0.6, "compute.max_num_seqs": 8,
            "compute.preemption": "recompute", "pd.layerwise": True}
    a = pd_run("colocated", pd_cfg(**{"pd.coalesce_decode": True, **sets}), w)
    b = pd_run("colocated", pd_cfg(**{"pd.coalesce_decode": False, **sets}), w)
    _same(np.array([[r.t_kv, r.t_done] for r in a.reqs]), np.array([[r.t_kv, r.t_done] for r in b.reqs]))
    assert sum(e.stats.preemptions for e in a.pools["colocated"]) > 0


def test_a_stretch_does_not_evict_cached_prefixes_ahead():
    # request 6 (7 blocks shared with request 3, 34 output tokens) decodes alone; request 9 arrives at 34 ms
    # and extends request 4's 21 blocks, unreferenced in the same replica's tree by then. Per iteration,
    # decode growth evicts a block only when an iteration needs it, so all 21 are still cached: 335 tokens
    # (one token is always computed). A stretch claiming its future tokens up front evicted one of them.
    sizes = [8, 8, 8, 7, 21, 1]
    reqs, nid = [], 0
    for nb in sizes:
        reqs.append(list(range(nid, nid + nb)))
        nid += nb
    reqs.append(reqs[3] + list(range(nid, nid + 31)))
    nid += 31
    reqs += [[nid], [nid + 1], reqs[4]] + [[nid + 2 + k] for k in range(7)]
    out = [1] * 17
    out[6] = 34
    w = Workload.from_requests(reqs, arrival_ms=np.array([0.0] * 6 + [16.0] * 3 + [34.0] * 8),
                               output_tokens=np.array(out), block_tokens=BT, name="evict-ahead")
    over = PD + ["compute.preemption=recompute", "pd.kv_capacity_gib=0.12"]
    for co in ("true", "false"):
        cfg = load_config(overrides=over + [f"pd.coalesce_decode={co}"])
        res = simulate("colocated", cfg, prepare(cfg, w, "lru"), "lru")
        assert res.reqs[9].pre == res.reqs[4].pre and res.reqs[9].cached == 21 * BT - 1
    _pd_times("colocated", over, w)


def test_a_slot_freed_by_a_preemption_is_taken_at_the_next_boundary():
    # Found by hypothesis 6.170: request 10 is preempted while request 11 waits in decode_q for a batch
    # slot (max_num_seqs); per iteration, 11 joins one iteration later; a coalesced stretch planned at
    # that boundary must stop there too, not run on to the next finish.
    offs = np.array([0, 3, 38, 75, 76, 93, 126, 148, 169, 170, 171, 172, 207, 208, 209, 210, 211, 212, 213, 214])
    w = Workload(name="prop", arrival_ms=np.array([0., 0., 1., 1., 1., 1., 1., 20., 20., 20., 40.] + [58.] * 8),
                 input_tokens=np.array([48, 560, 592, 16, 272, 528, 352, 336, 16, 16, 16, 560] + [16] * 7),
                 output_tokens=np.array([25, 9, 21, 21, 21, 6, 21, 4, 1, 1, 17, 2] + [1] * 7),
                 session_id=np.full(19, -1), block_offsets=offs, block_ids=np.arange(214), block_tokens=16,
                 turn=np.full(19, -1), synthetic_blocks=False)
    _, preemptions = _pd_times("pd", PD + ["compute.preemption=recompute"], w)
    assert preemptions >= 1
