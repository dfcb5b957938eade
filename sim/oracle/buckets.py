"""Request-length buckets and prefix scope.

Buckets split requests by prompt length (``input_tokens``) into half-open
ranges ``[lo, hi)``; each bucket is analysed on its own requests alone, as a
separate serving pool would see them. ``--buckets`` takes the inner edges
(``32K,64K,128K`` -> ``0-32K, 32K-64K, 64K-128K, 128K+``).

Prefix scope ``global`` keeps one block namespace (any request may reuse any
other's prefix); ``session`` re-keys every block by its session, so reuse
happens only inside a session / chat chain (requests without a session id
reuse nothing).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.config.units import parse_tokens
from sim.errors import InputError
from trace.reparent import scoped
from trace.workload import Workload

DEFAULT_EDGES = (32 * 1024, 64 * 1024, 128 * 1024)
SCOPES = ("global", "session")


def fmt_tokens(v: int) -> str:
    return f"{v // 1024}K" if v % 1024 == 0 and v else str(v)


@dataclass(frozen=True)
class Bucket:
    label: str
    lo: int
    hi: int | None  # None = open-ended


def make_buckets(edges: list[int] | tuple[int, ...] | None = None) -> list[Bucket]:
    """Buckets from inner edges (strictly increasing positive token counts)."""
    edges = list(DEFAULT_EDGES if edges is None else edges)
    if not edges:
        return []  # only the `all` row
    if any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise InputError(f"bucket edges must increase strictly: {edges}", where="--buckets")
    out, lo = [], 0
    for e in edges:
        out.append(Bucket(f"{fmt_tokens(lo) if lo else '0'}-{fmt_tokens(e)}", lo, e))
        lo = e
    out.append(Bucket(f"{fmt_tokens(lo)}+", lo, None))
    return out


def parse_buckets(text: str | None) -> list[Bucket]:
    if text is None or not str(text).strip():
        return make_buckets()
    if str(text).strip().lower() == "none":
        return []
    return make_buckets([parse_tokens(p) for p in str(text).split(",") if p.strip()])


def bucket_index(w: Workload, b: Bucket) -> np.ndarray:
    x = w.input_tokens
    m = x >= b.lo
    if b.hi is not None:
        m &= x < b.hi
    return np.flatnonzero(m)


def apply_scope(w: Workload, scope: str) -> Workload:
    """The workload with block ids re-keyed for `scope` (see module doc)."""
    if scope not in SCOPES:
        raise InputError(f"unknown prefix scope {scope!r} (known: {', '.join(SCOPES)})", where="--scope")
    if scope == "global" or not w.total_blocks:
        return w
    sess = np.where(w.session_id >= 0, w.session_id, -1 - np.arange(len(w), dtype=np.int64))
    pb = scoped(w.prefix, sess) if w.prefix is not None else None
    if pb is not None:  # a distinct parent form stays one (trace.reparent.scoped): nothing is expanded
        return Workload(
            name=w.name, arrival_ms=w.arrival_ms, input_tokens=w.input_tokens, output_tokens=w.output_tokens,
            session_id=w.session_id, block_offsets=w.block_offsets, block_ids=None,  # type: ignore[arg-type]
            block_tokens=w.block_tokens, turn=w.turn, synthetic_blocks=w.synthetic_blocks, prefix=pb,
        )
    counts = w.n_blocks()
    owner = np.repeat(sess, counts)
    pairs = np.stack([owner, w.block_ids], axis=1)
    _, new_ids = np.unique(pairs, axis=0, return_inverse=True)
    return Workload(
        name=w.name, arrival_ms=w.arrival_ms, input_tokens=w.input_tokens, output_tokens=w.output_tokens,
        session_id=w.session_id, block_offsets=w.block_offsets, block_ids=new_ids.reshape(-1).astype(np.int64),
        block_tokens=w.block_tokens, turn=w.turn, synthetic_blocks=w.synthetic_blocks,
    )
