"""Which compiled functions numba compiled more than once in one process, and what each compile cost.

Runs one CLI command in-process (``sim.cli.main``) with a fresh numba cache (a temporary
``NUMBA_CACHE_DIR`` unless one is set), records numba's ``numba:compile`` events (fired on a cache
miss only), and prints, per dispatcher under ``sim``/``trace``: its compiled signatures and the
compile time of each (CPU seconds: a busy machine inflates them less than wall time), exclusive of
the callees compiled inside it (a caller's typing compiles its callees). A function listed with two
signatures was compiled twice: numba compiles a non-inlined function once per distinct argument type,
and a bare constant (``1``, ``False``) is its own literal type. ``--all`` lists the single-signature ones too.

    python benchmarks/compile_signatures.py -- run --policy lru --hit-rate-only
    python benchmarks/compile_signatures.py            # the quick start (`python main.py`)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

OURS = ("sim.", "trace.", "learned.")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", action="store_true", help="also list the functions compiled once")
    ap.add_argument("cli", nargs=argparse.REMAINDER, help="the kvsim command (after --); default: none")
    args = ap.parse_args()
    cli = [a for a in args.cli if a != "--"] if args.cli else []
    os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="numba-sig-"))

    from numba.core import event

    excl: dict[tuple[str, str], float] = defaultdict(float)
    stack: list[list] = []  # [key, start, child seconds]

    class Listener(event.Listener):
        def on_start(self, ev):
            d = ev.data["dispatcher"]
            name = f"{d.py_func.__module__}.{d.py_func.__qualname__}"
            if not name.startswith(OURS):  # numba's own overloads: named after the kernel that needed them
                name += " in " + next((k[0][0] for k in reversed(stack) if k[0][0].startswith(OURS)), "?")
            key = (name, str(tuple(ev.data["args"])))
            stack.append([key, time.process_time(), 0.0])

        def on_end(self, ev):
            key, t0, child = stack.pop()
            dt = time.process_time() - t0
            excl[key] += dt - child
            if stack:
                stack[-1][2] += dt

    event.register("numba:compile", Listener())
    from sim.cli import main as kvsim

    w0, c0 = time.perf_counter(), time.process_time()
    rc = kvsim(cli)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    per_fn: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for (fn, sig), s in excl.items():
        per_fn[fn].append((sig, s))
    total = sum(excl.values())
    multi = {f: v for f, v in per_fn.items() if len(v) > 1}
    print(f"\nexit {rc}, {wall:.1f} s wall, {cpu:.1f} s CPU; {len(excl)} compiles of {len(per_fn)} functions, "
          f"{total:.1f} s CPU compiling; {len(multi)} functions compiled more than once "
          f"({sum(len(v) - 1 for v in multi.values())} extra compiles, "
          f"{sum(s for v in multi.values() for _, s in v):.1f} s in all their compiles); "
          f"load {os.getloadavg()[0]:.1f}")
    for fn, sigs in sorted(per_fn.items(), key=lambda kv: -sum(s for _, s in kv[1])):
        if len(sigs) > 1 or args.all:
            print(f"{fn}: {len(sigs)} x, {sum(s for _, s in sigs):.1f} s")
            for sig, s in sigs:
                print(f"    {s:6.2f} s  {sig}")


if __name__ == "__main__":
    main()
