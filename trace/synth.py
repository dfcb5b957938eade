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
from typing import Any, Protocol

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
               session_scale: int = 1, duration_s: float | None = None, store_ids: bool = False) -> dict:
    """Write the synthetic trace to `out` (atomically); returns a summary dict.

    A ``.npz`` name writes the parent form (trace.synth_npz; `store_ids`: keep the ids as in the JSONL
    output, else dense ids), any other name Mooncake-style JSONL (``.gz``: compressed)."""
    f = fit["_"]
    B = int(f["block_tokens"])
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(9)]
    # -- roots, copied session_scale times; block ids of every root laid out first
    roots = fit["prefix_structure"]["roots"]
    next_id = 0
    root_blocks: list[list[int]] = []
    root_str: list[str] = []
    root_parent: list[int] = []  # index of the parent root in root_blocks, -1 = none
    weights: list[float] = []
    for _copy in range(session_scale):
        base = len(root_blocks)
        by_id: dict[int, int] = {}
        for r in roots:
            pb = root_blocks[base + by_id[r["parent"]]] if r["parent"] is not None else []
            fresh = list(range(next_id, next_id + int(r["depth_blocks"]) - len(pb)))
            next_id += len(fresh)
            by_id[r["id"]] = len(root_blocks) - base
            root_parent.append(base + by_id[r["parent"]] if r["parent"] is not None else -1)
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
    heap: list = []
    push, pop = heapq.heappush, heapq.heappop
    seq = 0
    written = 0
    out_sid: dict[int, int] = {}  # live sessions -> output session id, numbered in order of first output
    n_sid = 0
    t_next = next_start(-float(f["warmup_s"]))
    last_ms = 0
    with atomic_path(p) as tmp:
        if p.suffix.lower() == ".npz":
            from trace.synth_npz import NpzSink

            sink: _Sink = NpzSink(tmp, p, B, root_blocks, root_parent, store_ids)
        else:
            sink = _JsonlSink(tmp, B, root_str)
        with sink:
            while written < n_req:
                if heap and heap[0][0] <= t_next:
                    t, _, st = pop(heap)
                else:
                    t = t_next
                    t_next = next_start(t)
                    r = root_pick()
                    if r < len(root_blocks):
                        st = [root_blocks[r], sink.start(r), turns_pick(), 0, seq, r]
                    else:
                        st = [[], sink.start(-1), turns_pick(), 0, seq, -1]
                    seq += 1
                if t > t_end:
                    break
                ctx, aux, n_turns, k, sid, root = st
                if k == 0:
                    new = first_new()
                    n_kept = len(ctx)
                else:
                    new = new_tok()
                    n_kept = len(ctx) if uni() < extend_share else int(keep_share() * len(ctx))
                inp = n_kept * B + new
                n_full = inp // B - n_kept
                fresh_lo = next_id
                next_id += n_full
                partial = -1
                if inp % B:
                    partial = next_id
                    next_id += 1
                if t >= 0:
                    ms = max(last_ms, int(round(t * 1000.0)))
                    last_ms = ms
                    s_out = out_sid.get(sid, -1)
                    if s_out < 0:
                        s_out = out_sid[sid] = n_sid
                        n_sid += 1
                    aux = sink.write(aux, ctx, n_kept, fresh_lo, n_full, partial, root,
                                     (ms, inp, out_tok(), s_out, k))
                    written += 1
                else:
                    out_tok()  # the same draws whether or not the request is inside the window
                    aux = sink.skip(aux, ctx, n_kept, fresh_lo, n_full)
                if k + 1 < n_turns:
                    if n_kept < len(ctx) or n_full:
                        ctx = ctx[:n_kept] + list(range(fresh_lo, fresh_lo + n_full))
                    push(heap, (t + think(), seq, [ctx, aux, n_turns, k + 1, sid, root]))
                    seq += 1
                else:
                    out_sid.pop(sid, None)  # ended: the map holds live sessions only
            if written == 0:
                raise InputError("no request fell inside the window (is --duration too short?)",
                                 where="trace synth")
    return {"requests": written, "sessions": n_sid, "duration_s": last_ms / 1000.0, "out": str(p)}


class _Sink(Protocol):
    """Where synthesize's requests go: it calls ``start`` per session, ``write`` per request in the
    window, ``skip`` per warm-up request; ``aux`` is the sink's own per-session state."""

    def __enter__(self) -> _Sink: ...

    def __exit__(self, *exc) -> None: ...

    def start(self, root: int) -> Any: ...

    def write(self, aux: Any, ctx: list[int], n_kept: int, fresh_lo: int, n_full: int, partial: int, root: int,
              row: tuple[int, int, int, int, int]) -> Any: ...

    def skip(self, aux: Any, ctx: list[int], n_kept: int, fresh_lo: int, n_full: int) -> Any: ...


class _JsonlSink:
    """Mooncake-style JSONL; aux = the session context's ids as text (joined once, extended per turn)."""

    def __init__(self, tmp: Path, block_tokens: int, root_str: list[str]) -> None:
        self._tmp = tmp
        self._root_str = root_str
        self._extra = "" if block_tokens == 512 else f', "block_tokens": {block_tokens}'
        self._lines: list[str] = []

    def __enter__(self) -> _JsonlSink:
        opener = gzip.open if self._tmp.suffix.lower() == ".gz" else open
        self._fh = opener(self._tmp, "wt", encoding="utf-8", newline="\n")
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self._fh.write("".join(self._lines))
        finally:
            self._fh.close()

    def start(self, root: int) -> str:
        return self._root_str[root] if root >= 0 else ""

    def skip(self, aux: str, ctx: list[int], n_kept: int, fresh_lo: int, n_full: int) -> str:
        kept_str = aux if n_kept == len(ctx) else ", ".join(map(str, ctx[:n_kept]))
        if n_full:
            add = ", ".join(map(str, range(fresh_lo, fresh_lo + n_full)))
            return f"{kept_str}, {add}" if kept_str else add
        return kept_str

    def write(self, aux: str, ctx: list[int], n_kept: int, fresh_lo: int, n_full: int, partial: int, root: int,
              row: tuple[int, int, int, int, int]) -> str:
        ctx_str = self.skip(aux, ctx, n_kept, fresh_lo, n_full)
        if partial >= 0:
            ids = f"{ctx_str}, {partial}" if ctx_str else str(partial)
        else:
            ids = ctx_str
        ms, inp, out, s_out, k = row
        self._lines.append(f'{{"timestamp": {ms}, "input_length": {inp}, "output_length": {out}, '
                           f'"hash_ids": [{ids}], "session_id": {s_out}, "turn": {k}{self._extra}}}\n')
        if len(self._lines) >= 4096:
            self._fh.write("".join(self._lines))
            self._lines.clear()
        return ctx_str
