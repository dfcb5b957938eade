"""Model/GPU specs, KV bytes per token, HF config.json loading, KV budget."""
import json

import pytest

from sim.config import config_with, load_config
from sim.config.gpus import GPUS, HOST_DEFAULTS, GpuSpec, gpu_spec
from sim.config.kv_sizes import (
    DTYPE_BYTES,
    GIB,
    kv_budget_bytes_per_gpu,
    kv_bytes_per_token,
    kv_bytes_per_token_total,
    weights_bytes,
    weights_bytes_per_gpu,
)
from sim.config.models import PRESETS, ModelSpec, load_hf_config, model_spec
from sim.errors import InputError
from tests.conftest import ROOT

# Llama-3-8B's real config.json (meta-llama/Meta-Llama-3-8B), trimmed to the keys that matter.
LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "max_position_embeddings": 8192, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "tie_word_embeddings": False,
    "vocab_size": 128256, "torch_dtype": "bfloat16",
}


def write_cfg(tmp_path, d, name="config.json"):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return p


# ------------------------------------------------------------------ KV sizes

def test_llama3_70b_fp16_is_327680_bytes_per_token():
    # 80 layers x 8 kv heads x 128 head_dim x 2 (K,V) x 2 bytes
    assert kv_bytes_per_token(model_spec("llama-3-70b"), "fp16") == 327_680
    assert kv_bytes_per_token_total(model_spec("llama-3-70b"), "bf16") == 327_680


def test_llama2_7b_mha():
    s = model_spec("llama-2-7b")
    assert s.attention == "mha"
    assert kv_bytes_per_token(s, "fp16") == 2 * 32 * 32 * 128 * 2 == 524_288


def test_deepseek_v3_mla():
    s = model_spec("deepseek-v3")
    assert s.attention == "mla" and s.kv_lora_rank == 512 and s.qk_rope_head_dim == 64
    assert s.n_layers == 61 and s.params == 671_000_000_000 and s.active_params == 37_000_000_000
    assert kv_bytes_per_token(s, "fp16") == (512 + 64) * 61 * 2 == 70_272
    assert kv_bytes_per_token(s, "fp8") == 35_136
    # The latent is replicated on every TP rank, not split.
    assert kv_bytes_per_token(s, "fp16", tp=8) == 70_272
    # PP splits layers: ceil(61/2) = 31 on the busiest stage.
    assert kv_bytes_per_token(s, "fp16", pp=2) == 576 * 31 * 2


@pytest.mark.parametrize("dtype,expected", [("fp32", 655_360), ("fp16", 327_680), ("bf16", 327_680),
                                            ("fp8", 163_840), ("int4", 81_920)])
def test_dtype_scaling(dtype, expected):
    assert kv_bytes_per_token(model_spec("llama-3-70b"), dtype) == expected


def test_dtype_bytes_table():
    assert DTYPE_BYTES == {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int4": 0.5}


def test_tp_shards_gqa_heads_and_replicates_beyond():
    s = model_spec("llama-3-70b")
    assert kv_bytes_per_token(s, "fp16", tp=2) == 163_840
    assert kv_bytes_per_token(s, "fp16", tp=8) == 40_960          # 1 kv head per GPU
    assert kv_bytes_per_token(s, "fp16", tp=16) == 40_960         # tp > kv heads: replicated, stays 1
    assert kv_bytes_per_token(s, "fp16", tp=3) == 2 * 80 * 3 * 128 * 2  # ceil(8/3)=3 on the busiest rank


def test_pp_divides_layers():
    s = model_spec("llama-3-70b")
    assert kv_bytes_per_token(s, "fp16", pp=2) == 163_840
    assert kv_bytes_per_token(s, "fp16", pp=3) == 2 * 27 * 8 * 128 * 2   # ceil(80/3)=27
    assert kv_bytes_per_token(s, "fp16", tp=8, pp=2) == 20_480


def test_bad_tp_and_dtype():
    s = model_spec("llama-3-8b")
    with pytest.raises(InputError, match="tp"):
        kv_bytes_per_token(s, "fp16", tp=0)
    with pytest.raises(InputError, match="unknown dtype 'fp4'"):
        kv_bytes_per_token(s, "fp4")


# ------------------------------------------------------------------ presets

def test_presets_exist_and_published_param_counts():
    for name in ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-405b",
                 "mistral-7b", "mixtral-8x7b", "qwen-72b", "qwen2.5-7b", "qwen2.5-32b", "qwen2.5-72b",
                 "qwen3-32b", "deepseek-67b", "deepseek-v3"]:
        assert name in PRESETS
    # Published safetensors totals.
    assert model_spec("llama-3-8b").params == 8_030_261_248
    assert model_spec("llama-3-70b").params == 70_553_706_496
    assert model_spec("llama-3.1-405b").params == 405_853_388_800
    assert model_spec("llama-2-7b").params == 6_738_415_616
    assert model_spec("qwen2.5-72b").params == 72_706_203_648
    mix = model_spec("mixtral-8x7b")
    assert mix.params == 46_702_792_704 and mix.active_params == 12_879_925_248
    for s in PRESETS.values():
        assert s.kv_cache_layer_count == s.n_layers
        assert s.active_params <= s.params


def test_preset_architectures():
    q3 = model_spec("qwen3-32b")
    assert (q3.n_layers, q3.n_heads, q3.n_kv_heads, q3.head_dim, q3.max_context) == (64, 64, 8, 128, 40960)
    assert kv_bytes_per_token(q3, "bf16") == 262_144
    assert model_spec("qwen-72b").attention == "mha"
    assert kv_bytes_per_token(model_spec("qwen-72b")) == 2 * 80 * 64 * 128 * 2
    assert kv_bytes_per_token(model_spec("deepseek-67b")) == 2 * 95 * 8 * 128 * 2
    assert kv_bytes_per_token(model_spec("qwen2.5-7b")) == 2 * 28 * 4 * 128 * 2
    assert model_spec("LLAMA-3-70B") is PRESETS["llama-3-70b"]


def test_unknown_model_lists_presets():
    with pytest.raises(InputError) as e:
        model_spec("llama-9-1t")
    msg = str(e.value)
    assert "llama-9-1t" in msg and "llama-3-70b" in msg and "deepseek-v3" in msg
    assert e.value.where == "model.name"


def test_missing_path_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        model_spec(str(tmp_path / "nope" / "config.json"))


# ------------------------------------------------------------------ HF config.json

def test_load_hf_config_llama3_8b(tmp_path):
    p = write_cfg(tmp_path, LLAMA3_8B)
    s = load_hf_config(p)
    assert (s.n_layers, s.n_kv_heads, s.head_dim, s.attention) == (32, 8, 128, "gqa")
    assert s.params == 8_030_261_248          # estimated from the architecture, = published count
    assert kv_bytes_per_token(s) == 131_072
    # model_spec takes the file or its directory.
    assert model_spec(str(p)) == s
    assert model_spec(str(tmp_path)).params == s.params


def test_load_hf_config_defaults(tmp_path):
    d = {k: v for k, v in LLAMA3_8B.items() if k != "num_key_value_heads"}
    s = load_hf_config(write_cfg(tmp_path, d))
    assert s.n_kv_heads == 32 and s.attention == "mha" and s.head_dim == 4096 // 32
    d2 = dict(LLAMA3_8B, head_dim=None)  # Mistral-style null head_dim
    assert load_hf_config(write_cfg(tmp_path, d2, "b.json")).head_dim == 128


def test_load_hf_config_missing_key_names_file_and_key(tmp_path):
    d = {k: v for k, v in LLAMA3_8B.items() if k != "num_hidden_layers"}
    p = write_cfg(tmp_path, d)
    with pytest.raises(InputError) as e:
        load_hf_config(p)
    assert "num_hidden_layers" in str(e.value)
    assert str(p) in str(e.value) and e.value.where == str(p)


def test_load_hf_config_bad_json_and_bad_value(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_hf_config(p)
    with pytest.raises(InputError, match="hidden_size"):
        load_hf_config(write_cfg(tmp_path, dict(LLAMA3_8B, hidden_size="big")))
    with pytest.raises(InputError, match="not found"):
        load_hf_config(tmp_path / "empty_dir")


def test_load_hf_config_moe_active_params(tmp_path):
    d = dict(LLAMA3_8B, model_type="mixtral", vocab_size=32000, max_position_embeddings=32768,
             num_local_experts=8, num_experts_per_tok=2)
    s = load_hf_config(write_cfg(tmp_path, d))
    assert s.params == 46_702_792_704 and s.active_params == 12_879_925_248
    assert s.n_experts == 8 and s.experts_per_token == 2
    bad = dict(d)
    del bad["num_experts_per_tok"]
    with pytest.raises(InputError, match="num_experts_per_tok"):
        load_hf_config(write_cfg(tmp_path, bad, "bad.json"))


def test_load_hf_config_mla(tmp_path):
    d = {"model_type": "deepseek_v2", "num_hidden_layers": 27, "hidden_size": 2048, "num_attention_heads": 16,
         "num_key_value_heads": 16, "intermediate_size": 10944, "vocab_size": 102400,
         "max_position_embeddings": 163840, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
         "qk_nope_head_dim": 128, "v_head_dim": 128, "q_lora_rank": None, "n_routed_experts": 64,
         "n_shared_experts": 2, "num_experts_per_tok": 6, "moe_intermediate_size": 1408,
         "first_k_dense_replace": 1}  # DeepSeek-V2-Lite
    s = load_hf_config(write_cfg(tmp_path, d))
    assert s.attention == "mla"
    assert kv_bytes_per_token(s, "bf16") == (512 + 64) * 27 * 2
    assert 15.0e9 < s.params < 16.5e9 and 2.2e9 < s.active_params < 2.9e9  # published: 15.7B / 2.4B
    no_rope = {k: v for k, v in d.items() if k != "qk_rope_head_dim"}
    with pytest.raises(InputError, match="qk_rope_head_dim"):
        load_hf_config(write_cfg(tmp_path, no_rope, "x.json"))


def test_hybrid_kv_cache_layer_count(tmp_path):
    base = {"num_hidden_layers": 48, "hidden_size": 2048, "num_attention_heads": 16, "num_key_value_heads": 2,
            "head_dim": 256, "intermediate_size": 5120, "vocab_size": 151936, "max_position_embeddings": 262144}
    # Explicit key.
    s = load_hf_config(write_cfg(tmp_path, dict(base, kv_cache_layer_count=12), "a.json"))
    assert s.kv_cache_layer_count == 12 and s.n_layers == 48
    assert kv_bytes_per_token(s, "bf16") == 2 * 12 * 2 * 256 * 2 == 24_576
    assert kv_bytes_per_token(s, "bf16", pp=2) == 2 * 6 * 2 * 256 * 2
    # Qwen3-Next style layer_types: one full-attention layer in four.
    types = (["linear_attention"] * 3 + ["full_attention"]) * 12
    s2 = load_hf_config(write_cfg(tmp_path, dict(base, layer_types=types), "b.json"))
    assert s2.kv_cache_layer_count == 12
    # Jamba-style layers_block_type.
    blocks = ["mamba"] * 40 + ["attention"] * 8
    assert load_hf_config(write_cfg(tmp_path, dict(base, layers_block_type=blocks), "c.json")).kv_cache_layer_count == 8
    with pytest.raises(InputError, match="exceeds"):
        load_hf_config(write_cfg(tmp_path, dict(base, kv_cache_layer_count=49), "d.json"))
    with pytest.raises(InputError, match="no full-attention"):
        load_hf_config(write_cfg(tmp_path, dict(base, layer_types=["mamba"] * 48), "e.json"))


# ------------------------------------------------------------------ weights

def test_weights_bytes():
    s = model_spec("llama-3-70b")
    assert weights_bytes(s, "fp16") == 141_107_412_992
    assert weights_bytes_per_gpu(s, "fp16", tp=8) == 17_638_426_624
    assert weights_bytes_per_gpu(s, "fp8", tp=4, pp=2) == 70_553_706_496 / 8
    assert weights_bytes(s, "int4") == 70_553_706_496 / 2


# ------------------------------------------------------------------ GPUs

def test_gpu_presets():
    h = gpu_spec("h100-sxm")
    assert (h.memory_gb, h.hbm_bandwidth_gb_s, h.fp16_tflops) == (80, 3350, 989)
    assert (gpu_spec("h200").memory_gb, gpu_spec("h200").hbm_bandwidth_gb_s) == (141, 4800)
    assert (gpu_spec("h20").memory_gb, gpu_spec("h20").fp16_tflops) == (96, 148)
    assert gpu_spec("a100-80g").hbm_bandwidth_gb_s == 2039 and gpu_spec("a100-40g").memory_gb == 40
    assert gpu_spec("l40s").fp16_tflops == 362 and gpu_spec("rtx-4090").memory_gb == 24
    assert gpu_spec("b200").memory_gb == 180 and gpu_spec("b200").hbm_bandwidth_gb_s == 8000
    assert gpu_spec("mi300x").memory_gb == 192
    assert gpu_spec("H100") is GPUS["h100-sxm"]
    for g in GPUS.values():
        assert isinstance(g, GpuSpec) and g.memory_gb > 0 and g.fp16_tflops > 0


def test_unknown_gpu_lists_known():
    with pytest.raises(InputError) as e:
        gpu_spec("tpu-v5")
    assert "h100-sxm" in str(e.value) and "mi300x" in str(e.value) and e.value.where == "hardware.gpu"


def test_host_defaults():
    assert HOST_DEFAULTS["dram"]["capacity_gib"] == 2048
    assert HOST_DEFAULTS["nvme"]["capacity_gib"] == 28610   # 8 x 3.84 TB in GiB
    assert all(v > 0 for tier in HOST_DEFAULTS.values() for v in tier.values())


# ------------------------------------------------------------------ KV budget

def test_kv_budget_explicit_capacity():
    cfg = config_with(load_config(), {"hardware.hbm.capacity_gib": 0.5})
    assert kv_budget_bytes_per_gpu(cfg) == GIB // 2


def test_kv_budget_derived():
    cfg = config_with(load_config(), {"hardware.hbm.capacity_gib": 0, "model.name": "llama-3-70b", "model.tp": 8})
    # 80 GiB - 141,107,412,992 / 8 - 4 GiB
    assert kv_budget_bytes_per_gpu(cfg) == 85_899_345_920 - 17_638_426_624 - 4_294_967_296 == 63_965_952_000


def test_kv_budget_weights_do_not_fit():
    cfg = config_with(load_config(), {"hardware.hbm.capacity_gib": 0, "model.name": "llama-3.1-405b",
                                      "hardware.gpu": "rtx-4090"})
    with pytest.raises(InputError) as e:
        kv_budget_bytes_per_gpu(cfg)
    assert "do not fit" in str(e.value) and e.value.where == "hardware.hbm.capacity_gib"
    assert "llama-3.1-405b" in str(e.value) and "rtx-4090" in str(e.value)


# ------------------------------------------------------------------ profiles

@pytest.mark.parametrize("name,model,tp,budget_gib", [
    ("h100_llama3_70b.yaml", "llama-3-70b", 8, 80 - 70_553_706_496 * 2 / 8 / GIB - 8.0),
    ("h20_qwen3_32b.yaml", "qwen3-32b", 4, 96 - 32_762_123_264 * 2 / 4 / GIB - 9.6),
    ("h200_deepseek_v3.yaml", "deepseek-v3", 8, 141 - 671e9 / 8 / GIB - 14.1),
])
def test_profiles_load(name, model, tp, budget_gib):
    cfg = load_config(profile=ROOT / "profiles" / name)
    assert cfg.model.name == model and cfg.model.tp == tp and cfg.hardware.hbm.capacity_gib == 0
    assert cfg.hardware.hbm.bandwidth_gb_s == gpu_spec(cfg.hardware.gpu).hbm_bandwidth_gb_s
    assert kv_budget_bytes_per_gpu(cfg) / GIB == pytest.approx(budget_gib)


def test_profiles_comment_every_key():
    for p in (ROOT / "profiles").glob("*.yaml"):
        for i, line in enumerate(p.read_text().splitlines(), 1):
            s = line.strip()
            if s and not s.startswith("#") and not s.endswith(":"):
                assert "#" in s, f"{p.name}:{i} has no comment"


def test_modelspec_validation():
    with pytest.raises(ValueError):
        ModelSpec("x", 2, 64, 4, 4, 16, 128, 100, params=10, attention="mla")
    s = ModelSpec("x", 2, 64, 4, 2, 16, 128, 100, params=10)
    assert s.active_params == 10 and s.kv_cache_layer_count == 2 and s.attention == "gqa"
