"""Compute-time model: hand-checked prefill/decode/load times."""
import pytest

from sim.config.gpus import GpuSpec, gpu_spec
from sim.config.models import ModelSpec, model_spec
from sim.errors import InputError
from sim.timing.compute import (
    decode_iteration_time_s,
    load_time_s,
    peak_flops,
    prefill_flops,
    prefill_time_s,
    recompute_vs_load_breakeven_gb_s,
)

# 2 layers, 4 heads x 16 (attn width 64), 2 KV heads, 1e6 params.
TOY = ModelSpec(name="toy", n_layers=2, hidden_size=64, n_heads=4, n_kv_heads=2, head_dim=16,
                intermediate_size=128, vocab_size=100, params=1_000_000)
TOY_GPU = GpuSpec("toy", memory_gb=1, hbm_bandwidth_gb_s=100, fp16_tflops=1.0, fp8_tflops=2.0)


def test_prefill_flops_by_hand():
    # linear 2 x 1e6 x 1000 = 2e9; attention 4 x 2 layers x 64 x 1000 x (0 + 500) = 2.56e8
    assert prefill_flops(TOY, 1000, 0) == 2e9 + 2.56e8
    # with 1000 cached tokens: attention 4 x 2 x 64 x 1000 x 1500 = 7.68e8
    assert prefill_flops(TOY, 1000, 1000) == 2e9 + 7.68e8
    assert prefill_flops(TOY, 0, 5000) == 0


def test_chunked_prefill_costs_the_same_as_one_shot():
    one = prefill_flops(TOY, 3000, 0)
    chunks = prefill_flops(TOY, 1000, 0) + prefill_flops(TOY, 1000, 1000) + prefill_flops(TOY, 1000, 2000)
    assert chunks == pytest.approx(one, rel=1e-12)


def test_prefill_time_by_hand():
    # 2.256e9 FLOPs / (1 x 1e12 x 0.5) = 4.512 ms
    assert prefill_time_s(TOY, TOY_GPU, 1000) == pytest.approx(4.512e-3)
    assert prefill_time_s(TOY, TOY_GPU, 1000, tp=2, mfu=0.5) == pytest.approx(2.256e-3)
    assert prefill_time_s(TOY, TOY_GPU, 1000, mfu=1.0) == pytest.approx(2.256e-3)
    assert prefill_time_s(TOY, TOY_GPU, 1000, compute_dtype="fp8") == pytest.approx(2.256e-3)
    assert prefill_time_s(TOY, TOY_GPU, 0, 1000) == 0.0
    # A prefix hit saves time: 1000 new tokens after 1000 cached < 2000 new tokens.
    assert prefill_time_s(TOY, TOY_GPU, 1000, 1000) < prefill_time_s(TOY, TOY_GPU, 2000)
    with pytest.raises(ValueError):
        prefill_time_s(TOY, TOY_GPU, 10, mfu=0)


def test_peak_flops_fp8_fallback():
    assert peak_flops(gpu_spec("h100-sxm"), "fp8") == 1979e12
    assert peak_flops(gpu_spec("a100-80g"), "fp8") == 312e12   # no FP8 units: FP16 peak


def test_prefill_time_llama3_70b_h100():
    s, g = model_spec("llama-3-70b"), gpu_spec("h100-sxm")
    flops = 2 * 70_553_706_496 * 8192 + 4 * 80 * 8192 * 8192 * 4096
    assert prefill_flops(s, 8192) == flops
    assert prefill_time_s(s, g, 8192, tp=8, mfu=0.5) == pytest.approx(flops / (8 * 989e12 * 0.5))


def test_decode_iteration_by_hand():
    # weights 1e6 x 2 B = 2e6 B; KV 2 x 2 layers x 2 heads x 16 x 2 B = 256 B/token x 1000 = 256,000 B
    # (2,256,000 B) / 100e9 B/s = 22.56 us, + 2 ms overhead
    assert decode_iteration_time_s(TOY, TOY_GPU, 4, 1000) == pytest.approx(0.002 + 2.256e-5)
    # TP 2: half the weights, one KV head per GPU (128 B/token)
    assert decode_iteration_time_s(TOY, TOY_GPU, 4, 1000, tp=2, overhead_s=0) == pytest.approx(1.128e-5)
    # fp8 KV + int4 weights
    assert decode_iteration_time_s(TOY, TOY_GPU, 4, 1000, "fp8", "int4", overhead_s=0) == pytest.approx(
        (0.5e6 + 128_000) / 100e9)
    assert decode_iteration_time_s(TOY, TOY_GPU, 0, 0) == 0.0


def test_decode_llama3_70b_h100_tp8():
    s, g = model_spec("llama-3-70b"), gpu_spec("h100-sxm")
    t = decode_iteration_time_s(s, g, batch_size=32, batch_kv_tokens=32 * 4096, tp=8)
    # (17,638,426,624 + 131,072 x 40,960) / 3.35e12 + 2 ms
    assert t == pytest.approx((17_638_426_624 + 131_072 * 40_960) / 3.35e12 + 0.002)


def test_load_time():
    assert load_time_s(1e9, 10, 100) == pytest.approx(0.1001)
    assert load_time_s(0, 10, 100) == 0.0
    with pytest.raises(ValueError):
        load_time_s(1, 0)


def test_breakeven_by_hand():
    # 1000 tokens x 256 B = 256,000 B over 4.512 ms = 0.0567376 GB/s
    assert recompute_vs_load_breakeven_gb_s(TOY, TOY_GPU, 1000) == pytest.approx(256_000 / 4.512e-3 / 1e9)
    s, g = model_spec("llama-3-70b"), gpu_spec("h100-sxm")
    b8k = recompute_vs_load_breakeven_gb_s(s, g, 8192, tp=8, mfu=0.5)
    nbytes = 8192 * 40_960
    assert b8k == pytest.approx(nbytes / prefill_time_s(s, g, 8192, 0, 8, 0.5) / 1e9)
    # Longer prefixes cost more to recompute per byte (attention term): loading wins at a lower bandwidth.
    assert recompute_vs_load_breakeven_gb_s(s, g, 65536, tp=8) < b8k
    with pytest.raises(InputError):
        recompute_vs_load_breakeven_gb_s(s, g, 0)
