"""The step-cost model: how long one iteration of one model replica takes.

A replica is ``tp x pp`` GPUs. One iteration runs prefill chunks
``[(n_i, c_i)]`` (``n_i`` new tokens on top of ``c_i`` already in the KV
cache) and a decode batch of ``B`` requests (one token each) that reads ``K``
KV tokens in total; ``T = sum n_i + B`` tokens go through the linear layers.
The time is the sum of four terms (README "Step-cost model"):

* **linear**: per GPU, the GEMM compute and the weight read, combined by a
  softened roofline, plus a fixed cost per layer::

      compute = 2 x P_active_lin x T / tp / (peak x eff)     eff = gemm_efficiency (gemm_efficiency_fp8 for FP8 GEMMs)
      memory  = weight bytes read(T) / tp / (HBM bw x hbm_efficiency)
      linear  = (compute^(1/s) + memory^(1/s))^s + n_layers x layer_overhead_us,   s = ridge_softness

  ``s = 0`` is the plain roofline ``max(compute, memory)``, ``s = 1`` their
  sum. Near the ridge point (T of a few hundred tokens) measured GEMMs are
  slower than the max: weight streaming and tensor-core work do not overlap
  fully (Vidur's mlp.csv: Llama-2-7B on H100 at 256 tokens takes 0.26 ms per
  layer where the max of the ideal times is 0.12). Far from the ridge either
  term dominates and the rest vanishes, so decode at small batches is the
  weight read and big prefills the compute. ``layer_overhead_us`` is what a
  layer costs with (almost) no work: kernel launches and small-kernel ramp,
  separate from the bandwidth so ``hbm_efficiency`` is a bandwidth. Every
  layer of a model has the same shape, so per-layer sums equal the sum of
  the whole model (DeepSeek-V3's 3 dense layers in front of 58 MoE layers are
  averaged in; a <1% effect).
* **attention**: prefill ``4 x n_layers x attn_hidden x n x (c + n/2) / tp``
  FLOPs at the BF16/FP16 peak x ``attn_efficiency`` (QK^T and AV, 2 FLOPs per
  multiply-add; a new token sees the ``c`` cached tokens and on average half
  of the ``n`` new ones; attention kernels run in BF16 also when the GEMMs
  are FP8); decode reads the batch's KV: ``K x KV bytes per token per GPU /
  (HBM bw x hbm_efficiency)``, linear in ``K``.
* **communication**: two ring all-reduces per layer when ``tp > 1``, each
  ``comm_latency_us + 2 (tp-1)/tp x T x hidden x 2 bytes / (link x
  comm_efficiency)``; with ``pp > 1``, ``pp - 1`` hand-offs of ``T x hidden x
  2`` bytes (activations are BF16 even with FP8 GEMMs). The link is the
  per-direction intra-node bandwidth (``sim.config.gpus.intra_node_link_gb_s``:
  ``network.nvlink_bandwidth_gb_s``, 0 = the GPU's own NVLink figure / 2).
* **overhead**: ``iteration_overhead_ms`` per iteration (scheduling,
  sampling, the CPU side of an engine step).

Pipeline stages run one after another for one batch, so an iteration crosses
every layer; pp only adds hand-offs (no micro-batch overlap is modelled).

Linear parameters are ``params - vocab x hidden``: the input embedding is a
table lookup, not a GEMM; the LM head is counted as a GEMM over all ``T``
tokens (vLLM computes logits only for the last token of a prefill chunk, so
prefill FLOPs are over-counted by the LM head's share: ~1.5% for Llama-3-70B).

MoE (``n_experts = E > 0``, top-``k``): FLOPs use the active parameters; the
weight read is the non-expert part plus the experts the ``T`` tokens touch.
With independent uniform routing a given expert is missed by one token with
probability ``1 - k/E``, so ``T`` tokens touch ``E (1 - (1 - k/E)^T)`` distinct
experts per layer on average. One expert's parameters summed over the MoE
layers follow from the published totals: ``params - active_params`` is the
``E - k`` routed experts a token does not use, so one expert (all layers) =
``(params - active_params) / (E - k)``, and the non-expert part =
``params - E x that``. At T = 1 the read equals the active weights, for large
T every expert.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from sim.config.gpus import GpuSpec, gpu_spec, intra_node_link_gb_s
from sim.config.kv_sizes import dtype_bytes, kv_bytes_per_token
from sim.config.models import ModelSpec, model_spec
from sim.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from sim.config import Config
    from sim.config.schema import ComputeCfg

ACT_BYTES = 2.0  # BF16 activations on the wire (TP all-reduce, PP hand-off), also under FP8 GEMMs
BOUNDED_0_1 = ("ridge_softness",)  # StepParams fields in [0, 1] that are not efficiencies


def is_efficiency(name: str) -> bool:
    """A StepParams field that is a fraction in (0, 1] of a datasheet figure."""
    return "_efficiency" in name
_MEMO_MAX_TOKENS = 1 << 16  # iteration sizes whose linear/communication terms StepModel memoises (bounded memory)


@dataclass(frozen=True)
class StepParams:
    """Efficiencies of the step-cost model (config ``compute:`` keys of the same names)."""

    gemm_efficiency: float        # (0,1] fraction of dense BF16/FP16 peak FLOP/s large linear layers reach
    gemm_efficiency_fp8: float    # (0,1] the same for FP8 GEMMs, a fraction of the FP8 peak
    ridge_softness: float         # [0,1] how compute and weight read combine: 0 = max (roofline), 1 = sum
    attn_efficiency: float        # (0,1] fraction of BF16/FP16 peak FLOP/s prefill attention reaches
    hbm_efficiency: float         # (0,1] fraction of datasheet HBM bandwidth weight and KV reads reach
    comm_efficiency: float        # (0,1] fraction of intra-node link bandwidth a TP all-reduce reaches
    comm_latency_us: float        # >= 0 us, fixed cost per all-reduce / PP hand-off
    layer_overhead_us: float      # >= 0 us per layer per iteration: launches and small-kernel time not hidden
    iteration_overhead_ms: float  # >= 0 ms per iteration: scheduling, sampling, the engine's CPU side

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise InputError(f"must be a finite number (got {v!r})", where=f"compute.{f.name}")
            if f.name in BOUNDED_0_1:
                if not 0 <= v <= 1:
                    raise InputError(f"must be in [0, 1] (got {v!r})", where=f"compute.{f.name}")
            elif is_efficiency(f.name):
                if not 0 < v <= 1:
                    raise InputError(f"must be in (0, 1] (got {v!r})", where=f"compute.{f.name}")
            elif v < 0:
                raise InputError(f"must be >= 0 (got {v!r})", where=f"compute.{f.name}")


def step_params(compute: ComputeCfg | None = None) -> StepParams:
    """The StepParams of a config's ``compute:`` section (None: the shipped defaults)."""
    if compute is None:
        from sim.config.schema import ComputeCfg

        compute = ComputeCfg()
    return StepParams(**{f.name: getattr(compute, f.name) for f in fields(StepParams)})


@dataclass(frozen=True)
class StepBreakdown:
    """Seconds of one iteration by term."""

    linear_s: float
    attention_s: float
    communication_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return self.linear_s + self.attention_s + self.communication_s + self.overhead_s


def peak_flops(gpu: GpuSpec, dtype: str = "fp16") -> float:
    """Dense peak FLOP/s of one GPU for a compute dtype (fp8 falls back to fp16 if absent)."""
    if dtype == "fp8" and gpu.fp8_tflops > 0:
        return gpu.fp8_tflops * 1e12
    return gpu.fp16_tflops * 1e12


def soft_max(a, b, softness: float):
    """(a^(1/s) + b^(1/s))^s element-wise for a, b >= 0: s = 0 is max(a, b), s = 1 is a + b.

    Written as hi x (1 + (lo/hi)^(1/s))^s so no power of a time in seconds under- or overflows.
    """
    hi, lo = np.maximum(a, b), np.minimum(a, b)
    if softness <= 0:
        return hi
    ratio = np.divide(lo, hi, out=np.zeros_like(hi, dtype=np.float64), where=hi > 0)
    return hi * (1.0 + ratio ** (1.0 / softness)) ** softness


def linear_params(spec: ModelSpec) -> tuple[float, float, float, float]:
    """(active linear params, non-expert linear params, one routed expert's params over all MoE layers, E).

    Dense models: (P - V*H, P - V*H, 0, 0). See the module doc for the MoE derivation.
    """
    embed = float(spec.vocab_size * spec.hidden_size)
    active = spec.active_params - embed
    total = spec.params - embed
    E, k = spec.n_experts, spec.experts_per_token
    if E <= 0 or E <= k:
        return active, total, 0.0, 0.0
    expert = (spec.params - spec.active_params) / (E - k)
    return active, total - E * expert, expert, float(E)


_TABLE_MAX_TOKENS = 1 << 24  # _linear on arrays of whole token counts below this: a lookup table


def distinct_experts(n_experts: float, top_k: float, tokens):
    """Expected distinct experts ``T`` tokens touch: E (1 - (1 - k/E)^T); element-wise on arrays."""
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)


class StepModel:
    """Iteration times of one model replica (tp x pp GPUs of one GPU type)."""

    def __init__(self, spec: ModelSpec, gpu: GpuSpec, params: StepParams, *, tp: int = 1, pp: int = 1,
                 compute_dtype: str = "fp16", weight_dtype: str = "fp16", kv_dtype: str = "fp16",
                 hbm_bandwidth_gb_s: float = 0.0, link_bandwidth_gb_s: float = 0.0) -> None:
        if int(tp) != tp or tp < 1:
            raise InputError(f"tp must be an integer >= 1 (got {tp!r})", where="model.tp")
        if int(pp) != pp or pp < 1:
            raise InputError(f"pp must be an integer >= 1 (got {pp!r})", where="model.pp")
        if link_bandwidth_gb_s < 0:
            raise InputError(f"must be >= 0 (got {link_bandwidth_gb_s!r})", where="network.nvlink_bandwidth_gb_s")
        self.spec, self.gpu, self.params = spec, gpu, params
        self.tp, self.pp = int(tp), int(pp)
        self.compute_dtype, self.weight_dtype, self.kv_dtype = compute_dtype, weight_dtype, kv_dtype
        p = params
        self._peak = peak_flops(gpu, compute_dtype)
        fp8 = self._peak != peak_flops(gpu, "fp16")
        gemm_eff = p.gemm_efficiency_fp8 if fp8 else p.gemm_efficiency
        hbm = (hbm_bandwidth_gb_s or gpu.hbm_bandwidth_gb_s) * 1e9 * p.hbm_efficiency
        wb = dtype_bytes(weight_dtype, where="model.weight_dtype")
        active, nonexpert, expert, E = linear_params(spec)
        self._E, self._k = E, float(spec.experts_per_token)
        self._flop_s = 2.0 * active / (self.tp * self._peak * gemm_eff)  # seconds of GEMM compute per token
        self._w_fixed_s = nonexpert * wb / self.tp / hbm        # weight read that every iteration pays
        self._w_expert_s = expert * wb / self.tp / hbm           # per distinct routed expert touched
        self._kv_s = kv_bytes_per_token(spec, kv_dtype, self.tp, 1) / hbm  # per KV token read (all layers)
        self._attn_flop_s = 4.0 * spec.n_layers * spec.attn_hidden / (self.tp * peak_flops(gpu) * p.attn_efficiency)
        self._layers_s = spec.n_layers * p.layer_overhead_us * 1e-6
        link_gb_s = intra_node_link_gb_s(link_bandwidth_gb_s, gpu)
        if link_gb_s <= 0 and (self.tp > 1 or self.pp > 1):
            raise InputError(f"{gpu.name} has no NVLink figure: set the GPU-to-GPU link bandwidth",
                             where="network.nvlink_bandwidth_gb_s")
        link = (link_gb_s or 1.0) * 1e9 * p.comm_efficiency  # (unused at tp = pp = 1)
        lat = p.comm_latency_us * 1e-6
        n_ar = 2 * spec.n_layers if self.tp > 1 else 0
        self._comm_fixed_s = n_ar * lat + (self.pp - 1) * lat
        self._comm_tok_s = (n_ar * 2.0 * (self.tp - 1) / self.tp + (self.pp - 1)) * spec.hidden_size * ACT_BYTES / link
        self._overhead_s = p.iteration_overhead_ms * 1e-3
        # (linear, communication) seconds by tokens per iteration: both depend on T alone and the engine
        # asks for the same T over and over (a memo of the exact values, not an approximation). Only
        # iterations with a decode batch are memoised: a prefill alone (a request's load-or-recompute
        # estimate) rarely repeats its size, and thousands of small entries fragment the heap (+57 MB
        # peak RSS on the cluster benchmark).
        self._by_tokens: dict[int, tuple[float, float]] = {}

    @classmethod
    def from_config(cls, cfg: Config) -> StepModel:
        c, m = cfg.compute, cfg.model
        gpu = gpu_spec(cfg.hardware.gpu)
        return cls(model_spec(m.name), gpu, step_params(c), tp=m.tp, pp=m.pp,
                   compute_dtype=c.dtype, weight_dtype=m.weight_dtype, kv_dtype=m.kv_dtype,
                   hbm_bandwidth_gb_s=cfg.hardware.hbm.bandwidth_gb_s,
                   link_bandwidth_gb_s=intra_node_link_gb_s(cfg.network.nvlink_bandwidth_gb_s, gpu,
                                                            cfg.hardware.dram.bandwidth_gb_s))

    # ------------------------------------------------------------ terms (element-wise on arrays)

    def _linear(self, T):
        """The linear-layer time of iterations of T tokens, element-wise: each distinct T through
        ``_linear_one``. numpy's power on arrays is built per machine (its AVX-512 kernels round some results
        differently from libm's pow in the last place), so computing it on arrays made the same command's
        prefill figures differ between machines; libm's pow is what the engine's per-iteration path uses."""
        a = np.asarray(T, dtype=np.float64)
        if a.ndim == 0:
            return self._linear_one(float(a))
        if not a.size:
            return np.zeros(a.shape)
        k = a.astype(np.int64)
        if k.min() >= 0 and k.max() < _TABLE_MAX_TOKENS and np.array_equal(k, a):  # token counts: a table
            table = np.zeros(int(k.max()) + 1)
            for t in np.flatnonzero(np.bincount(k.ravel())).tolist():
                table[t] = self._linear_one(float(t))
            return table[k]
        u, inv = np.unique(a, return_inverse=True)
        return np.array([self._linear_one(t) for t in u.tolist()], dtype=np.float64)[inv].reshape(a.shape)

    def _linear_one(self, T: float) -> float:
        """soft_max(compute, weight read) + the per-layer fixed time of one iteration of T tokens (0: none)."""
        if T <= 0:
            return 0.0
        read = self._w_fixed_s + (self._w_expert_s * distinct_experts(self._E, self._k, T) if self._E else 0.0)
        compute = self._flop_s * float(T)
        hi, lo = (compute, read) if compute >= read else (read, compute)
        s = self.params.ridge_softness
        if s > 0:
            ratio = lo / hi if hi > 0 else 0.0
            hi = hi * (1.0 + ratio ** (1.0 / s)) ** s
        return hi + self._layers_s

    def _comm(self, T):
        return np.where(T > 0, self._comm_fixed_s + self._comm_tok_s * T, 0.0)

    def _linear_comm_one(self, T: int) -> tuple[float, float]:
        """``_linear`` and ``_comm`` of one iteration of T > 0 tokens, in plain floats: the same operations
        in the same order as the array forms (the engine calls this per iteration, where numpy's per-call
        cost on a scalar was a tenth of a timed run)."""
        return self._linear_one(T), self._comm_fixed_s + self._comm_tok_s * T

    # ------------------------------------------------------------ API

    def iteration(self, prefill: Sequence[tuple[int, int]] = (), decode_batch: int = 0,
                  decode_kv_tokens: float = 0.0) -> StepBreakdown:
        """One iteration: prefill chunks [(new tokens, tokens already in KV)] + a decode batch.

        ``decode_batch`` requests each add one token, reading ``decode_kv_tokens``
        KV tokens in total. Nothing to do takes 0 s (no overhead either).
        """
        return StepBreakdown(*self._terms(prefill, decode_batch, decode_kv_tokens))

    def iteration_s(self, prefill: Sequence[tuple[int, int]] = (), decode_batch: int = 0,
                    decode_kv_tokens: float = 0.0) -> float:
        # StepBreakdown.total_s's sum, in its order, without building the breakdown (the engine's hot path)
        linear, attention, communication, overhead = self._terms(prefill, decode_batch, decode_kv_tokens)
        return linear + attention + communication + overhead

    def _terms(self, prefill: Sequence[tuple[int, int]], decode_batch: int,
               decode_kv_tokens: float) -> tuple[float, float, float, float]:
        """The StepBreakdown fields of one iteration, in order."""
        if decode_batch < 0 or decode_kv_tokens < 0:
            raise ValueError(f"decode batch and KV tokens must be >= 0 (got {decode_batch}, {decode_kv_tokens})")
        T = decode_batch
        attn_flops = 0.0
        for n, c in prefill:
            if n < 0 or c < 0:
                raise ValueError(f"prefill chunk token counts must be >= 0 (got new={n}, cached={c})")
            T += n
            attn_flops += n * (c + n / 2.0)
        if T == 0:
            return 0.0, 0.0, 0.0, 0.0
        attention = attn_flops * self._attn_flop_s + (decode_kv_tokens * self._kv_s if decode_batch else 0.0)
        lc = self._by_tokens.get(T)
        if lc is None:
            lc = self._linear_comm_one(T)
            if T <= _MEMO_MAX_TOKENS:
                self._by_tokens[T] = lc
        return lc[0], attention, lc[1], self._overhead_s

    def decode_line(self, decode_batch: int) -> tuple[float, float]:
        """(a, b): a decode-only iteration of ``decode_batch`` requests lasts a + b x KV tokens, exactly."""
        if decode_batch <= 0:
            return 0.0, 0.0
        B = decode_batch
        return float(self._linear(B) + self._comm(B)) + self._overhead_s, self._kv_s

    def prefill_s(self, new_tokens: int, cached_tokens: int = 0) -> float:
        """One request's prefill alone in one iteration; 0 new tokens -> 0.

        ``iteration_s([(new_tokens, cached_tokens)])`` unrolled for its one chunk and no decode batch
        (the timed modes price every request's load-or-recompute choice with it): the same operations
        on the same values (``0.0 + x`` and ``x + 0.0`` are x for the non-negative x here)."""
        n, c = new_tokens, cached_tokens
        if n < 0 or c < 0:
            raise ValueError(f"prefill chunk token counts must be >= 0 (got new={n}, cached={c})")
        if n == 0:
            return 0.0
        attention = n * (c + n / 2.0) * self._attn_flop_s
        lc = self._by_tokens.get(n)
        if lc is None:
            lc = self._linear_comm_one(n)
            if n <= _MEMO_MAX_TOKENS:
                self._by_tokens[n] = lc
        return lc[0] + attention + lc[1] + self._overhead_s

    def prefill_s_array(self, new_tokens: np.ndarray, cached_tokens: np.ndarray) -> np.ndarray:
        """``prefill_s`` element-wise: each request's prefill alone in one iteration (0 new tokens -> 0)."""
        n = np.asarray(new_tokens, dtype=np.float64)
        c = np.asarray(cached_tokens, dtype=np.float64)
        pre = self._linear(n) + n * (c + n / 2.0) * self._attn_flop_s + self._comm(n)
        return np.where(n > 0, pre + self._overhead_s, 0.0)

    def decode_share_s(self, input_tokens: np.ndarray, output_tokens: np.ndarray, batch: int) -> np.ndarray:
        """Per request, its share of the decode iterations when it runs in a batch of ``batch`` requests:
        (out - 1) steps, each a/B plus its own KV read b x (in + j), with (a, b) = decode_line(B)."""
        inp = np.asarray(input_tokens, dtype=np.float64)
        steps = np.maximum(0, np.asarray(output_tokens, dtype=np.int64) - 1).astype(np.float64)
        a, b = self.decode_line(max(1, int(batch)))
        return steps * (a / max(1, int(batch)) + b * inp) + b * steps * (steps + 1) / 2.0

    def service_s(self, input_tokens: np.ndarray, output_tokens: np.ndarray) -> np.ndarray:
        """Uncontended service per request, vectorised: cold prefill + (out - 1) decode steps at batch 1.

        Decode step j (j = 1 .. out-1) reads the prompt plus j generated tokens,
        so the steps sum to (out-1)(a + b x in) + b (out-1) out / 2 with (a, b)
        = decode_line(1).
        """
        inp = np.asarray(input_tokens, dtype=np.float64)
        steps = np.maximum(0, np.asarray(output_tokens, dtype=np.int64) - 1).astype(np.float64)
        pre = self._linear(inp) + inp * (inp / 2.0) * self._attn_flop_s + self._comm(inp)
        pre = np.where(inp > 0, pre + self._overhead_s, 0.0)
        a, b = self.decode_line(1)
        return pre + steps * (a + b * inp) + b * steps * (steps + 1) / 2.0


__all__ = ["StepBreakdown", "StepModel", "StepParams", "distinct_experts", "is_efficiency", "linear_params",
           "peak_flops", "soft_max", "step_params"]
