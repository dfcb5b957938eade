"""kvsim's own binary form of a Workload (``.npz``), in two versions.

Written by :func:`trace.convert.write_workload` (fmt ``npz``) and by ``trace synth --out x.npz``.

Version 1: ``numpy.savez_compressed`` of the Workload arrays, block lists as CSR (``block_offsets``,
``block_ids``). Read whole (a compressed member cannot be memory-mapped).

Version 2: the parent form (trace.prefix) stored uncompressed, memory-mapped on load (trace.npzio):
per request ``arrival_ms``, ``input_tokens``, ``output_tokens``, ``session_id``, ``turn``, ``parent``,
``shared``; ``own_off`` (n + 1) and ``own_ids`` (empty when ``dense_ids``: own block k is called k).
Loading reads the arrays in place, so a 10M-request trace costs what the simulation touches, not its
expanded block lists; ``block_offsets`` is the one array made in RAM (8 bytes a request).

Both: ``block_tokens``, ``synthetic_blocks``, ``name``, ``kvsim_npz_version`` and ``extra_<name>`` per
Workload.extra column. Loading checks the invariants the text loaders enforce (non-decreasing, finite
arrivals, non-negative lengths) and, for version 2, the parent form's (a parent is an earlier request,
shares at most its block count, ``own_off`` starts at 0, never decreases and ends at ``len(own_ids)``),
in chunks over the mapped arrays; a violation is one InputError naming the file and the key.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sim.errors import InputError
from trace.npzio import Spill, map_members
from trace.prefix import PrefixBlocks
from trace.rowio import ZIP_MAGIC, Head
from trace.workload import LoadStats, Workload

NAME = "npz"
ORDER = 60
SUFFIXES = (".npz",)
NPZ_VERSION = 2  # the newest this kvsim reads and writes
ARRAY_KEYS = (
    "arrival_ms", "input_tokens", "output_tokens", "session_id", "turn", "block_offsets", "block_ids",
)
META_KEYS = ("block_tokens", "synthetic_blocks", "name", "kvsim_npz_version")
REQUEST_KEYS = ("arrival_ms", "input_tokens", "output_tokens", "session_id", "turn", "parent", "shared")
V2_KEYS = (*REQUEST_KEYS, "own_off", "own_ids", "dense_ids")
EXTRA_PREFIX = "extra_"  # Workload.extra columns (measured latencies) are stored as extra_<name>
_CHUNK = 1 << 20  # requests validated per step
MAX_BLOCKS_PER_REQUEST = 1 << 24  # 2^24 blocks = 268M tokens at 16 a block: beyond it the file is broken


def sniff(head: Head) -> bool:
    return head.magic == ZIP_MAGIC


def load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    where = str(path)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}", where=where)
    try:
        with zipfile.ZipFile(path) as zf:
            if "kvsim_npz_version.npy" not in zf.namelist():
                raise InputError("not a kvsim workload .npz: missing kvsim_npz_version", where=where)
            with zf.open("kvsim_npz_version.npy") as fh:
                version = int(np.lib.format.read_array(fh, allow_pickle=False))
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, TypeError) as e:
        raise InputError(f"cannot read .npz workload ({e})", where=where) from None
    if version == 2:
        w, n = _load_v2(path, limit)
    elif version == 1:
        w, n = _load_v1(path)
    else:
        raise InputError(f"unknown kvsim npz version {version} (this kvsim reads 1 and 2)", where=where)
    st = LoadStats(source=where, rows_read=len(w), loaded=len(w))
    if limit is not None and limit < n:
        w = w.head(limit)
        st.rows_read = st.loaded = limit
        st.notes.append(f"kept the first {limit} of {n} requests (limit)")
    return w, st


def _meta(z, where: str) -> dict:
    missing = [k for k in META_KEYS if k not in z]
    if missing:
        raise InputError(f"not a kvsim workload .npz: missing {', '.join(missing)}", where=where)
    try:
        return {"block_tokens": int(z["block_tokens"]), "synthetic_blocks": bool(z["synthetic_blocks"]),
                "name": str(z["name"])}
    except (TypeError, ValueError) as e:
        raise InputError(f"bad metadata ({e})", where=where) from None


def _load_v1(path: Path) -> tuple[Workload, int]:
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAY_KEYS if k not in z.files]
            if missing:
                raise InputError(f"not a kvsim workload .npz: missing {', '.join(missing)}", where=where)
            arrays = {k: z[k] for k in ARRAY_KEYS}
            meta = _meta({k: z[k] for k in META_KEYS if k in z.files}, where)
            extra = {k.removeprefix(EXTRA_PREFIX): z[k] for k in z.files if k.startswith(EXTRA_PREFIX)}
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise InputError(f"cannot read .npz workload ({e})", where=where) from None
    try:
        w = Workload(extra=extra, **meta, **arrays)
    except (ValueError, TypeError) as e:
        raise InputError(f"inconsistent workload arrays: {e}", where=where) from None
    n = len(w)
    if n == 0:
        raise InputError("empty workload (0 requests)", where=where)
    _check_requests(w.arrival_ms, w.input_tokens, w.output_tokens, where)
    if bool((np.diff(w.block_offsets) < 0).any()):
        raise InputError("block_offsets decrease", where=where)
    return w, n


def _check_requests(arrival: np.ndarray, inp: np.ndarray, out: np.ndarray, where: str) -> None:
    if bool(np.isnan(arrival).any()):
        raise InputError("arrival_ms: NaN arrival", where=where)
    if len(arrival) > 1 and bool((np.diff(arrival) < 0).any()):
        raise InputError("arrival_ms is not sorted", where=where)
    if bool((inp < 0).any()) or bool((out < 0).any()):
        raise InputError("negative token counts", where=where)


def _load_v2(path: Path, limit: int | None) -> tuple[Workload, int]:
    """The parent-form file, mapped; only the first `limit` requests are checked and kept."""
    where = str(path)
    z = map_members(path)
    meta = _meta(z, where)
    missing = [k for k in V2_KEYS if k not in z]
    if missing:
        raise InputError(f"not a kvsim workload .npz: missing {', '.join(missing)}", where=where)
    try:
        dense = bool(z["dense_ids"])
    except (TypeError, ValueError) as e:
        raise InputError(f"dense_ids: not a flag ({e})", where=where) from None
    a = {k: z[k] for k in V2_KEYS if k != "dense_ids"}
    extra = {k.removeprefix(EXTRA_PREFIX): v for k, v in z.items() if k.startswith(EXTRA_PREFIX)}
    want = {**dict.fromkeys(("input_tokens", "output_tokens", "session_id", "turn", "parent", "shared"), np.int64),
            "arrival_ms": np.float64, "own_off": np.int64, "own_ids": np.int64}
    for k, dt in want.items():
        if a[k].dtype != dt or a[k].ndim != 1:
            raise InputError(f"{k}: expected a 1-d {np.dtype(dt).name} array, got {a[k].ndim}-d {a[k].dtype}",
                             where=where)
    for k, v in extra.items():
        if v.dtype != np.float64 or v.ndim != 1:
            raise InputError(f"{EXTRA_PREFIX}{k}: expected a 1-d float64 array", where=where)
    n = len(a["arrival_ms"])
    if n == 0:
        raise InputError("empty workload (0 requests)", where=where)
    for k in (*REQUEST_KEYS[1:], *(EXTRA_PREFIX + c for c in extra)):
        got = len(a[k]) if k in a else len(extra[k.removeprefix(EXTRA_PREFIX)])
        if got != n:
            raise InputError(f"{k}: {got} rows, expected {n} (as arrival_ms)", where=where)
    if len(a["own_off"]) != n + 1:
        raise InputError(f"own_off: {len(a['own_off'])} entries, expected {n + 1}", where=where)
    if dense and len(a["own_ids"]):
        raise InputError("own_ids: dense_ids is set but own_ids holds ids", where=where)
    if not dense and int(a["own_off"][-1]) != len(a["own_ids"]):
        raise InputError(f"own_off: ends at {int(a['own_off'][-1])}, not at len(own_ids) = {len(a['own_ids'])}",
                         where=where)
    keep = n if limit is None else min(n, limit)
    offsets = _check_v2(a, keep, where)
    own_ids = None if dense else a["own_ids"][:int(a["own_off"][keep])]
    try:
        pb = PrefixBlocks(a["parent"][:keep], a["shared"][:keep], a["own_off"][:keep + 1], own_ids, distinct=dense)
        w = Workload(name=meta["name"], arrival_ms=a["arrival_ms"][:keep], input_tokens=a["input_tokens"][:keep],
                     output_tokens=a["output_tokens"][:keep], session_id=a["session_id"][:keep], turn=a["turn"][:keep],
                     block_offsets=offsets, block_ids=None, block_tokens=meta["block_tokens"],  # type: ignore[arg-type]
                     synthetic_blocks=meta["synthetic_blocks"], extra={c: v[:keep] for c, v in extra.items()},
                     prefix=pb)
    except (ValueError, TypeError) as e:
        raise InputError(f"inconsistent workload arrays: {e}", where=where) from None
    return w, n


def _check_v2(a: dict[str, np.ndarray], k: int, where: str) -> np.ndarray:
    """Check requests 0..k-1 chunk by chunk; returns their block_offsets (the one array made in RAM)."""
    if int(a["own_off"][0]) != 0:
        raise InputError("own_off: does not start at 0", where=where)
    offsets = np.zeros(k + 1, dtype=np.int64)
    last_arrival = -np.inf
    for lo in range(0, k, _CHUNK):
        hi = min(k, lo + _CHUNK)
        arr = a["arrival_ms"][lo:hi]
        _check_requests(arr, a["input_tokens"][lo:hi], a["output_tokens"][lo:hi], where)
        if not np.isfinite(arr).all():
            raise InputError("arrival_ms: not finite", where=where)
        if arr[0] < last_arrival:
            raise InputError("arrival_ms is not sorted", where=where)
        last_arrival = arr[-1]
        for key in ("session_id", "turn"):
            if bool((a[key][lo:hi] < -1).any()):
                raise InputError(f"{key}: values below -1", where=where)
        off = a["own_off"][lo:hi + 1]
        own_len = np.diff(off)
        if bool((own_len < 0).any()):
            raise InputError("own_off: decreases", where=where)
        parent, shared = a["parent"][lo:hi], a["shared"][lo:hi]
        idx = np.arange(lo, hi, dtype=np.int64)
        if bool((parent >= idx).any()) or bool((parent < -1).any()):
            raise InputError("parent: not an earlier request (parent >= its own index, or below -1)", where=where)
        if bool((shared < 0).any()) or bool(((parent < 0) & (shared != 0)).any()):
            raise InputError("shared: negative, or non-zero without a parent", where=where)
        count = shared + own_len
        if bool((count > MAX_BLOCKS_PER_REQUEST).any()):
            raise InputError(f"own_off/shared: a request of more than {MAX_BLOCKS_PER_REQUEST:,} blocks", where=where)
        has = parent >= 0
        p = parent[has]
        # parents precede, so their counts are known: in this chunk or an earlier one (offsets)
        p_count = offsets[p + 1] - offsets[p] if (p < lo).all() else _counts_with(offsets, count, lo, p)
        if bool((shared[has] > p_count).any()):
            raise InputError("shared: larger than the parent's block count", where=where)
        np.cumsum(count, out=offsets[lo + 1:hi + 1])
        offsets[lo + 1:hi + 1] += offsets[lo]
    return offsets


def _counts_with(offsets: np.ndarray, count: np.ndarray, lo: int, p: np.ndarray) -> np.ndarray:
    """Block counts of requests `p` (all < lo + len(count)): earlier chunks from offsets, this one from count."""
    here = p >= lo
    out = np.empty(len(p), dtype=np.int64)
    out[~here] = offsets[p[~here] + 1] - offsets[p[~here]]
    out[here] = count[p[here] - lo]
    return out


def v2_members(w: Workload, pb: PrefixBlocks) -> dict[str, np.ndarray | Spill]:
    """The members of a version-2 file of `w` with block lists `pb` (trace.convert)."""
    return {
        "arrival_ms": w.arrival_ms, "input_tokens": w.input_tokens, "output_tokens": w.output_tokens,
        "session_id": w.session_id, "turn": w.turn, "parent": pb.parent, "shared": pb.shared,
        "own_off": pb.own_off, "own_ids": pb.ids_stored(), "dense_ids": np.bool_(pb.dense),
        **meta_members(w.name, w.block_tokens, w.synthetic_blocks),
        **{f"{EXTRA_PREFIX}{k}": v for k, v in w.extra.items()},
    }


def meta_members(name: str, block_tokens: int, synthetic_blocks: bool, version: int = NPZ_VERSION) -> dict:
    return {"block_tokens": np.int64(block_tokens), "synthetic_blocks": np.bool_(synthetic_blocks),
            "name": np.str_(name), "kvsim_npz_version": np.int64(version)}

