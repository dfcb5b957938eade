"""Single-node simulator: hand-computed micro-scenarios, determinism, bounds."""
import pytest

from sim.config import load_config
from sim.config.gpus import gpu_spec
from sim.config.models import model_spec
from sim.modes.common import prepare_workload
from sim.modes.runner import run_single_mode
from sim.modes.single import run_single
from tests.conftest import micro_workload as _workload

BLOCK_BYTES = 16 * 131072  # llama-3-8b fp16: 2 x 32 layers x 8 kv heads x 128 x 2 B = 128 KiB/token
GiB = 1024**3


def _cfg(hbm_blocks, dram_blocks=64, ssd_blocks=0, **extra):
    sets = [
        "model.name=llama-3-8b", "model.kv_dtype=fp16",
        "model.tp=1", "hardware.gpu=h100-sxm", "hardware.gpus_per_node=1",
        "cluster.gpus_per_rack=64", f"hardware.hbm.capacity_gib={hbm_blocks * BLOCK_BYTES / GiB}",
        f"hardware.dram.capacity_gib={dram_blocks * BLOCK_BYTES / GiB}",
        f"hardware.ssd.capacity_gib={ssd_blocks * BLOCK_BYTES / GiB}",
        "hardware.dram.bandwidth_gb_s=25", "hardware.dram.latency_us=10",
        "compute.gemm_efficiency=0.5", "compute.attn_efficiency=0.5",
        "compute.ridge_softness=0", "compute.layer_overhead_us=0", "compute.iteration_overhead_ms=1",
        "compute.hbm_efficiency=1",
        "cluster.router=round_robin",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return load_config(overrides=sets)


def _prefill_s(new, cached):
    # one iteration: linear = the longer of 2 x linear params x new / (989 TFLOPS x 0.5) and the fp16 weight
    # read / HBM (hbm_efficiency 1), + attention 4 x layers x (heads x head_dim) x new x (cached + new/2) at
    # 989 TFLOPS x 0.5, + 1 ms overhead (TP 1: no communication)
    spec, gpu = model_spec("llama-3-8b"), gpu_spec("h100-sxm")
    lin = spec.params - spec.vocab_size * spec.hidden_size
    peak = gpu.fp16_tflops * 1e12 * 0.5
    hbm = gpu.hbm_bandwidth_gb_s * 1e9
    attn = 4 * 32 * (32 * 128) * new * (cached + new / 2)
    return max(2 * lin * new / peak, 2 * lin / hbm) + attn / peak + 1e-3


def test_three_requests_with_shared_prefix_exact_hits_and_ttft():
    w = _workload([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3, 6]], [0, 10, 20])
    cfg = _cfg(hbm_blocks=64)
    res = run_single(cfg, w, "lru", timing=True)
    assert res.hit_tokens[:, 0].tolist() == [0, 32, 48]
    assert res.hit_tokens[:, 1:].sum() == 0
    expect = [_prefill_s(64, 0), _prefill_s(16, 32), _prefill_s(16, 48)]
    assert res.ttft_s == pytest.approx(expect, rel=1e-9)
    assert res.load_s.tolist() == [0, 0, 0]


def test_dram_hit_pays_the_load_time():
    # HBM holds 4 blocks: request 1 pushes request 0's blocks to DRAM; request 2 loads them back.
    # (load_policy always: recomputing 64 tokens costs no more than the weight read the 16 new ones
    # pay anyway, so `faster` would rightly recompute them; see the recompute tests below)
    w = _workload([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4, 9]], [0, 10, 20])
    always = {"cache.load_policy": "always"}
    res = run_single(_cfg(hbm_blocks=4, **always, **{"cache.load_overlap": "none"}), w, "lru", timing=True)
    assert res.hit_tokens[2].tolist() == [0, 64, 0]
    load = 10e-6 + 4 * BLOCK_BYTES / 25e9
    assert res.load_s[2] == pytest.approx(load, rel=1e-9)
    assert res.ttft_s[2] == pytest.approx(load + _prefill_s(16, 64), rel=1e-9)
    assert res.cache.dram.stats.hits == 4
    assert res.io["tier_io"]["dram"]["read_bytes"] == 4 * BLOCK_BYTES
    # layer-wise (32 layers): the prefill (longer than the load) waits only for the first layer
    res = run_single(_cfg(hbm_blocks=4, **always), w, "lru", timing=True)
    assert res.ttft_s[2] == pytest.approx(load / 32 + _prefill_s(16, 64), rel=1e-9)
    assert res.io["recomputed_prefixes"] == 0


def test_slow_ssd_prefix_is_recomputed_not_loaded():
    # HBM and DRAM hold 4 blocks each: request 0's blocks end on an SSD of 1 MB/s; loading 8 MiB would
    # take ~8 s, recomputing 64 tokens well under a millisecond, so request 3 recomputes them.
    w = _workload([[1, 2, 3, 4], [5, 6, 7, 8], [10, 11, 12, 13], [1, 2, 3, 4, 9]], [0, 10, 20, 30])
    cfg = _cfg(hbm_blocks=4, dram_blocks=4, ssd_blocks=64, **{"hardware.ssd.bandwidth_gb_s": 0.001})
    res = run_single(cfg, w, "lru", timing=True)
    assert res.hit_tokens[3].tolist() == [0, 0, 64]  # the cache found them ...
    assert res.io["recomputed_prefixes"] == 1 and res.io["recomputed_tokens"] == 64  # ... but they were recomputed
    assert res.io["tier_io"]["ssd"]["read_bytes"] == 0
    assert res.load_s[3] == 0
    assert res.ttft_s[3] == pytest.approx(_prefill_s(80, 0), rel=1e-9)


def test_decode_tpot_of_a_lone_request():
    w = _workload([[1, 2]], [0], outputs=[11])
    res = run_single(_cfg(hbm_blocks=8), w, "lru", timing=True)
    spec, gpu = model_spec("llama-3-8b"), gpu_spec("h100-sxm")
    # one request in the batch: 10 decode iterations, the j-th reads the linear weights (all but the
    # embedding table) + (32 + j) tokens of KV (memory bound at one token), + 1 ms overhead
    lin = spec.params - spec.vocab_size * spec.hidden_size
    it = (lin * 2 + (32 + 4.5) * 131072) / (gpu.hbm_bandwidth_gb_s * 1e9) + 0.001
    assert res.tpot_s[0] == pytest.approx(it, rel=1e-9)
    assert res.e2e_s[0] == pytest.approx(res.ttft_s[0] + 10 * it, rel=1e-9)


def test_same_seed_same_report():
    cfg = load_config(preset="smoke", overrides=["hardware.hbm.capacity_gib=0.05"])
    from trace.source import workload_from_config

    w, _ = workload_from_config(cfg)
    a = run_single_mode(cfg, w, ["lru", "arc"], timing=True)
    b = run_single_mode(cfg, w, ["lru", "arc"], timing=True)
    volatile = ("wall_s", "sim_speed_req_s")
    for ra, rb in zip(a["policies"], b["policies"], strict=True):
        ma = {k: v for k, v in ra["metrics"].items() if k not in volatile}
        mb = {k: v for k, v in rb["metrics"].items() if k not in volatile}
        assert ma == mb
    assert a["config_hash"] == b["config_hash"]
    c = run_single_mode(load_config(preset="smoke", overrides=["hardware.hbm.capacity_gib=0.05", "seed=7"]),
                        *([workload_from_config(load_config(preset="smoke", overrides=["seed=7"]))[0]]),
                        ["lru"], timing=True)
    assert c["config_hash"] != a["config_hash"]
    assert c["metrics"]["hit_rate"] != a["metrics"]["hit_rate"]


@pytest.mark.parametrize("hbm_gb", [0.02, 0.05, 0.2])
def test_no_policy_beats_belady_in_a_single_tier(hbm_gb):
    # One worker, no DRAM/SSD: Belady is the block-hit optimum of a single tier.
    cfg = load_config(preset="smoke", overrides=[
        f"hardware.hbm.capacity_gib={hbm_gb}", "hardware.dram.capacity_gib=0", "hardware.ssd.capacity_gib=0",
        "hardware.gpus_per_node=2", "cluster.gpus_per_rack=16"])
    from trace.source import workload_from_config

    w, _ = workload_from_config(cfg)
    rep = run_single_mode(cfg, w, ["lru", "lfu", "fifo", "arc", "s3fifo", "belady"], timing=False)
    rates = {p["name"]: p["metrics"]["block_hit_rate"] for p in rep["policies"]}
    assert rep["metrics"]["workers"] == 1
    for name, r in rates.items():
        assert r <= rates["belady"] + 1e-12, (name, rates)
    assert rates["belady"] > rates["lru"]


def test_hit_rate_only_and_timed_paths_agree_when_nothing_overlaps():
    # Requests far apart in time: the timed replay writes blocks before the next arrival.
    reqs = [[1, 2, 3], [1, 2, 4], [5, 6], [1, 2, 3, 7], [5, 6, 8]]
    w = _workload(reqs, [0, 100, 200, 300, 400])
    cfg = _cfg(hbm_blocks=4, dram_blocks=2)
    fast = run_single(cfg, w, "lru", timing=False)
    timed = run_single(cfg, w, "lru", timing=True)
    assert fast.hit_tokens.tolist() == timed.hit_tokens.tolist()


def test_session_prefetch_changes_outcomes_on_multi_turn():
    from sim.config import SyntheticCfg
    from trace.synthetic import generate

    # Turns 10 s apart: prefetching pays when the next turn comes soon. (The hit-rate-only replay routes on
    # the step-cost service times, so the scenario's outcome depends on them; at 20-40 s LRU and prefetch tie.)
    cfg = load_config(overrides=["hardware.hbm.capacity_gib=0.25", "synthetic.requests=600",
                                 "synthetic.sessions=60", "synthetic.turn_interval_s=10"])
    w = generate(cfg.synthetic, cfg.seed)
    w, ctx = prepare_workload(cfg, w)
    lru = run_single(cfg, w, "lru", ctx=ctx, timing=False)
    pre = run_single(cfg, w, "session_prefetch", ctx=ctx, timing=False)
    assert pre.cache.prefetched_blocks > 0
    # prefetched context is served from HBM instead of DRAM/SSD
    assert pre.hit_tokens[:, 0].sum() > lru.hit_tokens[:, 0].sum()
    del SyntheticCfg


def test_bad_block_size_is_input_error():
    from sim.errors import InputError

    w = _workload([[1, 2]], [0])
    cfg = _cfg(hbm_blocks=8, **{"cache.block_tokens": 5})
    with pytest.raises(InputError, match="cache.block_tokens"):
        run_single_mode(cfg, w, ["lru"], timing=False)
    with pytest.raises(InputError, match="unknown policy 'nope'"):
        run_single_mode(_cfg(hbm_blocks=8), w, ["nope"], timing=False)


def test_main_job_takes_run_options(tmp_path):
    """`python main.py --quiet ...` is the main job (every policy, default outputs) with run's flags."""
    import json

    from main import main

    rc = main(["--quiet", "--no-plot", "--preset", "smoke", "--set", f"experiments.out_dir={tmp_path}"])
    assert rc == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.name != "latest"]  # its own folder, single-<UTC time>
    assert run_dir.name.startswith("single-") and (tmp_path / "latest").resolve() == run_dir.resolve()
    rep = json.loads((run_dir / "report.json").read_text())
    assert [p["name"] for p in rep["policies"]] == list(load_config(preset="smoke").policies.compare)
