"""Reader of Vidur's operator profiling CSVs (microsoft/vidur ``data/profiling/``, MIT licence).

``mlp.csv``: per-layer times of one transformer layer's operators by
``num_tokens`` and ``num_tensor_parallel_workers``; columns
``time_stats.<op>.{min,max,mean,median,std}`` in milliseconds plus the layer
shape (``n_head, n_kv_head, n_embd, n_expanded_embd, vocab_size,
use_gated_mlp``). ``all_reduce.csv``: NCCL all-reduce times by ``num_workers``
and ``size``, which is in bytes: the profiler records ``self._size * 2  #
bytes`` for its FP16 tensor of ``size`` elements
(https://github.com/microsoft/vidur/blob/main/vidur/profiling/collectives/collectives_wrapper.py).
Examples and their README: ``../shared/profiling/vidur/``.

API: ``read_mlp(path) -> list[MlpRow]``, ``read_all_reduce(path) ->
list[AllReduceRow]``, ``profile_kind(path)``; ``MlpRow.linear_ms`` and
``MlpRow.layer_linear_params`` give the four GEMMs of a layer.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from sim.errors import InputError

# The linear layers (GEMMs) of one layer: QKV projection, output projection, gate+up, down.
LINEAR_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
MLP_SHAPE = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp",
             "num_tokens", "num_tensor_parallel_workers")
ALL_REDUCE_COLS = ("num_workers", "size", "devices_per_node")


@dataclass(frozen=True)
class MlpRow:
    line: int
    num_tokens: int
    tp: int
    op_ms: dict[str, float]   # op -> the chosen statistic, ms per layer
    n_head: int
    n_kv_head: int
    n_embd: int
    n_expanded_embd: int
    vocab_size: int
    use_gated_mlp: bool

    @property
    def linear_ms(self) -> float:
        return sum(self.op_ms[o] for o in LINEAR_OPS)

    @property
    def layer_linear_params(self) -> float:
        """Weights of the layer's four GEMMs (whole layer, all TP shards)."""
        h, head = self.n_embd, self.n_embd // self.n_head
        qkv = h * (self.n_head + 2 * self.n_kv_head) * head
        mlp = (3 if self.use_gated_mlp else 2) * h * self.n_expanded_embd
        return float(qkv + h * h + mlp)


@dataclass(frozen=True)
class AllReduceRow:
    line: int
    num_workers: int
    size_bytes: int
    devices_per_node: int
    ms: float


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not path.is_file():
        raise InputError("Vidur profile not found", where=str(path))
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        return header, [(i, row) for i, row in enumerate(reader, start=2)]


def _float(row: dict[str, str], col: str, where: str) -> float:
    raw = (row.get(col) or "").strip()
    try:
        v = float(raw)
    except ValueError:
        raise InputError(f"{col}: expected a number, got {raw!r}", where=where) from None
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{col}: must be a finite number >= 0, got {raw!r}", where=where)
    return v


def _int(row: dict[str, str], col: str, where: str, minimum: int = 0) -> int:
    v = _float(row, col, where)
    if v != int(v) or v < minimum:
        raise InputError(f"{col}: expected a whole number >= {minimum}, got {row.get(col)!r}", where=where)
    return int(v)


def profile_kind(path: Path) -> str:
    """mlp | all_reduce | other, from the header."""
    header, _ = _rows(path) if path.is_file() else ([], [])
    if "time_stats.all_reduce.median" in header:
        return "all_reduce"
    if "num_tensor_parallel_workers" in header and any(h.startswith("time_stats.mlp_up_proj.") for h in header):
        return "mlp"
    return "other"


def read_mlp(path: str | Path, stat: str = "median") -> list[MlpRow]:
    p = Path(path)
    header, rows = _rows(p)
    need = [f"time_stats.{o}.{stat}" for o in LINEAR_OPS] + list(MLP_SHAPE)
    missing = [c for c in need if c not in header]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", where=f"{p}:1")
    ops = sorted({h.split(".")[1] for h in header if h.startswith("time_stats.") and h.endswith(f".{stat}")})
    out = []
    for line, row in rows:
        where = f"{p}:{line}"
        gated = (row.get("use_gated_mlp") or "").strip().lower()
        if gated not in ("true", "false", "1", "0"):
            raise InputError(f"use_gated_mlp: expected True/False, got {gated!r}", where=where)
        out.append(MlpRow(
            line=line, num_tokens=_int(row, "num_tokens", where, 1),
            tp=_int(row, "num_tensor_parallel_workers", where, 1),
            op_ms={o: _float(row, f"time_stats.{o}.{stat}", where) for o in ops
                   if (row.get(f"time_stats.{o}.{stat}") or "").strip()},
            n_head=_int(row, "n_head", where, 1), n_kv_head=_int(row, "n_kv_head", where, 1),
            n_embd=_int(row, "n_embd", where, 1), n_expanded_embd=_int(row, "n_expanded_embd", where, 1),
            vocab_size=_int(row, "vocab_size", where, 1), use_gated_mlp=gated in ("true", "1"),
        ))
        missing_ops = [o for o in LINEAR_OPS if o not in out[-1].op_ms]
        if missing_ops:
            raise InputError(f"empty time_stats of {', '.join(missing_ops)}", where=where)
    if not out:
        raise InputError("no rows", where=str(p))
    return out


def read_all_reduce(path: str | Path, stat: str = "median") -> list[AllReduceRow]:
    p = Path(path)
    header, rows = _rows(p)
    need = [f"time_stats.all_reduce.{stat}", *ALL_REDUCE_COLS]
    missing = [c for c in need if c not in header]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}", where=f"{p}:1")
    out = []
    for line, row in rows:
        where = f"{p}:{line}"
        out.append(AllReduceRow(line=line, num_workers=_int(row, "num_workers", where, 1),
                                size_bytes=_int(row, "size", where, 1),
                                devices_per_node=_int(row, "devices_per_node", where, 1),
                                ms=_float(row, f"time_stats.all_reduce.{stat}", where)))
    if not out:
        raise InputError("no rows", where=str(p))
    return out
