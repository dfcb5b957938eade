"""Writes timed_pin.npz: per-request results of the single-node timed replay, pinned.

The fixture was produced by the timed path before its speed-up (issue #19) and
tests/modes/test_timed_pin.py checks the current path gives the same numbers,
bit for bit, on six configurations that take different branches of the
request process (loads and write-backs, session prefetch, synchronous
write-through, load-everything without layer-wise overlap).
Workload: tests/data/bailian_synth.jsonl (430 requests; DRAM hits at the
default 0.5 GiB HBM; SSD loads beside write-backs and recomputes with a small
DRAM and a slower SSD; that again with arrivals 40x closer: long queues,
preemptions). Pinned too: bytes per tier and direction, recomputes, the NVMe's
busy time. Run from the repository root only when the timed model deliberately
changes: python tests/data/make_timed_pin.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

OUT = Path(__file__).with_name("timed_pin.npz")
TRACE = Path(__file__).with_name("bailian_synth.jsonl")
FIELDS = ("worker", "hit_blocks", "hit_tokens", "queue_s", "load_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s",
          "recomputed_tokens")
# name -> (policy, config overrides)
CASES: dict[str, tuple[str, dict]] = {
    "lru": ("lru", {}),
    "prefetch": ("session_prefetch", {}),
    "write_through": ("lru", {"cache.write_policy": "write_through"}),
    "always_none": ("lru", {"cache.load_policy": "always", "cache.load_overlap": "none"}),
    "ssd": ("lru", {"hardware.dram.capacity_gib": 0.25, "hardware.ssd.bandwidth_gb_s": 2.0}),
    "busy": ("lru", {"hardware.dram.capacity_gib": 0.25, "hardware.ssd.bandwidth_gb_s": 2.0}),
}
SQUEEZE = {"busy": 40.0}  # arrivals this many times closer: the replicas queue and preempt


def _set(obj, path: list[str], value):
    """obj with the dotted field `path` set to value (pydantic sections are copied, not mutated)."""
    if len(path) == 1:
        return obj.model_copy(update={path[0]: value})
    return obj.model_copy(update={path[0]: _set(getattr(obj, path[0]), path[1:], value)})


def run_case(name: str):
    """The RunResult of one case on the pinned workload."""
    from sim.config import Config
    from sim.modes.common import prepare_workload
    from sim.modes.single import run_single
    from trace.formats import load_trace

    policy, over = CASES[name]
    cfg = Config()
    for key, value in over.items():
        cfg = _set(cfg, key.split("."), value)
    w, _ = load_trace(str(TRACE), "auto")
    w = w.compacted()
    if name in SQUEEZE:
        w.arrival_ms = w.arrival_ms / SQUEEZE[name]  # a fresh workload: nothing else holds it
    pw, ctx = prepare_workload(cfg, w)
    return run_single(cfg, pw, policy, ctx=ctx, timing=True)


def io_figures(res) -> np.ndarray:
    """Bytes per tier and direction, recomputes, the NVMe's busy seconds: the links' side of a run."""
    t = res.io["tier_io"]
    return np.array([t["dram"]["read_bytes"], t["dram"]["write_bytes"], t["ssd"]["read_bytes"],
                     t["ssd"]["write_bytes"], res.io["recomputed_prefixes"], res.io["recomputed_tokens"],
                     res.busy_s["nvme"]], dtype=np.float64)


def main() -> None:
    arrays = {}
    for name in CASES:
        res = run_case(name)
        for f in FIELDS:
            arrays[f"{name}.{f}"] = getattr(res, f)
        arrays[f"{name}.sim_time_s"] = np.array([res.sim_time_s])
        arrays[f"{name}.io"] = io_figures(res)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
