"""Generate a trace from a fit model, streamed to disk (``python main.py trace synth``).

Sessions start as a modulated renewal process: gaps are gamma with the fitted
coefficient of variation ``gap_cv`` and mean ``1 / (rate x profile(t))``, the
``rate_profile`` repeating with period ``len(profile) x bin_s``. A session
picks a root with probability proportional to the root's ``sessions`` (or no
root, ``private_sessions``), draws its turn count from the ``turns``
histogram, and then emits turns ``think_time_s`` apart. Turn 0 is the root's
blocks plus ``first_new_tokens`` tokens; turn k keeps its previous turn's full
blocks (probability ``extend_share``) or a ``branch_keep_share`` fraction of
them, then adds ``new_tokens`` tokens. Each new full block gets a fresh id, the
last partial block too, so a block id names its whole prefix as in Mooncake.
Output lengths are drawn per request.

The process starts ``warmup_s`` seconds before time 0 and only requests at
t >= 0 are written, so the trace starts in steady state. Requests are merged
in time order from a heap of the active sessions only: memory is bounded by the
live session population, not by the request count.

``rate_scale`` multiplies the session start rate (the same roots, more
sessions on each); ``session_scale`` (an integer) also multiplies the roots
into that many independent copies (K tenants of the same service). Per-session
structure (turns, think times, lengths) is unchanged by both.
"""
from __future__ import annotations

import gzip
import heapq
from pathlib import Path

import numpy as np

from sim.errors import InputError
from sim.io_safe import atomic_path
from trace.fitmodel import sample

_BATCH = 1 << 14


class _Stream:
    """Draws from one table, refilled in batches from its own generator (so streams never interleave)."""

    def __init__(self, rng: np.random.Generator, fn) -> None:
        self._rng, self._fn, self._k = rng, fn, 0
        self._buf: list = []

    def __call__(self):
        if self._k >= len(self._buf):
            self._buf = self._fn(self._rng, _BATCH).tolist()
            self._k = 0
        self._k += 1
        return self._buf[self._k - 1]


def _table_stream(rng, table, integer: bool, lo: float = 0.0):
    def fn(r, k):
        v = np.maximum(sample(table, r.random(k)), lo)
        return np.rint(v).astype(np.int64) if integer else v
    return _Stream(rng, fn)


def synthesize(fit: dict, out: str | Path, *, requests: int, seed: int, rate_scale: float = 1.0,
               session_scale: int = 1, duration_s: float | None = None) -> dict:
    """Write the synthetic trace to `out` (atomically); returns a summary dict."""
    f = fit["_"]
    B = int(f["block_tokens"])
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(9)]
    # -- roots, copied session_scale times; block ids of every root laid out first
    roots = fit["prefix_structure"]["roots"]
    next_id = 0
    root_blocks: list[list[int]] = []
    root_str: list[str] = []
    weights: list[float] = []
    for _copy in range(session_scale):
        base = len(root_blocks)
        by_id: dict[int, int] = {}
        for r in roots:
            pb = root_blocks[base + by_id[r["parent"]]] if r["parent"] is not None else []
            fresh = list(range(next_id, next_id + int(r["depth_blocks"]) - len(pb)))
            next_id += len(fresh)
            by_id[r["id"]] = len(root_blocks) - base
            root_blocks.append(pb + fresh)
            root_str.append(", ".join(map(str, pb + fresh)))
            weights.append(float(r["sessions"]))
    weights.append(float(f["private_sessions"]) * session_scale)
    p_root = np.asarray(weights) / sum(weights)
    n_choices = len(p_root)
    root_pick = _Stream(rngs[0], lambda r, k: r.choice(n_choices, size=k, p=p_root))
    tv, tp = f["turns"]
    turns_pick = _Stream(rngs[1], lambda r, k: tv[r.choice(len(tv), size=k, p=tp)])
    first_new = _table_stream(rngs[2], f["first_new_tokens"], True, 1)
    new_tok = _table_stream(rngs[3], f["new_tokens"], True, 1)
    out_tok = _table_stream(rngs[4], f["output_tokens"], True, 0)
    think = _table_stream(rngs[5], f["think_time_s"], False, 0.0)
    keep_share = _table_stream(rngs[6], f["branch_keep_share"], False, 0.0)
    uni = _Stream(rngs[7], lambda r, k: r.random(k))
    cv = f["gap_cv"]
    shape = 1.0 / (cv * cv) if cv > 1e-6 else 0.0
    gap_unit = _Stream(rngs[8], (lambda r, k: r.gamma(shape, 1.0 / shape, k)) if shape else
                       (lambda r, k: np.ones(k)))
    profile = (f["profile"] / f["profile"].mean()).tolist()
    nbin, bin_s = len(profile), f["bin_s"]
    rate = f["session_rate_per_s"] * rate_scale * session_scale
    extend_share = f["extend_share"]

    def next_start(t: float) -> float:
        # One unit-mean gap spent in operational time: the local rate may change inside the gap.
        need = gap_unit()
        b = int(np.floor(t / bin_s))
        while True:
            lr = rate * profile[b % nbin]
            end = (b + 1) * bin_s
            room = (end - t) * lr
            if lr > 0 and need <= room:
                return t + need / lr
            need -= max(room, 0.0)
            b += 1
            t = end

    n_req = int(requests)
    t_end = float("inf") if duration_s is None else float(duration_s)
    p = Path(out)
    opener = gzip.open if p.suffix.lower() == ".gz" else open
    extra = "" if B == 512 else f', "block_tokens": {B}'
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    seq = 0
    written = 0
    out_sid: dict[int, int] = {}  # live sessions -> output session id, numbered in order of first output
    n_sid = 0
    t_next = next_start(-float(f["warmup_s"]))
    last_ms = 0
    with atomic_path(p) as tmp, opener(tmp, "wt", encoding="utf-8", newline="\n") as fh:
        lines: list[str] = []
        while written < n_req:
            if heap and heap[0][0] <= t_next:
                t, _, st = pop(heap)
            else:
                t = t_next
                t_next = next_start(t)
                r = root_pick()
                if r < len(root_blocks):
                    st = [root_blocks[r], root_str[r], turns_pick(), 0, seq, True]
                else:
                    st = [[], "", turns_pick(), 0, seq, True]
                seq += 1
            if t > t_end:
                break
            ctx, ctx_str, n_turns, k, sid, first = st
            if first:
                new = first_new()
                kept, kept_str = ctx, ctx_str
            else:
                new = new_tok()
                if uni() < extend_share:
                    kept, kept_str = ctx, ctx_str
                else:
                    kept = ctx[: int(keep_share() * len(ctx))]
                    kept_str = ", ".join(map(str, kept))
            inp = len(kept) * B + new
            n_full = inp // B - len(kept)
            fresh = list(range(next_id, next_id + n_full))
            next_id += n_full
            if fresh:
                add = ", ".join(map(str, fresh))
                ctx_str = f"{kept_str}, {add}" if kept_str else add
                ctx = kept + fresh
            else:
                ctx, ctx_str = kept, kept_str
            if inp % B:
                ids = f"{ctx_str}, {next_id}" if ctx_str else str(next_id)
                next_id += 1
            else:
                ids = ctx_str
            if t >= 0:
                ms = max(last_ms, int(round(t * 1000.0)))
                last_ms = ms
                s_out = out_sid.get(sid, -1)
                if s_out < 0:
                    s_out = out_sid[sid] = n_sid
                    n_sid += 1
                lines.append(f'{{"timestamp": {ms}, "input_length": {inp}, "output_length": {out_tok()}, '
                             f'"hash_ids": [{ids}], "session_id": {s_out}, "turn": {k}{extra}}}\n')
                written += 1
                if len(lines) >= 4096:
                    fh.write("".join(lines))
                    lines.clear()
            else:
                out_tok()  # the same draws whether or not the request is inside the window
            if k + 1 < n_turns:
                push(heap, (t + think(), seq, [ctx, ctx_str, n_turns, k + 1, sid, False]))
                seq += 1
            else:
                out_sid.pop(sid, None)  # ended: the map holds live sessions only
        fh.write("".join(lines))
        if written == 0:
            raise InputError("no request fell inside the window (is --duration too short?)", where="trace synth")
    return {"requests": written, "sessions": n_sid, "duration_s": last_ms / 1000.0, "out": str(p)}
