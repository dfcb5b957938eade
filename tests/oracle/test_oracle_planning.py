"""Capacity from a deployment, buckets and scope, planning, the heuristic
estimator and its calibration: hand-computed numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim.config.kv_sizes import GIB
from sim.config.units import parse_tokens
from sim.errors import InputError
from sim.oracle.buckets import apply_scope, parse_buckets
from sim.oracle.calibrate import fit
from sim.oracle.capacity import Deployment, hbm_capacity, parse_bytes, parse_tiers, tier_capacities
from sim.oracle.estimator import HeuristicParams, _harmonic, describe, hit_rates
from sim.oracle.planning import effective_tps, plan_cards
from trace.workload import Workload


def test_budget_capacity_llama3_70b():
    # Llama-3-70B fp16: 2 x 80 layers x 8 KV heads x 128 x 2 B = 327,680 B/token;
    # a 512-token block = 160 MiB, so 160 GiB hold 1024 blocks.
    cap = hbm_capacity(Deployment(model="llama-3-70b", kv_budget_gb=160), 512)
    assert cap.block_bytes == 327_680 * 512
    assert cap.blocks == 1024 and cap.gb == pytest.approx(160)


def test_cards_capacity_counts_whole_blocks_per_replica():
    dep = Deployment(model="llama-3-70b", gpu="h100-sxm", cards=8, tp=4, reserve_gb=4)
    cap = hbm_capacity(dep, 512)
    weights = 70_553_706_496 * 2 / 4  # fp16 weights split over tp 4
    free = 80 * GIB - weights - 4 * GIB
    per_gpu_block = 327_680 / 4 * 512  # 2 KV heads per GPU at tp 4
    assert cap.blocks == 2 * int(free // per_gpu_block)
    assert cap.details["replicas"] == 2
    with pytest.raises(InputError, match="do not fit"):
        hbm_capacity(Deployment(model="llama-3-70b", gpu="h100-sxm", cards=1, tp=1), 512)
    with pytest.raises(InputError, match="replica"):
        hbm_capacity(Deployment(model="llama-3-70b", gpu="h100-sxm", cards=2, tp=4), 512)


def test_tiers_add_per_machine_bytes():
    assert parse_bytes("1T") == 1024**4 and parse_bytes("512G") == 512 * GIB and parse_bytes("2TiB") == 2 * 1024**4
    tiers = parse_tiers("1T,HBM+10T")
    assert [t.label for t in tiers] == ["HBM", "HBM+1T per machine", "HBM+10T per machine"]
    dep = Deployment(model="llama-3-70b", gpu="h100-sxm", cards=16, tp=4)
    caps = tier_capacities(dep, 512, tiers)
    extra_blocks = 2 * 1024**4 // (327_680 * 512)  # 16 cards = 2 machines of 8
    assert caps[1].blocks - caps[0].blocks == extra_blocks
    with pytest.raises(InputError):
        parse_bytes("lots")


def test_bucket_labels_and_parsing():
    assert [b.label for b in parse_buckets(None)] == ["0-32K", "32K-64K", "64K-128K", "128K+"]
    assert [b.label for b in parse_buckets("4K,16K")] == ["0-4K", "4K-16K", "16K+"]
    assert parse_buckets("none") == []
    assert parse_tokens("1.5K") == 1536
    with pytest.raises(InputError):
        parse_buckets("64K,32K")


def test_session_scope_rekeys_blocks():
    w = Workload(name="s", arrival_ms=np.arange(3.0), input_tokens=np.array([8, 8, 8]),
                 output_tokens=np.ones(3, dtype=np.int64), session_id=np.array([1, 2, 1]),
                 block_offsets=np.array([0, 2, 4, 6]), block_ids=np.array([5, 6, 5, 6, 5, 6]), block_tokens=4)
    s = apply_scope(w, "session")
    ids = s.block_ids.tolist()
    assert ids[0:2] == ids[4:6] and ids[0:2] != ids[2:4]
    with pytest.raises(InputError):
        apply_scope(w, "galaxy")


def test_plan_cards_bisection_hand_example():
    dep = Deployment(model="llama-3-8b", gpu="h100-sxm", tp=1)
    # h = 0.5 whatever the capacity: per-card = 1000 / (1 - 0.8 x 0.5) = 1666.7;
    # 10,000 TPS needs ceil(6.0) = 6 cards; without cache 10.
    row = plan_cards("all", "x", dep, 16, lambda blocks: 0.5, target_tps=10_000, baseline=1000, alpha=0.8)
    assert row.cards == 6 and row.cards_without_cache == 10 and row.machines == 1
    assert row.effective_per_card_tps == pytest.approx(1000 / 0.6)
    # A hit rate that grows with capacity: 0 below 3 cards' worth of blocks, 0.75 above.
    three = hbm_capacity(dep.with_cards(3), 16).blocks
    row = plan_cards("all", "x", dep, 16, lambda blocks: 0.75 if blocks >= three else 0.0,
                     target_tps=7000, baseline=1000, alpha=0.8)
    assert row.cards == 3  # 3 x 1000 / 0.4 = 7500 >= 7000, while 2 cards (h = 0) give 2000
    assert effective_tps(1000, 0.8, 0.0) == 1000


def test_estimator_closed_form():
    p = HeuristicParams(concurrent_sessions=10, shared_prefix_tokens=1000, new_tokens_per_turn=100,
                        turns_per_session=3, curve="linear", policy_efficiency=0.5)
    d = describe(p)
    # history 0, 100, 200 -> mean 100; input 1000 + 100 + 100 = 1200; content 1100 / 1200.
    assert d["input_tokens_mean"] == 1200 and d["content_hit_rate"] == pytest.approx(1100 / 1200)
    opt, pol = hit_rates(p, 1000 + 10 * 200 / 2)  # half of the private working set
    assert opt == pytest.approx((1000 + 100 * 0.5) / 1200)
    assert pol == pytest.approx((1000 + 0.5 * 100 * 0.5) / 1200)
    assert hit_rates(p, 500)[0] == pytest.approx(500 / 1200)  # half the shared prefix, no private
    z = HeuristicParams(concurrent_sessions=4, shared_prefix_tokens=0, new_tokens_per_turn=100,
                        turns_per_session=3, curve="zipf_harmonic", zipf_s=1.0, population=4)
    # k = 200 / 200 = 1 session kept of 4: H(1) / H(4) = 1 / (25/12).
    assert hit_rates(z, 200)[0] == pytest.approx((100 * 12 / 25) / 200)
    assert _harmonic(5000, 1.0) == pytest.approx(sum(1 / j for j in range(1, 5001)), rel=1e-7)
    with pytest.raises(InputError):
        HeuristicParams(curve="cubic").validate()


def test_calibration_recovers_its_own_curve():
    truth = HeuristicParams(concurrent_sessions=56, shared_prefix_tokens=0, new_tokens_per_turn=200,
                            turns_per_session=5, curve="power_law_fit", power_beta=0.5, policy_efficiency=0.4)
    d = describe(truth)
    desc = {"input_tokens_mean": d["input_tokens_mean"], "content_hit_rate": d["content_hit_rate"],
            "shared_prefix_tokens": 0.0, "new_tokens_per_turn": 200.0, "turns_per_session": 5.0}
    curve = [{"capacity_blocks": k, "strict_prefix": hit_rates(truth, k * 16)[0],
              "lru": hit_rates(truth, k * 16)[1]} for k in (50, 200, 800, 3000)]
    res = fit(desc, curve, 16)
    assert res["residual"]["optimum_rmse"] < 2e-3
    assert res["residual"]["lru_rmse"] < 5e-3
    assert math.isclose(res["params"]["policy_efficiency"], 0.4, abs_tol=0.03)
