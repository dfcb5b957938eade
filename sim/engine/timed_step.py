"""The compiled twins of the timed single-node model's arithmetic, bit-identical to the Python.

A compiled timed event loop must price iterations, decode stretches, load-or-recompute choices and the
iteration histogram without leaving numba, and its results must equal the Python model's to the last bit
(a timed run's figures must not depend on which engine ran it). Each function here is one of:

* ``sim.timing.step_cost.StepModel``: ``linear_comm_one``, ``iteration_s``, ``prefill_s``, ``decode_line``,
  on the model's constants packed by ``step_array`` (indices: the module constants below);
* ``sim.replica.step.DecodeLine``: ``span``, ``done_by``;
* ``sim.timing.overlap``: ``prefill_done_s``, ``ready_offset_s`` (``overlap_none``: "none", else "layerwise");
* ``sim.timing.load_policy``: ``choose_prefix3``, ``hbm_only3`` for exactly three parts (HBM, DRAM, SSD)
  priced by ``StepModel.prefill_s``;
* ``sim.replica.histogram.IterationHistogram``: ``hist_add``, ``hist_add_progression`` on arrays made by
  ``hist_arrays`` and written back by ``hist_into``,

doing the same IEEE operations in the same order as the Python (tests/engine/test_timed_step.py checks
them bit for bit). Two Python habits need care in numba:

* ``float ** int`` is C ``pow`` in Python, but repeated multiplication in numba (which rounds differently),
  so every power is ``math.pow`` of two floats (numba lowers it to libm's ``pow``, the one CPython calls);
* Python ints do not overflow. The integer products here (``batch x k x (k - 1)`` in ``span``) are exact
  while they stay below 2^63, far beyond any batch and stretch length a run reaches.

The inputs are taken as valid (the Python's ``ValueError`` checks are the caller's).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from sim.replica.histogram import LO_S, PER_DECADE, IterationHistogram
from sim.timing.step_cost import StepModel

# indices into step_array's result
FLOP_S = 0  # StepModel._flop_s: seconds of GEMM compute per token
W_FIXED_S = 1  # _w_fixed_s: weight read every iteration pays
W_EXPERT_S = 2  # _w_expert_s: weight read per distinct routed expert touched
N_EXPERTS = 3  # _E: routed experts (0.0: dense)
TOP_K = 4  # _k: experts per token
KV_S = 5  # _kv_s: seconds per KV token read
ATTN_FLOP_S = 6  # _attn_flop_s: seconds per prefill attention FLOP unit
LAYERS_S = 7  # _layers_s: fixed per-layer time of an iteration
COMM_FIXED_S = 8  # _comm_fixed_s: all-reduce / hand-off latency per iteration
COMM_TOK_S = 9  # _comm_tok_s: communication seconds per token
OVERHEAD_S = 10  # _overhead_s: per-iteration overhead
RIDGE = 11  # params.ridge_softness
N_STEP = 12


def step_array(step: StepModel) -> np.ndarray:
    """The constants of `step` the compiled functions read, as float64 at the indices above."""
    S = np.zeros(N_STEP, dtype=np.float64)
    S[FLOP_S] = step._flop_s
    S[W_FIXED_S] = step._w_fixed_s
    S[W_EXPERT_S] = step._w_expert_s
    S[N_EXPERTS] = step._E
    S[TOP_K] = step._k
    S[KV_S] = step._kv_s
    S[ATTN_FLOP_S] = step._attn_flop_s
    S[LAYERS_S] = step._layers_s
    S[COMM_FIXED_S] = step._comm_fixed_s
    S[COMM_TOK_S] = step._comm_tok_s
    S[OVERHEAD_S] = step._overhead_s
    S[RIDGE] = step.params.ridge_softness
    return S


# ---------------------------------------------------------------- StepModel


@njit(cache=True)
def _linear_one(S, T):
    """StepModel._linear_one of T tokens (a float)."""
    if T <= 0:
        return 0.0
    E = S[N_EXPERTS]
    if E != 0.0:
        # distinct_experts; math.pow of floats is libm's pow, as Python's ``float ** int`` is
        read = S[W_FIXED_S] + S[W_EXPERT_S] * (E * (1.0 - math.pow(1.0 - S[TOP_K] / E, T)))
    else:
        read = S[W_FIXED_S] + 0.0
    compute = S[FLOP_S] * T
    if compute >= read:
        hi, lo = compute, read
    else:
        hi, lo = read, compute
    s = S[RIDGE]
    if s > 0:
        ratio = lo / hi if hi > 0 else 0.0
        hi = hi * math.pow(1.0 + math.pow(ratio, 1.0 / s), s)
    return hi + S[LAYERS_S]


@njit(cache=True)
def linear_comm_one(S, T):
    """StepModel._linear_comm_one: (linear, communication) seconds of an iteration of T > 0 tokens (an int)."""
    return _linear_one(S, float(T)), S[COMM_FIXED_S] + S[COMM_TOK_S] * T


@njit(cache=True)
def iteration_s(S, chunk_new, chunk_cached, m, B, K):
    """StepModel.iteration_s of the prefill chunks (chunk_new[j], chunk_cached[j]), j < m, and a decode batch
    of B requests reading K KV tokens (the Python's memo holds exact values, so this computes afresh)."""
    T = B
    attn_flops = 0.0
    for j in range(m):
        n = chunk_new[j]
        T += n
        attn_flops += n * (chunk_cached[j] + n / 2.0)
    if T == 0:
        return 0.0
    attention = attn_flops * S[ATTN_FLOP_S] + (K * S[KV_S] if B != 0 else 0.0)
    linear, comm = linear_comm_one(S, T)
    return linear + attention + comm + S[OVERHEAD_S]


@njit(cache=True)
def prefill_s(S, n, c):
    """StepModel.prefill_s: n new tokens on top of c cached ones, alone in one iteration (n = 0: 0.0)."""
    if n == 0:
        return 0.0
    attention = n * (c + n / 2.0) * S[ATTN_FLOP_S]
    linear, comm = linear_comm_one(S, n)
    return linear + attention + comm + S[OVERHEAD_S]


@njit(cache=True)
def decode_line(S, B):
    """StepModel.decode_line: (a, b) of a decode-only iteration of B requests, a + b x KV tokens."""
    if B <= 0:
        return 0.0, 0.0
    # the Python adds _linear(B) (of float(B)) and the 0-d _comm(B), then the overhead
    return (_linear_one(S, float(B)) + (S[COMM_FIXED_S] + S[COMM_TOK_S] * B)) + S[OVERHEAD_S], S[KV_S]


# ---------------------------------------------------------------- DecodeLine


@njit(cache=True)
def span(a, b, k, B, K):
    """DecodeLine(a, b).span(k, B, K): seconds of k decode iterations from K KV tokens growing by B."""
    # B * k * (k - 1) is an integer product in Python, converted once for the division
    return k * a + b * (k * K + B * k * (k - 1) / 2.0)


@njit(cache=True)
def done_by(a, b, dt, B, K):
    """DecodeLine(a, b).done_by(dt, B, K): the largest j with span(j) <= dt."""
    if dt <= 0:
        return 0
    qa = b * B / 2.0
    qb = a + b * K - qa
    if qa > 0:
        j = int((-qb + math.sqrt(qb * qb + 4 * qa * dt)) / (2 * qa))
    else:
        j = int(dt / qb)
    tol = 1e-12 * (dt if dt > 1.0 else 1.0)  # max(1.0, dt)
    while span(a, b, j + 1, B, K) <= dt + tol:
        j += 1
    while j > 0 and span(a, b, j, B, K) > dt + tol:
        j -= 1
    return j


# ---------------------------------------------------------------- overlap


@njit(cache=True, inline="always")
def _max3(x, y, z):
    """Python's max(x, y, z): the first of the largest, so a 0.0 / -0.0 tie resolves as in Python."""
    m = x
    if y > m:
        m = y
    if z > m:
        m = z
    return m


@njit(cache=True, inline="always")
def _done(load_s, prefill, layers, overlap_none, start_s):
    start_s = start_s if start_s > 0.0 else 0.0
    if load_s == 0:
        return start_s + prefill
    if overlap_none:
        return (load_s if load_s > start_s else start_s) + prefill  # max(start_s, load_s)
    return _max3(start_s + prefill, load_s / layers + prefill, load_s + prefill / layers)


@njit(cache=True)
def prefill_done_s(load_s, prefill, layers, overlap_none, start_s):
    """overlap.prefill_done_s: seconds from "load starts" to "prefill done"."""
    return _done(load_s, prefill, layers, overlap_none, start_s)


@njit(cache=True)
def ready_offset_s(load_s, prefill, layers, overlap_none):
    """overlap.ready_offset_s: the latest the compute may start without finishing later."""
    return _done(load_s, prefill, layers, overlap_none, 0.0) - prefill


# ---------------------------------------------------------------- load policy


@njit(cache=True, inline="always")
def _cut_load(tokens, loads, k):
    """(cached tokens, load seconds) of cut k: the largest load of the non-empty parts 1..k-1, 0.0 if none
    (the first non-empty part's load is taken as is, like the Python's ``load is None`` start)."""
    used = tokens[0]
    load = 0.0
    have = False
    for j in range(1, k):
        used += tokens[j]
        if tokens[j] > 0 and (not have or loads[j] > load):
            load = loads[j]
            have = True
    return used, load


@njit(cache=True)
def choose_prefix3(S, tokens, loads, input_tokens, layers, overlap_none, faster):
    """load_policy.choose_prefix over parts (tokens[0] in HBM, (tokens[1], loads[1]), (tokens[2], loads[2]))
    priced by StepModel.prefill_s, start 0: (parts_used, tokens_used, recomputed_tokens, load_s, prefill_s,
    done_s). ``faster``: policy "faster", else "always"."""
    total = tokens[0] + tokens[1] + tokens[2]
    last = 1 if faster else 3
    best_k, best_used = 0, 0
    best_load = best_pre = best_done = 0.0
    for k in range(3, last - 1, -1):  # from "load everything" down: on a tie the earlier cut stays
        if k < 3 and tokens[k] == 0:
            continue  # an empty part dropped: a tie with cut k + 1
        used, load = _cut_load(tokens, loads, k)
        pre = prefill_s(S, input_tokens - used, used)
        done = _done(load, pre, layers, overlap_none, 0.0)
        if best_k == 0 or done < best_done:
            best_k, best_used, best_load, best_pre, best_done = k, used, load, pre, done
    return best_k, best_used, total - best_used, best_load, best_pre, best_done


@njit(cache=True)
def hbm_only3(S, hbm_tokens, input_tokens):
    """load_policy.hbm_only(hbm_tokens, input_tokens, StepModel.prefill_s, 3): the same tuple."""
    pre = prefill_s(S, input_tokens - hbm_tokens, hbm_tokens)
    return 3, hbm_tokens, 0, 0.0, pre, 0.0 + pre


# ---------------------------------------------------------------- histogram
#
# An IterationHistogram as arrays: counts (int64, n_bins: its _c), tot (int64, 1: total), acc (float64, 1:
# sum_s), edges (float64, n_bins + 1: its _edges) and log_lo (its _log_lo); PER_DECADE and LO_S are the
# histogram module's constants, n_bins is len(counts).


def hist_arrays(h: IterationHistogram) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(counts, tot, acc, edges, log_lo) holding `h`'s counts, total and sum (empty for a new histogram)."""
    return (np.array(h._c, dtype=np.int64), np.array([h.total], dtype=np.int64),
            np.array([h.sum_s], dtype=np.float64), np.array(h._edges, dtype=np.float64), h._log_lo)


def hist_into(h: IterationHistogram, counts: np.ndarray, total: int, sum_s: float) -> None:
    """Set `h`'s counts, total and sum to the arrays' (replacing what it held)."""
    h.counts = counts
    h.total = int(total)
    h.sum_s = float(sum_s)


@njit(cache=True)
def _bin(log_lo, n_bins, x):
    if x <= LO_S:
        return 0
    b = int((math.log10(x) - log_lo) * PER_DECADE)
    return b if b < n_bins else n_bins - 1


@njit(cache=True)
def hist_add(counts, tot, acc, log_lo, x):
    """IterationHistogram.add(x)."""
    counts[_bin(log_lo, counts.size, x)] += 1
    tot[0] += 1
    acc[0] += x


@njit(cache=True)
def hist_add_progression(counts, tot, acc, edges, log_lo, first, step, k):
    """IterationHistogram.add_progression(first, step, k): k iterations first, first + step, ..."""
    if k <= 0:
        return
    tot[0] += k
    acc[0] += k * first + step * k * (k - 1) / 2.0
    n_bins = counts.size
    if step <= 0 or k == 1:
        counts[_bin(log_lo, n_bins, first)] += k
        return
    last = first + step * (k - 1)
    b, b_last = _bin(log_lo, n_bins, first), _bin(log_lo, n_bins, last)
    j = 0
    while b < b_last:
        # min(k, max(j, ceil(q))), clamped before converting: ceil(q) may not fit an int64
        q = (edges[b + 1] - first) / step
        if q <= j:
            upto = j
        elif q >= k:
            upto = k
        else:
            upto = int(math.ceil(q))
        counts[b] += upto - j
        j = upto
        b += 1
    counts[b_last] += k - j


__all__ = ["ATTN_FLOP_S", "COMM_FIXED_S", "COMM_TOK_S", "FLOP_S", "KV_S", "LAYERS_S", "N_EXPERTS", "N_STEP",
           "OVERHEAD_S", "RIDGE", "TOP_K", "W_EXPERT_S", "W_FIXED_S", "choose_prefix3", "decode_line", "done_by",
           "hbm_only3", "hist_add", "hist_add_progression", "hist_arrays", "hist_into", "iteration_s",
           "linear_comm_one", "prefill_done_s", "prefill_s", "ready_offset_s", "span", "step_array"]
