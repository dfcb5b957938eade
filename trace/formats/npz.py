"""kvsim's own binary form of a Workload: ``numpy.savez_compressed`` of its arrays.

Written by :func:`trace.convert.write_workload` (fmt ``npz``). Keys: the
Workload arrays plus ``block_tokens``, ``synthetic_blocks``, ``name`` and
``kvsim_npz_version``, and ``extra_<name>`` per Workload.extra column.
Loading checks the same invariants the text loaders
enforce (non-decreasing arrivals, non-negative lengths); a violation is an
InputError, as there are no rows to reject one by one.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sim.errors import InputError
from trace.rowio import ZIP_MAGIC, Head
from trace.workload import LoadStats, Workload

NAME = "npz"
ORDER = 60
SUFFIXES = (".npz",)
NPZ_VERSION = 1
ARRAY_KEYS = (
    "arrival_ms", "input_tokens", "output_tokens", "session_id", "turn", "block_offsets", "block_ids",
)
META_KEYS = ("block_tokens", "synthetic_blocks", "name", "kvsim_npz_version")
EXTRA_PREFIX = "extra_"  # Workload.extra columns (measured latencies) are stored as extra_<name>


def sniff(head: Head) -> bool:
    return head.magic == ZIP_MAGIC


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    where = str(path)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}", where=where)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAY_KEYS + META_KEYS if k not in z.files]
            if missing:
                raise InputError(f"not a kvsim workload .npz: missing {', '.join(missing)}", where=where)
            version = int(z["kvsim_npz_version"])
            if version > NPZ_VERSION:
                raise InputError(f"kvsim npz version {version} is newer than this kvsim ({NPZ_VERSION})",
                                 where=where)
            arrays = {k: z[k] for k in ARRAY_KEYS}
            block_tokens = int(z["block_tokens"])
            synthetic = bool(z["synthetic_blocks"])
            name = str(z["name"])
            extra = {k.removeprefix(EXTRA_PREFIX): z[k] for k in z.files if k.startswith(EXTRA_PREFIX)}
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise InputError(f"cannot read .npz workload ({e})", where=where) from None
    try:
        w = Workload(name=name, block_tokens=block_tokens, synthetic_blocks=synthetic, extra=extra,
                     **arrays)
    except (ValueError, TypeError) as e:
        raise InputError(f"inconsistent workload arrays: {e}", where=where) from None
    n = len(w)
    if n == 0:
        raise InputError("empty workload (0 requests)", where=where)
    if n > 1 and bool((np.diff(w.arrival_ms) < 0).any()):
        raise InputError("arrival_ms is not sorted", where=where)
    if bool((w.input_tokens < 0).any()) or bool((w.output_tokens < 0).any()):
        raise InputError("negative token counts", where=where)
    if bool((np.diff(w.block_offsets) < 0).any()):
        raise InputError("block_offsets decrease", where=where)
    st = LoadStats(source=where, rows_read=n, loaded=n)
    if limit is not None and limit < n:
        w = w.head(limit)
        st.rows_read = st.loaded = limit
        st.notes.append(f"kept the first {limit} of {n} requests (limit)")
    return w, st
