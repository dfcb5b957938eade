"""Input converters (`python main.py trace convert --from NAME --trace IN --out OUT.jsonl`): one registry.

A converter reads a file that is not a trace (a chat dataset, a benchmark result) and returns what a
trace loader returns plus the facts to record beside the output: ``(Workload, LoadStats, metadata)``.
The CLI (sim.cli.trace_cmd) writes the Workload as kvsim's mooncake JSONL (or npz) and the metadata as
``OUT.meta.json``, both staged and renamed together (no half-written output looks complete).

Every converter counts the items it skips by reason in LoadStats and, with ``strict``, raises an
InputError naming the file and record at the first bad one. One module per format family.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trace.workload import LoadStats, Workload

ConvertFn = Callable[..., "tuple[Workload, LoadStats, dict[str, Any]]"]


@dataclass(frozen=True)
class Converter:
    name: str
    help: str
    # convert(path, *, strict, limit) -> (Workload, LoadStats, metadata)
    convert: ConvertFn


def _vllm_bench(path: Path, *, strict: bool = False, limit: int | None = None):
    from trace.converters.vllm_bench import convert

    return convert(path, strict=strict, limit=limit)


CONVERTERS: dict[str, Converter] = {
    "vllm-bench": Converter(
        "vllm-bench",
        "per-request JSON of `vllm bench serve --save-result --save-detailed`: token counts, arrivals and the "
        "measured TTFT/TPOT/ITL/E2E as measured_* columns (for run --compare-measured)",
        _vllm_bench,
    ),
}


def meta_path(out: str | Path) -> Path:
    """Where the metadata of a converted trace goes: beside it, ``OUT.meta.json``."""
    p = Path(out)
    return p.with_name(p.name + ".meta.json")
