"""``trace synth --out x.npz``: the generated requests written in parent form (trace.prefix), streamed.

Each request names the earlier written request it extends and how many leading blocks it shares:
- its session's last written request, whose full blocks the session's context starts with (shared =
  the blocks the turn kept of them); a warm-up turn (not written) passes its source on, shortened to
  what it kept;
- or, when longer, the first written request that held a prefix of its shared root (or of the root's
  parent roots): ``_cover``. Without this two sessions on one root would both store the root's blocks.
Every id then lands in exactly one request's own blocks (the first written request that holds it), so
the own ids are distinct and need not be stored: own block k is called k (dense ids, the default; the
simulators compare ids, never read them). ``store_ids`` keeps the generator's ids instead, so the file
expands to exactly the JSONL output of the same seed (tests).

Columns are appended in chunks to raw spill files beside the output and assembled into an uncompressed
``.npz`` (trace.npzio) at the end: memory is the live sessions plus one chunk, whatever the request count.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from trace.formats.npz import meta_members
from trace.npzio import Spill, write_members
from trace.rowio import trace_name

_FLUSH = 1 << 16  # requests buffered between spills
_COLUMNS = (("arrival_ms", np.float64), ("input_tokens", np.int64), ("output_tokens", np.int64),
            ("session_id", np.int64), ("turn", np.int64), ("parent", np.int64), ("shared", np.int64),
            ("own_off", np.int64))


class NpzSink:
    """A synth.py sink writing the parent form; aux = (written request the context extends, its blocks
    the context starts with, blocks of the session's root the context starts with)."""

    def __init__(self, tmp: Path, final: Path, block_tokens: int, root_blocks: list[list[int]],
                 root_parent: list[int], store_ids: bool) -> None:
        self._tmp, self._name, self._bt = tmp, trace_name(final), block_tokens
        self._depth = [len(b) for b in root_blocks]
        self._root_parent = root_parent
        self._cover_p = [-1] * len(root_blocks)
        self._cover_m = [0] * len(root_blocks)
        self._store_ids = store_ids
        self._n = 0
        self._own_total = 0
        self._rows: list[list] = [[] for _ in _COLUMNS]
        self._ids: list[int] = []
        self._rows[-1].append(0)  # own_off starts at 0

    def __enter__(self) -> NpzSink:
        self._dir = Path(tempfile.mkdtemp(prefix=f".{self._tmp.stem}.", suffix=".spill", dir=self._tmp.parent))
        self._spills = [Spill(self._dir / f"{k}.bin", dt) for k, dt in _COLUMNS]
        self._id_spill = Spill(self._dir / "own_ids.bin", np.int64)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self._flush()
                members: dict = {k: s for (k, _), s in zip(_COLUMNS, self._spills, strict=True)}
                members["own_ids"] = self._id_spill if self._store_ids else np.zeros(0, dtype=np.int64)
                members["dense_ids"] = np.bool_(not self._store_ids)
                members.update(meta_members(self._name, self._bt, False))
                write_members(self._tmp, members)
        finally:
            for s in (*self._spills, self._id_spill):
                s.close()
            shutil.rmtree(self._dir, ignore_errors=True)

    def start(self, root: int) -> tuple[int, int, int]:
        return (-1, 0, self._depth[root] if root >= 0 else 0)

    def skip(self, aux: tuple[int, int, int], ctx: list[int], n_kept: int, fresh_lo: int,
             n_full: int) -> tuple[int, int, int]:
        m = min(aux[1], n_kept)
        return (aux[0] if m > 0 else -1, m, min(aux[2], n_kept))

    def write(self, aux: tuple[int, int, int], ctx: list[int], n_kept: int, fresh_lo: int, n_full: int,
              partial: int, root: int, row: tuple[int, int, int, int, int]) -> tuple[int, int, int]:
        p, sh = aux[0], min(aux[1], n_kept)
        held = min(aux[2], n_kept)  # the root's blocks the context still starts with (a branch may cut them)
        if held > sh:
            rp, rm = self._cover(root)
            if min(rm, held) > sh:
                p, sh = rp, min(rm, held)
        if sh == 0:
            p = -1
        i = self._n
        self._n += 1
        own = n_kept - sh + n_full + (partial >= 0)
        self._own_total += own
        ms, inp, out, s_out, k = row
        for col, v in zip(self._rows, (ms, inp, out, s_out, k, p, sh, self._own_total), strict=True):
            col.append(v)
        if self._store_ids:
            ids = self._ids
            ids.extend(ctx[sh:n_kept])
            ids.extend(range(fresh_lo, fresh_lo + n_full))
            if partial >= 0:
                ids.append(partial)
        if held > 0:
            self._register(root, i, held)
        if len(self._rows[0]) >= _FLUSH:
            self._flush()
        return (i, n_kept + n_full, held)

    def _cover(self, root: int) -> tuple[int, int]:
        """The written request holding the longest prefix of `root`'s blocks (via it or a parent root)."""
        best_p, best_m = -1, 0
        r = root
        while r >= 0:
            if self._cover_m[r] > best_m:
                best_p, best_m = self._cover_p[r], self._cover_m[r]
            r = self._root_parent[r]
        return best_p, best_m

    def _register(self, root: int, i: int, c: int) -> None:
        r = root
        while r >= 0:
            m = min(c, self._depth[r])
            if m > self._cover_m[r]:
                self._cover_p[r], self._cover_m[r] = i, m
            r = self._root_parent[r]

    def _flush(self) -> None:
        for spill, col in zip(self._spills, self._rows, strict=True):
            spill.append(col)
            col.clear()
        if self._ids:
            self._id_spill.append(self._ids)
            self._ids.clear()
