"""Step-cost model: every term by hand on a tiny made-up model, MoE experts, decode lines, properties."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import load_config
from sim.config.gpus import GpuSpec, gpu_spec
from sim.config.kv_sizes import kv_bytes_per_token, weights_bytes_per_gpu
from sim.config.models import ModelSpec, model_spec
from sim.errors import InputError
from sim.timing.step_cost import StepBreakdown, StepModel, StepParams, distinct_experts, peak_flops, step_params

# 2 layers, 4 heads x 16 (attention width 64), 2 KV heads x 16; 100 x 64 embedding + 1,000,000 linear weights.
TOY = ModelSpec(name="toy", n_layers=2, hidden_size=64, n_heads=4, n_kv_heads=2, head_dim=16,
                intermediate_size=128, vocab_size=100, params=1_006_400)
# MoE twin: 200,000 non-expert linear weights + 8 routed experts of 100,000 (all layers), top-2.
TOY_MOE = ModelSpec(name="toy-moe", n_layers=2, hidden_size=64, n_heads=4, n_kv_heads=2, head_dim=16,
                    intermediate_size=128, vocab_size=100, params=1_006_400, active_params=406_400,
                    n_experts=8, experts_per_token=2)
GPU = GpuSpec("toy", memory_gb=1, hbm_bandwidth_gb_s=100, fp16_tflops=1.0, fp8_tflops=2.0)
P = StepParams(gemm_efficiency=0.5, gemm_efficiency_fp8=0.25, ridge_softness=0.0, attn_efficiency=0.25,
               hbm_efficiency=0.1, comm_efficiency=0.5, comm_latency_us=2, layer_overhead_us=0.0,
               iteration_overhead_ms=1)


def model(spec=TOY, params=P, **kw):
    return StepModel(spec, GPU, params, link_bandwidth_gb_s=100, **kw)


def test_prefill_every_term_by_hand():
    b = model().iteration([(1000, 0)])
    # linear: compute 2 x 1e6 x 1000 / (1e12 x 0.5) = 4 ms > weights 2e6 B / (100e9 x 0.1) = 0.2 ms
    assert b.linear_s == pytest.approx(4e-3, rel=1e-12)
    # attention: 4 x 2 layers x 64 x 1000 x (0 + 500) = 2.56e8 FLOPs / (1e12 x 0.25) = 1.024 ms
    assert b.attention_s == pytest.approx(1.024e-3, rel=1e-12)
    assert b.communication_s == 0.0 and b.overhead_s == 1e-3  # TP 1, PP 1
    assert b.total_s == pytest.approx(6.024e-3, rel=1e-12)
    # 1000 new tokens after 1000 cached: attention 4 x 2 x 64 x 1000 x 1500 / 2.5e11 = 3.072 ms
    assert model().iteration([(1000, 1000)]).attention_s == pytest.approx(3.072e-3, rel=1e-12)
    assert model().prefill_s(0, 500) == 0.0 and model().iteration() == StepBreakdown(0, 0, 0, 0)


def test_decode_every_term_by_hand():
    b = model().iteration(decode_batch=4, decode_kv_tokens=1000)
    # linear: compute 2e6 x 4 / 5e11 = 16 us < weight read 2e6 / 1e10 = 200 us
    assert b.linear_s == pytest.approx(2e-4, rel=1e-12)
    # KV: 2 x 2 layers x 2 heads x 16 x 2 B = 256 B per token x 1000 / 1e10 B/s = 25.6 us
    assert b.attention_s == pytest.approx(2.56e-5, rel=1e-12)
    assert b.total_s == pytest.approx(2e-4 + 2.56e-5 + 1e-3, rel=1e-12)


def test_tp_and_pp_communication_by_hand():
    b = model(tp=2).iteration([(1000, 0)])
    # linear halves: 2e6 x 1000 / (2 x 5e11) = 2 ms
    assert b.linear_s == pytest.approx(2e-3, rel=1e-12)
    # 2 all-reduces x 2 layers, each 2 us + 2 x 1/2 x 1000 x 64 x 2 B / (100e9 x 0.5) = 2 + 2.56 us
    assert b.communication_s == pytest.approx(4 * 4.56e-6, rel=1e-12)
    # PP 2: one hand-off of 1000 x 64 x 2 B: 2 us + 2.56 us; pipeline stages run one after another
    b = model(pp=2).iteration([(1000, 0)])
    assert b.communication_s == pytest.approx(4.56e-6, rel=1e-12)
    assert b.linear_s == pytest.approx(4e-3, rel=1e-12)
    # TP 2 decode reads half the KV per GPU (1 KV head of 2): 128 B per token
    assert model(tp=2).decode_line(1)[1] == pytest.approx(128 / 1e10, rel=1e-12)


def test_moe_reads_only_the_experts_its_tokens_touch():
    # T tokens touch 8 (1 - (6/8)^T) distinct experts: 2 at T = 1, 5.46875 at T = 4, ~8 at T = 100
    assert distinct_experts(8, 2, 1) == pytest.approx(2.0)
    assert distinct_experts(8, 2, 4) == pytest.approx(5.46875)
    m = model(TOY_MOE)
    # batch 1 reads the active weights: (200,000 + 2 x 100,000) x 2 B / 1e10 = 80 us
    assert m.iteration(decode_batch=1).linear_s == pytest.approx(8e-5, rel=1e-12)
    # batch 4: (200,000 + 5.46875 x 100,000) x 2 B / 1e10 = 149.375 us (compute 2 x 4e5 x 4 / 5e11 = 6.4 us)
    assert m.iteration(decode_batch=4).linear_s == pytest.approx(1.49375e-4, rel=1e-12)
    # a large batch reads every expert, as the dense twin does: 2e6 B / 1e10 (compute 2 x 4e5 x 100 / 5e11 = 160 us)
    assert m.iteration(decode_batch=100).linear_s == pytest.approx(2e-4, rel=1e-6)
    # FLOPs count the active weights only: prefill 1000 tokens = 2 x 4e5 x 1000 / 5e11 = 1.6 ms
    assert m.iteration([(1000, 0)]).linear_s == pytest.approx(1.6e-3, rel=1e-12)


def test_deepseek_v3_decode_reads_less_than_every_expert_at_small_batches():
    s, g = model_spec("deepseek-v3"), gpu_spec("h200")
    # the weight-read part of the linear term (no per-layer fixed cost)
    m = StepModel(s, g, StepParams(**{**step_params().__dict__, "layer_overhead_us": 0.0}), tp=8,
                  compute_dtype="fp8", weight_dtype="fp8")
    every = weights_bytes_per_gpu(s, "fp8", 8) / (g.hbm_bandwidth_gb_s * 1e9 * m.params.hbm_efficiency)
    assert m.iteration(decode_batch=1).linear_s < 0.1 * every
    assert m.iteration(decode_batch=8).linear_s < m.iteration(decode_batch=64).linear_s < every


@pytest.mark.parametrize("spec", [TOY, TOY_MOE, model_spec("llama-3-70b")])
@pytest.mark.parametrize("batch", [1, 7, 256])
def test_decode_line_is_exact(spec, batch):
    m = StepModel(spec, GPU, P, tp=2, link_bandwidth_gb_s=100)
    a, b = m.decode_line(batch)
    for k in (0.0, 1.0, 12_345.0, 3e6):
        assert m.iteration_s(decode_batch=batch, decode_kv_tokens=k) == pytest.approx(a + b * k, rel=1e-14, abs=0)
    assert m.decode_line(0) == (0.0, 0.0)


def test_ridge_softness_and_layer_overhead_by_hand():
    # 125 tokens: compute 2e6 x 125 / 5e11 = 0.5 ms, weight read 0.2 ms
    soft = StepParams(**{**P.__dict__, "ridge_softness": 0.5, "layer_overhead_us": 30.0})
    b = model(params=soft).iteration(decode_batch=125)
    # (0.5^2 + 0.2^2)^(1/2) ms = sqrt(0.29) ms, + 2 layers x 30 us
    assert b.linear_s == pytest.approx(math.sqrt(0.29) * 1e-3 + 60e-6, rel=1e-12)
    summed = StepParams(**{**P.__dict__, "ridge_softness": 1.0})
    assert model(params=summed).iteration(decode_batch=125).linear_s == pytest.approx(0.7e-3, rel=1e-12)
    assert model().iteration(decode_batch=125).linear_s == pytest.approx(0.5e-3, rel=1e-12)  # 0 = the max
    # the decode line stays exact under both: a + b x K for any K
    a, k = model(params=soft).decode_line(125)
    for K in (0.0, 1e4, 3.3e6):
        assert model(params=soft).iteration_s(decode_batch=125, decode_kv_tokens=K) == pytest.approx(a + k * K,
                                                                                                     rel=1e-12)


def test_link_defaults_to_the_gpus_own_nvlink_per_direction():
    from sim.config.gpus import intra_node_link_gb_s

    assert intra_node_link_gb_s(0, gpu_spec("a100-80g")) == 300  # 600 GB/s total, both directions
    assert intra_node_link_gb_s(0, gpu_spec("h100-sxm")) == 450
    assert intra_node_link_gb_s(200, gpu_spec("h100-sxm")) == 200
    assert intra_node_link_gb_s(0, gpu_spec("l40s"), 25) == 25  # no NVLink: the PCIe figure
    a100 = StepModel.from_config(load_config(overrides=["hardware.gpu=a100-80g", "model.name=llama-2-7b",
                                                         "model.tp=2", "compute.comm_latency_us=0"]))
    # 2 all-reduces x 32 layers of 2 x 1/2 x 4096 x 2 B per token over 300 GB/s x comm_efficiency
    per_token = 64 * 4096 * 2 / (300e9 * a100.params.comm_efficiency)
    assert a100.iteration(decode_batch=10).communication_s == pytest.approx(10 * per_token, rel=1e-12)
    with pytest.raises(InputError, match="no NVLink"):
        StepModel(TOY, gpu_spec("l40s"), P, tp=2)


def test_tp4_to_tp8_speeds_prefill_up_by_less_than_2x():
    cfg = load_config(overrides=["model.name=llama-3-70b", "model.tp=4"])
    t4 = StepModel.from_config(cfg).prefill_s(2048)
    t8 = StepModel.from_config(load_config(overrides=["model.name=llama-3-70b", "model.tp=8"])).prefill_s(2048)
    assert 1.0 < t4 / t8 < 2.0


def test_one_token_prefill_is_no_cheaper_than_reading_the_weights():
    s, g = model_spec("llama-3-70b"), gpu_spec("h100-sxm")
    m = StepModel(s, g, step_params(), tp=8)
    lin_bytes = (s.params - s.vocab_size * s.hidden_size) * 2 / 8
    assert m.prefill_s(1) >= lin_bytes / (g.hbm_bandwidth_gb_s * 1e9 * m.params.hbm_efficiency)


def test_fp8_uses_the_fp8_peak_and_efficiency_where_the_gpu_has_one():
    b16, b8 = model().iteration([(1000, 0)]), model(compute_dtype="fp8").iteration([(1000, 0)])
    # FP8 GEMMs: 2e6 x 1000 / (2e12 x 0.25) = 4 ms, the same as BF16 at (1e12 x 0.5); attention stays BF16
    assert b8.linear_s == pytest.approx(4e-3, rel=1e-12) and b8.attention_s == b16.attention_s
    half = StepParams(**{**P.__dict__, "gemm_efficiency_fp8": 0.5})
    assert model(params=half, compute_dtype="fp8").iteration([(1000, 0)]).linear_s == pytest.approx(2e-3)
    # a GPU without FP8 units runs fp8 compute at the FP16 peak with the FP16 efficiency
    no_fp8 = StepModel(TOY, GpuSpec("old", 1, 100, 1.0), P, compute_dtype="fp8", link_bandwidth_gb_s=100)
    assert no_fp8.iteration([(1000, 0)]).linear_s == pytest.approx(4e-3, rel=1e-12)
    # fp8 weights halve the read: 1e6 B / 1e10 = 100 us at batch 1
    assert model(weight_dtype="fp8").iteration(decode_batch=1).linear_s == pytest.approx(1e-4, rel=1e-12)
    assert peak_flops(gpu_spec("h100-sxm"), "fp8") == 1979e12
    assert peak_flops(gpu_spec("a100-80g"), "fp8") == 312e12  # no FP8 units: the FP16 peak


@pytest.mark.parametrize("field, value", [("gemm_efficiency", 0), ("attn_efficiency", 1.5),
                                          ("hbm_efficiency", -0.1), ("comm_efficiency", float("nan")),
                                          ("ridge_softness", 1.5), ("ridge_softness", -0.1),
                                          ("gemm_efficiency_fp8", 0), ("layer_overhead_us", -1),
                                          ("iteration_overhead_ms", -0.5)])
def test_bad_params_name_their_key(field, value):
    kw = {**P.__dict__, field: value}
    with pytest.raises(InputError) as e:
        StepParams(**kw)
    assert e.value.where == f"compute.{field}"


def test_bad_config_values_and_renamed_keys():
    with pytest.raises(InputError, match="compute.hbm_efficiency"):
        load_config(overrides=["compute.hbm_efficiency=1.2"])
    for old, new in (("mfu", "gemm_efficiency"), ("decode_overhead_ms", "iteration_overhead_ms"),
                     ("max_batch_size", "max_num_seqs"), ("gemm_half_tokens", "ridge_softness")):
        with pytest.raises(InputError, match=f"compute.{old} was replaced by compute.{new}"):
            load_config(overrides=[f"compute.{old}=1"])


def test_renamed_key_in_a_profile_file(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("compute:\n  mfu: 0.4\n")
    with pytest.raises(InputError) as e:
        load_config(profile=prof)
    assert "compute.mfu was replaced by compute.gemm_efficiency" in str(e.value) and e.value.where == str(prof)


def test_service_is_prefill_plus_decode_steps():
    m = StepModel(model_spec("llama-3-8b"), gpu_spec("h100-sxm"), step_params())
    inp, out = np.array([0, 100, 3000]), np.array([1, 5, 20])
    want = [m.prefill_s(int(i)) + sum(m.iteration_s(decode_batch=1, decode_kv_tokens=int(i) + j)
                                      for j in range(1, int(o))) for i, o in zip(inp, out, strict=True)]
    assert m.service_s(inp, out) == pytest.approx(want, rel=1e-12)


def test_kv_read_uses_the_kv_size_module():
    s = model_spec("llama-3-70b")
    m = StepModel(s, gpu_spec("h100-sxm"), P, tp=8)
    assert m.decode_line(1)[1] == pytest.approx(kv_bytes_per_token(s, "fp16", 8) / (3350e9 * 0.1))


tokens = st.integers(0, 20_000)


@settings(max_examples=60, deadline=None)
@given(n=tokens, c=tokens, extra=st.integers(1, 5000), B=st.integers(0, 512), K=st.floats(0, 1e7))
def test_properties(n, c, extra, B, K):
    m = StepModel(model_spec("mixtral-8x7b"), gpu_spec("h100-sxm"), step_params(), tp=2)
    b = m.iteration([(n, c)], B, K)
    assert m.iteration_s([(n, c)], B, K) == b.total_s
    assert math.isclose(b.total_s, b.linear_s + b.attention_s + b.communication_s + b.overhead_s)
    assert m.iteration_s([(n + extra, c)], B, K) >= b.total_s  # more new tokens
    assert m.iteration_s([(n, c + extra)], B, K) >= b.total_s  # longer context
    assert m.iteration_s([(n, c)], B + 1, K) >= b.total_s  # a larger batch
    if B:
        assert m.iteration_s([(n, c)], B, K + extra) >= b.total_s  # more KV read


@pytest.mark.parametrize("name", ["llama-3-8b", "mixtral-8x7b"])
def test_array_forms_equal_the_per_iteration_floats_bit_for_bit(name):
    """prefill_s_array / service_s price each request with the same floats as the engine's per-iteration path
    (libm's pow, not numpy's array power, whose AVX-512 build rounds differently: the report's prefill
    figures then differed between machines in the last place)."""
    m = StepModel(model_spec(name), gpu_spec("h100-sxm"), step_params(), tp=2)
    assert m.params.ridge_softness > 0  # the power is taken
    rng = np.random.default_rng(1)
    n = np.concatenate([[0, 1, 2, 16, 4096], rng.integers(0, 200_000, 2000)])
    c = rng.integers(0, 100_000, len(n))
    got = m.prefill_s_array(n, c)
    assert [float(x) for x in got] == [m.prefill_s(int(a), int(b)) for a, b in zip(n, c, strict=True)]
    half = n + 0.5  # not whole tokens: the per-distinct-value path, same floats
    assert [float(x) for x in m._linear(half)] == [m._linear_one(float(t)) for t in half]
    assert m._linear(np.array([], dtype=np.int64)).shape == (0,)
