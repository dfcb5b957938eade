"""Summary statistics of a Workload (``python main.py trace stats``).

`workload_stats` returns plain JSON-serializable values; `render_stats` turns
them (plus the loader's LoadStats) into a rich Table.
"""
from __future__ import annotations

import numpy as np
from rich.table import Table

from trace.workload import LoadStats, Workload


def _dist(a: np.ndarray) -> dict | None:
    if len(a) == 0:
        return None
    return {
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": int(a.max()),
    }


def prefix_reuse(w: Workload) -> tuple[int, int]:
    """(reused tokens, total input tokens) with an infinite prefix cache.

    For each request in order: its leading blocks whose id appeared in any
    earlier request (stopping at the first unseen one) count as reused,
    times block_tokens, capped at the request's input tokens. One pass, one
    Python set; for a parent form with distinct own ids (trace synth's .npz,
    the synthetic generator) no pass at all: a request's seen leading blocks
    are exactly those it shares with its parent, as its own ones are new.
    """
    if w.compact and w.prefix is not None and w.prefix.distinct:
        return (int(np.minimum(w.prefix.shared * w.block_tokens, w.input_tokens).sum()),
                int(w.input_tokens.sum()))
    ids = w.block_ids.tolist()
    offs = w.block_offsets.tolist()
    inp = w.input_tokens.tolist()
    bt = w.block_tokens
    seen: set[int] = set()
    add = seen.update
    reused = 0
    for i in range(len(inp)):
        a, b = offs[i], offs[i + 1]
        j = a
        while j < b and ids[j] in seen:
            j += 1
        if j > a:
            reused += min((j - a) * bt, inp[i])
        if j < b:
            add(ids[j:b])
    return reused, int(sum(inp))


def workload_stats(w: Workload) -> dict:
    """requests, sessions, duration, arrival rate, token distributions, blocks,
    session reuse and the infinite-capacity prefix reuse ratio."""
    n = len(w)
    sess = w.session_id
    known = sess[sess >= 0]
    sessions: int | None = None
    session_reuse = None
    if len(known):
        sessions = int(len(np.unique(known)))
        # Requests that are not the first of their session, over all requests.
        session_reuse = float((len(known) - sessions) / n)
    if n:
        duration_s = float((w.arrival_ms.max() - w.arrival_ms.min()) / 1000.0)
    else:
        duration_s = 0.0
    rate = float(n / duration_s) if duration_s > 0 else None
    reused, total_in = prefix_reuse(w)
    nb = w.n_blocks()
    return {
        "name": w.name,
        "requests": n,
        "sessions": sessions,
        "duration_s": duration_s,
        "arrival_rate_req_s": rate,
        "input_tokens": _dist(w.input_tokens),
        "output_tokens": _dist(w.output_tokens),
        "input_tokens_total": total_in,
        "output_tokens_total": int(w.output_tokens.sum()),
        "blocks": w.total_blocks,
        "unique_blocks": (w.prefix.n_unique() if w.compact and w.prefix is not None
                          else int(len(np.unique(w.block_ids)))),
        "blocks_per_request_mean": float(nb.mean()) if n else None,
        "block_tokens": int(w.block_tokens),
        "synthetic_blocks": bool(w.synthetic_blocks),
        "session_reuse": session_reuse,
        "prefix_reuse_ratio": float(reused / total_in) if total_in else None,
        "prefix_reuse_tokens": int(reused),
    }


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def render_stats(stats: dict, load: LoadStats | None = None) -> Table:
    """A two-column (metric, value) rich Table of `workload_stats` output and,
    when given, of what the loader read, loaded and rejected."""
    t = Table(title=f"trace {stats.get('name', '')}".strip(), show_header=True, header_style="bold")
    t.add_column("metric")
    t.add_column("value", justify="right")
    if load is not None:
        t.add_row("source", load.source)
        t.add_row("rows read", _fmt(load.rows_read))
        t.add_row("rows loaded", _fmt(load.loaded))
        t.add_row("rows rejected", _fmt(load.rejected_total))
        for reason, count in sorted(load.rejected.items(), key=lambda kv: (-kv[1], kv[0])):
            t.add_row(f"  rejected: {reason}", _fmt(count))
        for line, why in load.examples[:5]:
            t.add_row(f"  e.g. line {line}", why)
        t.add_section()
    t.add_row("requests", _fmt(stats.get("requests")))
    t.add_row("sessions", _fmt(stats.get("sessions")))
    t.add_row("duration (s)", _fmt(stats.get("duration_s")))
    t.add_row("arrival rate (req/s)", _fmt(stats.get("arrival_rate_req_s")))
    for key, label in (("input_tokens", "input tokens"), ("output_tokens", "output tokens")):
        d = stats.get(key)
        if d:
            t.add_row(f"{label} mean / p50 / p95 / max",
                      " / ".join(_fmt(d[k]) for k in ("mean", "p50", "p95", "max")))
    t.add_row("blocks (unique)", f"{_fmt(stats.get('blocks'))} ({_fmt(stats.get('unique_blocks'))})")
    t.add_row("block tokens", _fmt(stats.get("block_tokens")))
    t.add_row("synthetic block ids", _fmt(stats.get("synthetic_blocks")))
    t.add_row("session reuse", _pct(stats.get("session_reuse")))
    t.add_row("prefix reuse (infinite cache)", _pct(stats.get("prefix_reuse_ratio")))
    if load is not None and load.notes:
        t.add_section()
        for note in load.notes:
            t.add_row("note", note)
    return t
