"""PD disaggregation: hand-computed timelines, transfer strategies, preemption, determinism."""

import numpy as np
import pytest

from sim.config import load_config
from sim.errors import InputError
from sim.modes.pd.setup import prepare, split_replicas
from sim.modes.pd.simulator import simulate
from tests.conftest import MOONCAKE as TRACE
from trace.workload import Workload

# Llama-3-8B on one H100 (tp 1), the figures every expectation below is built from:
# (step-cost model with ridge_softness 0, no layer cost, GEMM and attention at 50% of peak, full HBM bandwidth,
# TP 1 = no communication; see cfg below)
PARAMS = 8_030_261_248  # weights (HF config, exact)
PLIN = PARAMS - 128_256 * 4096  # linear-layer weights: all but the input embedding table
KV = 2 * 32 * 8 * 128 * 2  # bytes per token: K and V x 32 layers x 8 KV heads x 128 x fp16 = 131072
FLOPS = 989e12 * 0.5  # dense fp16 peak x gemm_efficiency (= attn_efficiency)
HBM = 3350e9  # bytes/s
OVERHEAD = 0.002  # s per iteration
NIC = 50e9  # bytes/s, GPU RDMA NIC
RACK_LAT = 3e-6  # s, GPU -> GPU in a rack


def linear(tokens):
    """Linear layers of one iteration: GEMM compute or the fp16 weight read, whichever is longer."""
    return max(2 * PLIN * tokens / FLOPS, 2 * PLIN / HBM)


def pre(n, c=0):
    """One prefill iteration: linear + attention 4 x layers x (heads x head_dim) x n x (c + n/2) / FLOPS + overhead."""
    return linear(n) + 4 * 32 * 4096 * n * (c + n / 2) / FLOPS + OVERHEAD


def dec(k, batch=1):
    """One decode iteration of `batch` requests reading k KV tokens: linear + k x KV / HBM + overhead."""
    return linear(batch) + k * KV / HBM + OVERHEAD


def xfer(tokens):
    """Uncontended GPU -> GPU transfer in a rack (two NIC hops): latency + bytes / NIC."""
    return RACK_LAT + tokens * KV / NIC


def workload(inputs, outputs, arrivals_s, shared=False):
    """16-token blocks; distinct prompts unless `shared` (then request k extends request 0's blocks)."""
    blocks, nid = [], 0
    for i, n in enumerate(inputs):
        nb = -(-n // 16)
        if shared and i:
            base = blocks[0][: min(nb, len(blocks[0]))]
            extra = list(range(1000 * (i + 1), 1000 * (i + 1) + nb - len(base)))
            blocks.append(base + extra)
        else:
            blocks.append(list(range(nid, nid + nb)))
            nid += nb
    offs = np.zeros(len(inputs) + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(b) for b in blocks])
    return Workload("toy", np.array(arrivals_s) * 1000.0, inputs, outputs, [-1] * len(inputs), offs,
                    np.array([b for bl in blocks for b in bl]), 16)


def cfg(**sets):
    base = {
        "model.name": "llama-3-8b", "model.kv_dtype": "fp16",
        "model.tp": 1, "hardware.gpu": "h100-sxm", "hardware.gpus_per_node": 1,
        "pd.racks": 1, "pd.gpus_per_rack": 2, "pd.prefill_ratio": 1, "pd.decode_ratio": 1,
        "pd.kv_capacity_gib": 1, "cache.block_tokens": 16, "hardware.dram.capacity_gib": 0,
        "hardware.eic.capacity_gib": 0, "network.contention": False, "network.jitter_cv": 0,
        "pd.transfer": "push", "pd.layerwise": False, "compute.gemm_efficiency": 0.5,
        "compute.ridge_softness": 0, "compute.layer_overhead_us": 0, "compute.attn_efficiency": 0.5,
        "compute.hbm_efficiency": 1,
        "compute.iteration_overhead_ms": 2, "hardware.hbm.bandwidth_gb_s": 0, "compute.max_num_seqs": 128,
    }
    base.update(sets)
    return load_config(overrides=[f"{k}={v}" for k, v in base.items()])


def run(kind, c, w, policy="lru"):
    prep = prepare(c, w, policy)
    return simulate(kind, c, prep, policy)


# ------------------------------------------------------------------ hand-computed timelines


@pytest.mark.parametrize("coalesce", [True, False])
def test_pd_two_request_timeline(coalesce):
    # A: 256-token prompt, 4 output tokens, at t=0. B: 128 tokens, 3 output tokens, timed so that its
    # KV reaches the decode replica halfway through A's second decode iteration.
    pA, kvA = pre(256), pre(256) + xfer(256)
    d1, d2 = dec(256), dec(257)
    kvB = kvA + d1 + 0.5 * d2
    tB = kvB - pre(128) - xfer(128)
    assert tB > pA  # the prefill replica is idle when B arrives
    t2 = kvA + d1 + d2  # B joins at the end of the iteration in flight
    t3 = t2 + dec(258 + 128)  # one iteration for both: A (3rd token, done) and B
    t4 = t3 + dec(129)  # B alone: its last token
    res = run("pd", cfg(**{"pd.coalesce_decode": coalesce}), workload([256, 128], [4, 3], [0.0, tB]))
    a, b = res.reqs
    assert a.t_pend == pytest.approx(pA, rel=1e-12)
    assert a.t_kv == pytest.approx(kvA, rel=1e-9)  # TTFT of A
    assert b.t_kv - b.t_arr == pytest.approx(pre(128) + xfer(128), rel=1e-9)  # TTFT of B
    assert b.t_join == pytest.approx(t2, rel=1e-9)
    assert a.t_done == pytest.approx(t3, rel=1e-9)
    assert b.t_done == pytest.approx(t4, rel=1e-9)
    assert (a.t_done - a.t_kv) / 3 == pytest.approx((t3 - kvA) / 3, rel=1e-9)  # TPOT of A
    assert (b.t_done - b.t_kv) / 2 == pytest.approx((t4 - kvB) / 2, rel=1e-9)  # TPOT of B
    dec_engine = res.pools["decode"][0]
    assert dec_engine.stats.iterations == 4
    # coalesced: A's first two iterations are one wait (cut by B's arrival), then B's join, then the rest
    assert dec_engine.stats.stretches == (3 if coalesce else 4)


def test_colocated_two_request_timeline():
    # Same GPUs, colocated. B extends A's 256-token prompt by 128 tokens, so the cache-aware router
    # sends it to A's replica, where A decodes; B arrives in A's second decode iteration and its
    # prefill (128 new tokens on 256 cached) is mixed into A's third iteration: one forward pass of 129
    # tokens (linear), the chunk's attention FLOPs, A's KV read, one overhead.
    pA = pre(256)
    d1, d2 = dec(256), dec(257)
    tB = pA + d1 + 0.5 * d2
    t2 = pA + d1 + d2
    t3 = t2 + linear(129) + 4 * 32 * 4096 * 128 * (256 + 64) / FLOPS + 258 * KV / HBM + OVERHEAD
    t4 = t3 + dec(384) + dec(385)
    res = run("colocated", cfg(), workload([256, 384], [4, 3], [0.0, tB], shared=True))
    a, b = res.reqs
    assert a.pre == b.pre == 0 and b.cached == 256
    assert a.t_kv == pytest.approx(pA, rel=1e-12)  # TTFT of A: prefill only, no transfer
    assert b.t_kv == pytest.approx(t3, rel=1e-9)  # B's first token: end of the mixed iteration
    assert a.t_done == pytest.approx(t3, rel=1e-9)  # A's TPOT pays for B's prefill
    assert b.t_done == pytest.approx(t4, rel=1e-9)
    assert (a.t_done - a.t_kv) / 3 == pytest.approx((t3 - pA) / 3, rel=1e-9)
    assert (b.t_done - b.t_kv) / 2 == pytest.approx((t4 - t3) / 2, rel=1e-9)
    # A distinct prompt goes to the idle replica instead: no interference at all.
    res = run("colocated", cfg(), workload([256, 128], [4, 3], [0.0, tB]))
    a, b = res.reqs
    assert (a.pre, b.pre) == (0, 1)
    assert b.t_kv - b.t_arr == pytest.approx(pre(128), rel=1e-9)
    assert a.t_done == pytest.approx(pA + d1 + d2 + dec(258), rel=1e-9)


# ------------------------------------------------------------------ transfer strategies


def one_request(**sets):
    return run("pd", cfg(**sets), workload([256], [4], [0.0])).reqs[0]


def test_push_pull_ordering_single_request():
    pA = pre(256)
    r = one_request(**{"pd.transfer": "push", "pd.layerwise": False})
    assert r.t_flow0 == pytest.approx(pA) and r.t_kv == pytest.approx(pA + xfer(256), rel=1e-9)
    # layer-wise push: 31/32 of the KV streams during the prefill (from T/32 on), the last layer after it
    r = one_request(**{"pd.transfer": "push", "pd.layerwise": True})
    assert r.t_flow0 == pytest.approx(pA / 32)
    assert r.t_pstart < r.t_flow0 < r.t_pend
    assert r.t_kv == pytest.approx(pA + xfer(256 / 32), rel=1e-9)
    # pull: nothing moves before the prefill ends; then the decode replica pulls everything
    r = one_request(**{"pd.transfer": "pull"})
    assert r.t_flow0 == r.t_grant == pytest.approx(pA)
    assert r.t_kv == pytest.approx(pA + xfer(256), rel=1e-9)
    # pull on demand: the request joins after the first of 4 layer groups; the rest follows
    r = one_request(**{"pd.transfer": "pull_on_demand", "pd.layer_groups": 4})
    assert r.t_kv == pytest.approx(pA + xfer(64), rel=1e-9)
    assert r.t_full == pytest.approx(pA + xfer(64) + xfer(192), rel=1e-9)
    # its first iteration waits for the last group: ends 1/4 iteration after it arrived
    first_end = max(r.t_kv + dec(256), r.t_full + dec(256) / 4)
    assert r.t_done == pytest.approx(first_end + dec(257) + dec(258), rel=1e-9)


def test_push_moves_kv_while_the_decode_batch_is_full_pull_waits_for_a_slot():
    # One batch slot on the decode replica; A decodes 40 tokens; B's prefill ends while A decodes.
    w = workload([256, 128], [40, 3], [0.0, pre(256) + 0.01])
    push = run("pd", cfg(**{"compute.max_num_seqs": 1, "pd.transfer": "push"}), w).reqs
    pull = run("pd", cfg(**{"compute.max_num_seqs": 1, "pd.transfer": "pull"}), w).reqs
    a, b = push
    assert b.t_kv < a.t_done  # pushed while A still decodes (memory was reserved at B's prefill start)
    assert b.t_join == pytest.approx(a.t_done)  # ... but joins only when A frees the slot
    a2, b2 = pull
    assert b2.t_grant == pytest.approx(a2.t_done)  # pulled only once a slot is free
    assert b2.t_flow0 >= a2.t_done and b2.t_kv == pytest.approx(a2.t_done + xfer(128), rel=1e-9)
    assert b2.t_kv - b2.t_arr > b.t_kv - b.t_arr  # pull's TTFT includes the wait; push's does not
    assert a.t_done == pytest.approx(a2.t_done)  # A itself is unaffected


def test_ttft_breakdown_adds_up():
    from sim.report.pd import deployment_metrics

    # pull with a one-slot decode replica and 3 prefill-queued requests: queueing, decode waits, transfers
    w = workload([256, 512, 128, 1024], [30, 3, 3, 5], [0.0, 0.001, 0.002, 0.003])
    c = cfg(**{"compute.max_num_seqs": 1, "pd.transfer": "pull"})
    m = deployment_metrics(run("pd", c, w), c)
    b = m["ttft_breakdown_ms"]
    assert sum(b["mean_share"].values()) == pytest.approx(1.0)
    assert sum(b[k]["mean"] for k in ("load", "queue", "prefill", "decode_wait", "transfer")) == pytest.approx(
        m["ttft_ms"]["mean"])
    assert b["queue"]["mean"] > 0 and b["decode_wait"]["mean"] > 0 and b["transfer"]["mean"] > 0


def test_transfer_report_hidden_share():
    from sim.report.pd import deployment_metrics

    w = workload([2048, 1024, 4096], [8, 8, 8], [0.0, 0.5, 1.0])
    on = deployment_metrics(run("pd", cfg(**{"pd.layerwise": True}), w), cfg())
    off = deployment_metrics(run("pd", cfg(**{"pd.layerwise": False}), w), cfg())
    assert on["kv_transfer"]["bytes"] == off["kv_transfer"]["bytes"] == (2048 + 1024 + 4096) * KV
    assert off["kv_transfer"]["hidden_share"] == pytest.approx(0.0, abs=1e-9)
    assert on["kv_transfer"]["hidden_share"] > 0.9
    assert on["ttft_ms"]["mean"] < off["ttft_ms"]["mean"]
    assert on["kv_transfer"]["by_locality"]["same_rack"]["requests"] == 3


# ------------------------------------------------------------------ memory, preemption, rejection


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_preemption_when_decode_memory_runs_out(mode):
    # 0.03 GiB of KV = 245 tokens: two requests of 100-token prompts and 100 outputs cannot both finish.
    c = cfg(**{"pd.kv_capacity_gib": 0.03, "compute.preemption": mode})
    res = run("pd", c, workload([96, 96], [100, 100], [0.0, 0.0]))
    a, b = res.reqs
    assert all(r.t_done == r.t_done for r in res.reqs)  # both finish
    st = res.pools["decode"][0].stats
    assert st.preemptions >= 1 and (a.preempted + b.preempted) == st.preemptions
    if mode == "recompute":
        assert st.recompute_tokens > 0 and st.swap_bytes == 0
    else:
        assert st.swap_bytes > 0 and st.recompute_tokens == 0
    # the preempted request's TPOT pays for it
    victim, other = (a, b) if a.preempted else (b, a)
    assert (victim.t_done - victim.t_kv) > (other.t_done - other.t_kv)


def test_requests_larger_than_a_replica_are_rejected_and_counted():
    c = cfg(**{"pd.kv_capacity_gib": 0.03})
    prep = prepare(c, workload([96, 400], [4, 4], [0.0, 0.1]), "lru")
    assert prep.rejected.tolist() == [1] and len(prep.workload) == 1
    with pytest.raises(InputError, match="no request fits"):
        prepare(c, workload([400], [4], [0.0]), "lru")


def test_prefix_cache_hit_shortens_prefill():
    # B shares A's first 256 tokens: on the same prefill replica only its 128 new tokens are computed.
    w = workload([256, 384], [2, 2], [0.0, 1.0], shared=True)
    res = run("pd", cfg(), w)
    a, b = res.reqs
    assert b.cached == 256 and b.hit_hbm == 256
    assert b.t_pend - b.t_pstart == pytest.approx(pre(128, 256), rel=1e-12)


def test_split_replicas():
    assert split_replicas(32, 1, 3) == (8, 24)
    assert split_replicas(32, 1, 7) == (4, 28)
    assert split_replicas(4, 1, 7) == (1, 3)  # at least one of each
    with pytest.raises(InputError):
        split_replicas(1, 1, 1)


# ------------------------------------------------------------------ determinism


def _summary(res):
    return np.array([[r.t_kv, r.t_done, r.pre, r.dec] for r in res.reqs])


def test_determinism_per_seed():
    rng = np.random.default_rng(0)
    n = 40
    w = workload(list(rng.integers(64, 2000, n)), list(rng.integers(2, 60, n)), list(np.sort(rng.random(n) * 2)))
    sets = {"network.jitter_cv": 0.5, "network.contention": True, "pd.gpus_per_rack": 4, "pd.decode_ratio": 3,
            "pd.router": "random", "pd.layerwise": True}
    r1 = _summary(run("pd", cfg(seed=1, **sets), w))
    r2 = _summary(run("pd", cfg(seed=1, **sets), w))
    r3 = _summary(run("pd", cfg(seed=2, **sets), w))
    assert np.array_equal(r1, r2)
    assert not np.array_equal(r1, r3)


@pytest.mark.parametrize("kind, transfer, preemption", [
    ("pd", "push", "recompute"), ("pd", "pull", "swap"), ("pd", "pull_on_demand", "recompute"),
    ("colocated", "push", "recompute"), ("colocated", "push", "swap"),
])
def test_coalesced_decode_gives_the_per_iteration_timeline(kind, transfer, preemption):
    # 60 random requests in 2 s on small KV memories (preemptions happen) and few batch slots
    rng = np.random.default_rng(7)
    n = 60
    w = workload(list(rng.integers(32, 1500, n)), list(rng.integers(1, 120, n)), list(np.sort(rng.random(n) * 2)))
    sets = {"pd.gpus_per_rack": 4, "pd.kv_capacity_gib": 0.6, "pd.transfer": transfer, "compute.max_num_seqs": 8,
            "compute.preemption": preemption, "pd.layerwise": True}
    a = run(kind, cfg(**{"pd.coalesce_decode": True, **sets}), w)
    b = run(kind, cfg(**{"pd.coalesce_decode": False, **sets}), w)
    ta, tb = _summary(a), _summary(b)
    assert np.allclose(ta, tb, rtol=1e-9, atol=1e-12)
    ea = sum(e.stats.stretches for p in a.pools.values() for e in p)
    eb = sum(e.stats.stretches for p in b.pools.values() for e in p)
    assert sum(e.stats.iterations for p in a.pools.values() for e in p) == eb  # per-iteration: one wait each
    assert ea < eb / 3
    if transfer != "pull_on_demand":  # the scenario does exercise preemption
        assert sum(e.stats.preemptions for p in a.pools.values() for e in p) > 0




def test_pd_mode_report_on_mooncake_head():
    if not TRACE.exists():
        pytest.skip(f"real trace not found at {TRACE}")
    from sim.modes.runner import run_mode
    from trace.formats import load_trace

    w, _ = load_trace(TRACE, limit=400)
    rep = run_mode(load_config(), "pd", workload=w)
    m, col = rep["metrics"], rep["colocated"]
    assert rep["mode"] == "pd" and [p["name"] for p in rep["policies"]] == ["pd", "colocated"]
    assert m["requests_served"] + m["requests_rejected"] == 400
    for mm in (m, col):
        assert 0 <= mm["slo_attainment"] <= 1 and mm["goodput_req_s"] > 0
        assert mm["ttft_ms"]["p50"] <= mm["ttft_ms"]["p99"]
    assert m["kv_transfer"]["bytes"] > 0 and col["transfers"]["bytes"] == 0
    assert set(m["gpu_utilization_share"]) == {"prefill", "decode"}
    assert set(col["gpu_utilization_share"]) == {"colocated"}
    assert rep["comparison"]["ttft_p99_ms"]["pd"] == m["ttft_ms"]["p99"]
