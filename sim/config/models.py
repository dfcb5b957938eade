"""Model architectures: ``ModelSpec``, the presets, HuggingFace ``config.json`` loading.

A spec holds the figures that decide KV size, weight size and FLOPs; the
sizes themselves are computed in ``sim.config.kv_sizes``. Parameter counts are
estimated from the architecture (``_estimate_params``) unless a preset pins
the published ones.
"""
from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import InputError


@dataclass(frozen=True)
class ModelSpec:
    """Architecture figures that decide KV size, weight size and FLOPs.

    ``head_dim`` is the per-head dimension of K and V (for MLA: the V / no-RoPE
    head dim, 128 for DeepSeek-V3; it is only used by the attention FLOPs
    term). ``params`` counts every weight including embeddings;
    ``active_params`` is what one token touches (MoE: shared parts + top-k
    experts; dense: = params). ``kv_cache_layer_count`` is how many layers keep
    a per-token KV cache (= n_layers except in hybrid models whose other layers
    are linear attention / SSM / sliding-window).
    """

    name: str
    n_layers: int
    hidden_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    params: int
    active_params: int = 0          # 0 = dense: same as params
    attention: str = ""             # "mha" | "gqa" | "mla"; "" = mha if kv heads == heads else gqa
    kv_lora_rank: int = 0           # MLA latent dimension (0 unless mla)
    qk_rope_head_dim: int = 0       # MLA decoupled RoPE key dimension (0 unless mla)
    kv_cache_layer_count: int = 0   # 0 = n_layers
    max_context: int = 4096         # tokens (max_position_embeddings of config.json)
    n_experts: int = 0              # routed experts per MoE layer (0 = dense)
    experts_per_token: int = 0      # routed experts used per token

    def __post_init__(self) -> None:
        def fill(k: str, v: object) -> None:
            object.__setattr__(self, k, v)  # frozen

        if not self.active_params:
            fill("active_params", self.params)
        if not self.kv_cache_layer_count:
            fill("kv_cache_layer_count", self.n_layers)
        if not self.attention:
            fill("attention", "mha" if self.n_kv_heads == self.n_heads else "gqa")
        if self.attention not in ("mha", "gqa", "mla"):
            raise ValueError(f"{self.name}: attention must be mha|gqa|mla, got {self.attention!r}")
        if self.attention == "mla" and self.kv_lora_rank <= 0:
            raise ValueError(f"{self.name}: mla needs kv_lora_rank > 0")
        for k in ("n_layers", "hidden_size", "n_heads", "n_kv_heads", "head_dim", "params", "max_context"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{self.name}: {k} must be > 0")
        if not 0 < self.kv_cache_layer_count <= self.n_layers:
            raise ValueError(f"{self.name}: kv_cache_layer_count must be in 1..n_layers")

    @property
    def is_moe(self) -> bool:
        return self.n_experts > 0

    @property
    def attn_hidden(self) -> int:
        """n_heads x head_dim: the width of the attention score/value products."""
        return self.n_heads * self.head_dim


# ---------------------------------------------------------- parameter counts


# Upper bounds of config.json sizes: far above any real model, low enough that the sizes stay exact
# and loops over layers stay short (README "Limits").
MAX_HF_INT = 1 << 31
MAX_HF_LAYERS = 10_000
MAX_HF_CONFIG_BYTES = 16 << 20
MAX_NAME_CHARS = 255


def _pos_int(d: dict[str, Any], key: str, where: str, default: Any = None) -> int:
    v = d.get(key, default)
    if v is None:
        v = default
    bad = isinstance(v, bool) or not isinstance(v, (int, float))
    if not bad:
        bad = not math.isfinite(v) or v != int(v) or v <= 0
    if bad:
        got = repr(v)
        raise InputError(f"key {key!r} must be a positive integer (got {got[:40]})", where=where)
    hi = MAX_HF_LAYERS if "layer" in key else MAX_HF_INT
    if v > hi:
        shown = f"{int(v):,}" if v < 1e15 else f"{v:.3g}"
        raise InputError(f"key {key!r} is {shown}; the limit is {hi:,}", where=where)
    return int(v)


def _opt_int(d: dict[str, Any], key: str, where: str) -> int:
    """An optional positive integer key: 0 when absent/null/0, else checked like the required ones."""
    return _pos_int(d, key, where) if d.get(key) not in (None, 0, False) else 0


def _estimate_params(d: dict[str, Any], n_layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int,
                     inter: int, vocab: int, where: str) -> tuple[int, int, int, int]:
    """(params, active_params, n_experts, experts_per_token) from an HF-style dict.

    Counts: token embedding (+ untied lm_head), per layer the attention
    projections (+ q/k/v bias for Qwen2-style models, + q/k norms for Qwen3),
    a gated (SwiGLU: gate, up, down) MLP or MoE block, two RMSNorms, and the
    final norm. Reproduces the published counts of Llama-2/3, Mistral, Mixtral,
    Qwen2.5 exactly and DeepSeek-V3 to 0.01%. Layers of other kinds in hybrid
    models (mamba, linear attention) are counted as if they were attention
    layers (an approximation; those layers hold no KV either way).
    """
    mtype = str(d.get("model_type", "")).lower()
    tied = bool(d.get("tie_word_embeddings", False))
    embed = vocab * hidden * (1 if tied else 2)

    # ---- attention
    if d.get("kv_lora_rank"):
        q_lora = _opt_int(d, "q_lora_rank", where)
        nope = _opt_int(d, "qk_nope_head_dim", where) or head_dim
        rope = _opt_int(d, "qk_rope_head_dim", where)
        v_dim = _opt_int(d, "v_head_dim", where) or head_dim
        r = _pos_int(d, "kv_lora_rank", where)
        q = (hidden * q_lora + q_lora + q_lora * heads * (nope + rope)) if q_lora else hidden * heads * (nope + rope)
        attn = q + hidden * (r + rope) + r + r * heads * (nope + v_dim) + heads * v_dim * hidden
    else:
        q_out, kv_out = heads * head_dim, kv_heads * head_dim
        attn = hidden * q_out + 2 * hidden * kv_out + q_out * hidden
        if mtype in ("qwen", "qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl") or d.get("qkv_bias"):
            attn += q_out + 2 * kv_out                     # q/k/v bias
        elif d.get("attention_bias"):
            attn += q_out + 2 * kv_out + hidden            # q/k/v/o bias (Llama-style flag)
        if mtype.startswith("qwen3") or d.get("qk_norm") or d.get("use_qk_norm"):
            attn += 2 * head_dim                           # q_norm, k_norm
    norms = 2 * hidden

    # ---- MLP / MoE
    n_exp = (_opt_int(d, "num_local_experts", where) or _opt_int(d, "n_routed_experts", where)
             or _opt_int(d, "num_experts", where))
    dense_mlp = 3 * hidden * inter
    if n_exp:
        top_k = (_opt_int(d, "num_experts_per_tok", where) or _opt_int(d, "num_experts_per_token", where)
                 or _opt_int(d, "moe_topk", where))
        if not top_k:
            raise InputError("MoE config (experts given) is missing key 'num_experts_per_tok'", where=where)
        moe_inter = _opt_int(d, "moe_intermediate_size", where) or inter
        expert = 3 * hidden * moe_inter
        shared = _opt_int(d, "n_shared_experts", where) * expert
        if d.get("shared_expert_intermediate_size"):
            shared += 3 * hidden * _pos_int(d, "shared_expert_intermediate_size", where) + hidden  # + shared gate
        router = hidden * n_exp
        mlp_only = d.get("mlp_only_layers")
        dense_layers = _opt_int(d, "first_k_dense_replace", where) + (len(mlp_only) if isinstance(mlp_only, list)
                                                                       else 0)
        dense_layers = min(dense_layers, n_layers)
        moe_layers = n_layers - dense_layers
        total_mlp = dense_layers * dense_mlp + moe_layers * (n_exp * expert + shared + router)
        active_mlp = dense_layers * dense_mlp + moe_layers * (top_k * expert + shared + router)
    else:
        top_k = 0
        total_mlp = active_mlp = n_layers * dense_mlp

    base = embed + n_layers * (attn + norms) + hidden
    return base + total_mlp, base + active_mlp, n_exp, top_k


def _kv_layers(d: dict[str, Any], n_layers: int, where: str) -> int:
    """Layers holding a per-token KV cache, from explicit or hybrid-layout keys.

    Accepted (first match wins): ``kv_cache_layer_count``; ``layer_types``
    (entries "full_attention"/"attention"/"global" count; "sliding_attention"
    layers are excluded because their KV is bounded by the window, a constant
    per request rather than per token; "linear_attention"/"mamba" hold none);
    ``layers_block_type`` (entries "attention"); Jamba's ``attn_layer_period``
    + ``attn_layer_offset``; Qwen3-Next's ``full_attention_interval``.
    """
    if d.get("kv_cache_layer_count") is not None:
        n = _pos_int(d, "kv_cache_layer_count", where)
        if n > n_layers:
            raise InputError(f"kv_cache_layer_count={n} exceeds num_hidden_layers={n_layers}", where=where)
        return n
    for key, kinds in (("layer_types", {"full_attention", "attention", "global", "global_attention"}),
                       ("layers_block_type", {"attention", "full_attention"})):
        types = d.get(key)
        if isinstance(types, list) and types:
            n = sum(1 for t in types if str(t).lower() in kinds)
            if n == 0:
                raise InputError(f"{key!r} lists no full-attention layer, so no layer holds a KV cache", where=where)
            return n
    if d.get("attn_layer_period") and d.get("attn_layer_offset") is not None:
        period = _pos_int(d, "attn_layer_period", where)
        offset = _opt_int(d, "attn_layer_offset", where)
        return sum(1 for i in range(n_layers) if i % period == offset) or n_layers
    if d.get("full_attention_interval"):
        k = _pos_int(d, "full_attention_interval", where)
        return sum(1 for i in range(n_layers) if (i + 1) % k == 0) or n_layers
    return n_layers


_REQUIRED_ALIASES = {
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_attention_heads": ("num_attention_heads", "n_head"),
    "intermediate_size": ("intermediate_size", "ffn_hidden_size"),
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "max_position_embeddings": ("max_position_embeddings", "seq_length", "max_sequence_length", "n_positions"),
}


def _spec_from_hf(d: object, name: str, where: str) -> ModelSpec:
    """Build a ModelSpec from a HuggingFace config.json dict."""
    if not isinstance(d, dict):
        raise InputError("config.json must be a JSON object", where=where)
    if "text_config" in d and "num_hidden_layers" not in d and isinstance(d["text_config"], dict):
        d = {**d, **d["text_config"]}  # multimodal wrappers keep the LM under text_config

    def req(key: str) -> int:
        for alias in _REQUIRED_ALIASES[key]:
            if d.get(alias) is not None:
                return _pos_int(d, alias, where)
        raise InputError(f"missing required key {key!r}", where=where)

    n_layers = req("num_hidden_layers")
    hidden = req("hidden_size")
    heads = req("num_attention_heads")
    inter = req("intermediate_size")
    vocab = req("vocab_size")
    max_ctx = req("max_position_embeddings")
    if str(d.get("model_type", "")).lower() == "qwen":
        inter //= 2  # Qwen(1) config.json lists 2x the per-projection FFN width
    kv_heads = _pos_int(d, "num_key_value_heads", where, default=heads)
    if heads % kv_heads:
        raise InputError(f"num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}",
                         where=where)
    kv_lora = d.get("kv_lora_rank")
    if kv_lora:
        kv_lora = _pos_int(d, "kv_lora_rank", where)
        if d.get("qk_rope_head_dim") is None:
            raise InputError("missing required key 'qk_rope_head_dim' (MLA config has kv_lora_rank)", where=where)
        rope = _pos_int(d, "qk_rope_head_dim", where)
        head_dim = (_opt_int(d, "v_head_dim", where) or _opt_int(d, "qk_nope_head_dim", where)
                    or _opt_int(d, "head_dim", where) or hidden // heads)
        attention, kv_heads = "mla", heads
    else:
        kv_lora, rope = 0, 0
        head_dim = _pos_int(d, "head_dim", where, default=d.get("kv_channels") or hidden // heads)
        attention = "mha" if kv_heads == heads else "gqa"
    kv_layers = _kv_layers(d, n_layers, where)
    params, active, n_exp, top_k = _estimate_params(d, n_layers, hidden, heads, kv_heads, head_dim,
                                                    inter, vocab, where)
    # Presets may pin the published counts (a config.json never carries them).
    params = int(d.get("_params") or params)  # presets only (a config.json has no such keys)
    active = int(d.get("_active_params") or (active if n_exp else params))
    return ModelSpec(
        name=name, n_layers=n_layers, hidden_size=hidden, n_heads=heads, n_kv_heads=kv_heads,
        head_dim=head_dim, intermediate_size=inter, vocab_size=vocab, params=params,
        active_params=active, attention=attention, kv_lora_rank=kv_lora, qk_rope_head_dim=rope,
        kv_cache_layer_count=kv_layers, max_context=max_ctx, n_experts=n_exp, experts_per_token=top_k,
    )


def spec_from_dict(d: object, name: str, where: str) -> ModelSpec:
    """ModelSpec from the contents of a HuggingFace config.json already in memory (the web UI's
    pasted or uploaded config); InputError naming `where` and the key on bad contents."""
    return _spec_from_hf(d, name, where)


def load_hf_config(path: str | Path) -> ModelSpec:
    """ModelSpec from a local HuggingFace ``config.json`` (or a directory holding one).

    Reads num_hidden_layers, hidden_size, num_attention_heads,
    num_key_value_heads (default: = heads), head_dim (default hidden/heads),
    intermediate_size, vocab_size, max_position_embeddings; MLA keys
    kv_lora_rank/qk_rope_head_dim; MoE keys num_local_experts / num_experts /
    n_routed_experts, num_experts_per_tok, moe_intermediate_size,
    n_shared_experts, first_k_dense_replace; hybrid layouts (see _kv_layers).
    Parameter counts are estimated from the architecture. A missing required
    key raises InputError naming the file and the key.
    """
    from sim.io_safe import read_text_file

    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise InputError("model config not found (expected a HuggingFace config.json)", where=str(p))
    text = read_text_file(p, "model config", MAX_HF_CONFIG_BYTES)
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        line = f":{e.lineno}" if isinstance(e, json.JSONDecodeError) else ""
        raise InputError(f"not valid JSON ({str(e)[:120]})", where=f"{p}{line}") from None
    name = None
    if isinstance(d, dict):
        name = d.get("_name_or_path")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        name = p.parent.name if p.name == "config.json" and p.parent.name else p.stem
    return _spec_from_hf(d, str(name), str(p))


# Real architecture values, copied from each model's HuggingFace config.json
# (repository in the comment). Parameter counts are computed by
# _estimate_params from these, which matches the safetensors totals
# (e.g. Llama-3-70B 70,553,706,496; Llama-3.1-405B 405,853,388,800;
# Mixtral 46,702,792,704 total / 12,879,925,248 active; Qwen2.5-72B
# 72,706,203,648), unless pinned with _params/_active_params.
_LLAMA3_VOCAB = 128256
_PRESET_CONFIGS: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-2-7b-hf
    "llama-2-7b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=32,
                       intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096),
    # meta-llama/Llama-2-13b-hf
    "llama-2-13b": dict(num_hidden_layers=40, hidden_size=5120, num_attention_heads=40, num_key_value_heads=40,
                        intermediate_size=13824, vocab_size=32000, max_position_embeddings=4096),
    # codellama/CodeLlama-34b-hf config.json (vocab 32000; Vidur's profile pads it to 32768, which only
    # its embedding sees)
    "codellama-34b": dict(num_hidden_layers=48, hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                          intermediate_size=22016, vocab_size=32000, max_position_embeddings=16384),
    # meta-llama/Llama-2-70b-hf
    "llama-2-70b": dict(num_hidden_layers=80, hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                        intermediate_size=28672, vocab_size=32000, max_position_embeddings=4096),
    # meta-llama/Meta-Llama-3-8B
    "llama-3-8b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                       intermediate_size=14336, vocab_size=_LLAMA3_VOCAB, max_position_embeddings=8192),
    # meta-llama/Meta-Llama-3-70B
    "llama-3-70b": dict(num_hidden_layers=80, hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                        intermediate_size=28672, vocab_size=_LLAMA3_VOCAB, max_position_embeddings=8192),
    # meta-llama/Llama-3.1-8B (same layers as Llama-3-8B, 128K context)
    "llama-3.1-8b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                         intermediate_size=14336, vocab_size=_LLAMA3_VOCAB, max_position_embeddings=131072),
    # meta-llama/Llama-3.1-70B (same layers as Llama-3-70B, 128K context)
    "llama-3.1-70b": dict(num_hidden_layers=80, hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                          intermediate_size=28672, vocab_size=_LLAMA3_VOCAB, max_position_embeddings=131072),
    # meta-llama/Llama-3.1-405B
    "llama-3.1-405b": dict(num_hidden_layers=126, hidden_size=16384, num_attention_heads=128, num_key_value_heads=8,
                           intermediate_size=53248, vocab_size=_LLAMA3_VOCAB, max_position_embeddings=131072),
    # mistralai/Mistral-7B-v0.3 (v0.3: 32768 vocab, no sliding window; v0.1's
    # 4096-token sliding window would bound its KV, which this model ignores)
    "mistral-7b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                       intermediate_size=14336, vocab_size=32768, max_position_embeddings=32768),
    # mistralai/Mixtral-8x7B-v0.1
    "mixtral-8x7b": dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
                         intermediate_size=14336, vocab_size=32000, max_position_embeddings=32768,
                         num_local_experts=8, num_experts_per_tok=2),
    # Qwen/Qwen-72B (Qwen 1: full MHA, kv_channels 128; config.json says
    # intermediate_size 49152 = 2 x the 24576 per projection; seq_length 32768)
    "qwen-72b": dict(model_type="qwen", num_hidden_layers=80, hidden_size=8192, num_attention_heads=64,
                     kv_channels=128, intermediate_size=49152, vocab_size=152064, seq_length=32768),
    # Qwen/Qwen2.5-7B
    "qwen2.5-7b": dict(model_type="qwen2", num_hidden_layers=28, hidden_size=3584, num_attention_heads=28,
                       num_key_value_heads=4, intermediate_size=18944, vocab_size=152064,
                       max_position_embeddings=131072),
    # Qwen/Qwen2.5-32B
    "qwen2.5-32b": dict(model_type="qwen2", num_hidden_layers=64, hidden_size=5120, num_attention_heads=40,
                        num_key_value_heads=8, intermediate_size=27648, vocab_size=152064,
                        max_position_embeddings=131072),
    # Qwen/Qwen2.5-72B
    "qwen2.5-72b": dict(model_type="qwen2", num_hidden_layers=80, hidden_size=8192, num_attention_heads=64,
                        num_key_value_heads=8, intermediate_size=29568, vocab_size=152064,
                        max_position_embeddings=131072),
    # Qwen/Qwen3-32B (head_dim 128 explicit: 64 x 128 = 8192 != hidden 5120;
    # 40960 native context, 131072 with YaRN)
    "qwen3-32b": dict(model_type="qwen3", num_hidden_layers=64, hidden_size=5120, num_attention_heads=64,
                      num_key_value_heads=8, head_dim=128, intermediate_size=25600, vocab_size=151936,
                      max_position_embeddings=40960),
    # deepseek-ai/deepseek-llm-67b-base (GQA 8 KV heads, 95 layers)
    "deepseek-67b": dict(num_hidden_layers=95, hidden_size=8192, num_attention_heads=64, num_key_value_heads=8,
                         intermediate_size=22016, vocab_size=102400, max_position_embeddings=4096),
    # deepseek-ai/DeepSeek-V3 (MLA; 3 dense layers then 58 MoE layers of 256
    # routed + 1 shared expert, top-8). 671B / 37B are the published counts
    # without the 14B multi-token-prediction module (HF's 685B includes it).
    "deepseek-v3": dict(model_type="deepseek_v3", num_hidden_layers=61, hidden_size=7168, num_attention_heads=128,
                        num_key_value_heads=128, intermediate_size=18432, vocab_size=129280,
                        max_position_embeddings=163840, q_lora_rank=1536, kv_lora_rank=512,
                        qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128,
                        n_routed_experts=256, n_shared_experts=1, num_experts_per_tok=8,
                        moe_intermediate_size=2048, first_k_dense_replace=3,
                        _params=671_000_000_000, _active_params=37_000_000_000),
}

PRESETS: dict[str, ModelSpec] = {
    name: _spec_from_hf(cfg, name, f"preset {name}") for name, cfg in _PRESET_CONFIGS.items()
}


# Set by presets_only(): the models a caller registered for the current context (the web UI's
# posted config.json). While set, model_spec never opens a path: a browser must not make the
# server read (or probe) its files.
_SCOPED: ContextVar[dict[str, ModelSpec] | None] = ContextVar("kvsim_scoped_models", default=None)

UNKNOWN_PRESET = "unknown model preset (or paste a config.json)"


@contextmanager
def presets_only(extra: Mapping[str, ModelSpec] | None = None) -> Iterator[None]:
    """Within the block model_spec resolves presets and `extra` (exact keys) only, never a path."""
    token = _SCOPED.set(dict(extra or {}))
    try:
        yield
    finally:
        _SCOPED.reset(token)


def model_spec(name_or_path: str) -> ModelSpec:
    """A preset by name (case-insensitive) or a HuggingFace config.json / its directory."""
    key = str(name_or_path).strip()
    scoped = _SCOPED.get()
    if scoped is not None and key in scoped:
        return scoped[key]
    if len(key) > MAX_NAME_CHARS or "\0" in key:
        raise InputError(f"model name or path must be 1..{MAX_NAME_CHARS} characters without NUL bytes "
                         f"(got {len(key):,} characters)", where="model.name")
    if key.lower() in PRESETS:
        return PRESETS[key.lower()]
    if scoped is not None:  # same answer whatever the text: no file is looked at, nothing echoed
        raise InputError(f"{UNKNOWN_PRESET}; known presets: {', '.join(PRESETS)}", where="model.name")
    shown = key if len(key) <= 80 else key[:77] + "..."  # never echo a huge input back whole
    p = Path(key).expanduser()
    try:
        exists = p.exists()
    except OSError as e:  # e.g. a path component longer than the file system allows
        raise InputError(f"not a usable path: {shown!r} ({e.strerror})", where="model.name") from None
    if exists:
        return load_hf_config(p)
    looks_like_path = "/" in key or "\\" in key or key.endswith(".json")
    hint = "no such file" if looks_like_path else "unknown model"
    raise InputError(
        f"{hint} {shown!r} (known presets: {', '.join(PRESETS)}; or give a path to a HuggingFace config.json)",
        where="model.name",
    )


# ------------------------------------------------------------- parallelism

# The largest tensor x pipeline group one replica may span. Real deployments
# stop at a few hundred GPUs per replica (DeepSeek-V3 serving: 32-320); the
# bound keeps a typo (``--pp 1000``) from modelling a meaningless replica.
MAX_REPLICA_GPUS = 1024


def check_parallelism(spec: ModelSpec, tp: object, pp: object = 1, *,
                      where_tp: str = "model.tp", where_pp: str = "model.pp") -> None:
    """Refuse a tp x pp layout the model cannot be split into (InputError naming the flag/key).

    The one place for the rule, shared by the config loader and the
    calculators. tp and pp are integers >= 1 with tp x pp <= MAX_REPLICA_GPUS;
    pp <= the model's layers (a stage holds at least one layer); tp divides the
    attention heads, and the KV heads follow vLLM's rule: kv_heads % tp == 0
    (each rank holds a share) or tp % kv_heads == 0 (each KV head replicated on
    tp / kv_heads ranks). MLA keeps one latent per token that every rank
    replicates, so only the attention heads constrain tp there.
    """
    for val, where in ((tp, where_tp), (pp, where_pp)):
        if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val < 1:
            raise InputError(f"must be an integer >= 1 (got {val!r})", where=where)
    t, p = int(tp), int(pp)  # type: ignore[call-overload]
    if t * p > MAX_REPLICA_GPUS:
        where = where_tp if p == 1 else where_pp if t == 1 else f"{where_tp} x {where_pp}"
        raise InputError(f"tp x pp = {t * p} GPUs per replica is above the limit of {MAX_REPLICA_GPUS}",
                         where=where)
    if p > spec.n_layers:
        raise InputError(f"pp {p} is more pipeline stages than {spec.name}'s {spec.n_layers} layers",
                         where=where_pp)
    if spec.n_heads % t:
        raise InputError(f"tp {t} does not divide {spec.name}'s {spec.n_heads} attention heads", where=where_tp)
    kv = spec.n_kv_heads
    if spec.attention != "mla" and kv % t and t % kv:
        raise InputError(f"tp {t} and {spec.name}'s {kv} KV heads: one must be a multiple of the other",
                         where=where_tp)
