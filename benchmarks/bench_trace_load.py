"""Loading a hashed JSONL trace, and `trace convert` of it to .npz: peak RSS and wall time.

    python3 benchmarks/bench_trace_load.py [--requests 1000000] [--block-tokens 512] [--jsonl X.jsonl]
                                           [--root TREE] [--dir DIR] [--keep]

Without --jsonl it fits ../shared/traces/mooncake_conversation.jsonl and writes N requests with
`trace synth` (Mooncake JSONL, 512-token blocks unless --block-tokens says otherwise). Then, each in a
fresh interpreter of the tree at --root (default this one; give a `git worktree add` of an older commit
to measure "before"):
  1. load: `trace.source`'s path (load_trace, then Workload.compacted()): wall, peak RSS, the form it ends in;
  2. run: `run --mode single --policy lru --hit-rate-only --trace X.jsonl` (--run only): wall, peak RSS;
  3. convert: `python main.py trace convert --trace X.jsonl --out X.npz`: wall, peak RSS, file size.
Peak RSS is ru_maxrss of the step's own process.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_trace_files import _SYNTH, LOAD_STEP, REPLAY_STEP, make_fit, step  # noqa: E402

_CONVERT = """
from sim.cli import main
res = {{"rc": main(["trace", "convert", "--trace", {trace!r}, "--out", {out!r}])}}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--block-tokens", type=int, default=None, help="re-express the fit (default: its 512)")
    ap.add_argument("--jsonl", default=None, help="use this JSONL instead of writing one")
    ap.add_argument("--root", default=str(ROOT), help="the source tree whose loader is measured")
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    ap.add_argument("--run", action="store_true", help="also replay the JSONL (hit-rate-only)")
    ap.add_argument("--keep", action="store_true", help="keep the written JSONL (prints its path)")
    a = ap.parse_args()
    if a.dir:
        Path(a.dir).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        # the temporary folder (a multi-GiB JSONL at 1M requests) is removed however the run ends
        tmp = tempfile.mkdtemp(dir=a.dir) if a.keep else stack.enter_context(tempfile.TemporaryDirectory(dir=a.dir))
        measure(a, Path(tmp))


def measure(a: argparse.Namespace, d: Path) -> None:
    root = Path(a.root).resolve()
    if a.jsonl is None:
        fit = make_fit(None, a.block_tokens, d)
        jsonl = d / "big.jsonl"
        s = step(_SYNTH.format(fit=str(fit), out=str(jsonl), n=a.requests, seed=0), ROOT)
        print(f"trace synth -> JSONL: {s['result']['requests']:,} requests, {s['wall_s']:.1f} s, "
              f"{jsonl.stat().st_size / 2**30:.2f} GiB file")
        if a.keep:
            print(f"kept {jsonl}")
    else:
        jsonl = Path(a.jsonl)
    print(f"tree: {root}")
    ld = step(LOAD_STEP.format(trace=str(jsonl)), root)
    r = ld["result"]
    print(f"load (+compacted): {r['requests']:,} requests, {r['accesses']:,} block accesses, "
          f"{r['own_blocks']:,} own blocks, compact={r['compact']}, arrays {r['resident_gib']:.3f} GiB; "
          f"wall {ld['wall_s']:.1f} s = {r['requests'] / ld['wall_s']:,.0f} req/s, peak RSS {ld['rss_gib']:.3f} GiB")
    for note in r["notes"]:
        print(f"  note: {note}")
    if a.run:
        rr = step(REPLAY_STEP.format(policy="lru", trace=str(jsonl), out=str(d / "run")), root)
        print(f"run single lru hit-rate-only: rc {rr['result']['rc']}, hit rate {rr['result']['hit_rate']:.6f}, "
              f"wall {rr['wall_s']:.1f} s, peak RSS {rr['rss_gib']:.3f} GiB")
    npz = d / "out.npz"
    cv = step(_CONVERT.format(trace=str(jsonl), out=str(npz)), root)
    print(f"trace convert -> npz: rc {cv['result']['rc']}, wall {cv['wall_s']:.1f} s, "
          f"file {npz.stat().st_size / 2**30:.3f} GiB, peak RSS {cv['rss_gib']:.3f} GiB")
    npz.unlink()


if __name__ == "__main__":
    main()
