"""Compile the numba kernels once, split over two processes, before the pytest-xdist workers start.

On a cold cache (a fresh clone in CI) each worker compiles a kernel family the first time one of its
tests needs it: the cluster engine (~80 s on a 2-core VM), its int64-record variant (~66 s), the node
engine (~81 s) and the oracle's kernels (~18 s). The two workers often compile the same family at once,
so the compiles cost minutes of wall time twice over. ``tests/conftest.py`` runs the parts below in two
parallel processes first when the whole suite starts on a cold cache; the workers then load the machine
code from numba's on-disk cache. Each part is a small real run of the paths the tests take, so it
compiles the same type signatures; a signature missed here is compiled by its test as before (slower,
never wrong).

    python -m tests.compile_warmup PART   # PART: one of PARTS
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFF = "KVSIM_NO_COMPILE_WARMUP"  # set (non-empty) to skip it

GiB = 1024**3
BLOCK_BYTES = 16 * 131072  # llama-3-8b fp16, 16-token blocks


def _cluster_cfg(racks: int, hbm_blocks: int, requests: int = 200):
    from sim.config import load_config

    return load_config(overrides=[
        "model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=8", f"cluster.racks={racks}",
        "cluster.gpus_per_rack=16", "cluster.router=prefix_aware", "cache.block_tokens=16",
        f"hardware.hbm.capacity_gib={hbm_blocks * BLOCK_BYTES / GiB}",
        "synthetic.kind=multi_turn", f"synthetic.requests={requests}", f"synthetic.sessions={requests // 10}",
        "synthetic.block_tokens=16"])


def cluster() -> None:
    """The compiled cluster engine with int32 records, hit-rate-only and timed."""
    from sim.modes.cluster import run_cluster
    from sim.modes.common import prepare_workload
    from trace.synthetic import generate

    cfg = _cluster_cfg(2, 60)
    w, _ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    for timing in (False, True):
        run_cluster(cfg, w, "lru", "prefix_aware", timing=timing, engine="compiled")


def cluster_wide() -> None:
    """The cluster engine's int64 records (past the int32 address range: 102,400-GPU runs)."""
    import sim.engine.cluster_cache as cc
    from sim.modes.cluster import run_cluster
    from sim.modes.common import prepare_workload
    from trace.synthetic import generate

    cfg = _cluster_cfg(2, 4000, requests=400)
    w, _ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    narrow = cc._INT32_MAX
    cc._INT32_MAX = 6 * 40_000  # as tests/equivalence/test_cluster_scale_path.py: the pool grows past it
    try:
        res = run_cluster(cfg, w, "lru", "prefix_aware", timing=False, engine="compiled")
    finally:
        cc._INT32_MAX = narrow
    if res.cache.S.dtype.itemsize != 8:
        raise RuntimeError("compile_warmup cluster_wide: the records stayed int32 (nothing compiled)")


def node() -> None:
    """The compiled node engine: the hit-rate-only replay and the timed replay's per-request calls."""
    from sim.config import load_config
    from sim.modes.common import prepare_workload
    from sim.modes.single import run_single
    from trace.synthetic import generate

    cfg = load_config(overrides=["synthetic.kind=multi_turn", "synthetic.requests=200", "synthetic.sessions=20"])
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed))
    for timing in (False, True):
        run_single(cfg, w, "lru", ctx=ctx, timing=timing)


def oracle() -> None:
    """The oracle's bounds, both methods, on the per-access arrays and on the parent form."""
    from sim.oracle.access import accesses
    from sim.oracle.bounds import compute_bounds
    from sim.oracle.compact import compact_accesses, compact_bounds
    from tests.conftest import multi_turn

    _cfg, w, _ctx = multi_turn(60, 6)
    acc = accesses(w)
    for method in ("exact", "belady"):
        compute_bounds(acc, 32, method)
    compact_bounds(compact_accesses(w), 32)


PARTS: dict[str, Callable[[], None]] = {"cluster": cluster, "cluster_wide": cluster_wide, "node": node,
                                        "oracle": oracle}
# one list a process, the lists at once. Measured cold on this 2-core VM, each part alone: cluster 80 s, node
# 81 s, cluster_wide 66 s, oracle 18 s; as these two lists 136-146 s, as three processes 185 s (three compiles
# on two cores slow each other more than they gain). In a simulated CI run the suite then took 289 s: 425 s in
# all, against 521-548 s when the workers compiled as their tests came (both often the same family at once)
SPLIT = (("cluster", "cluster_wide"), ("node", "oracle"))


def wanted(config) -> bool:
    """Warm up? Only in the pytest-xdist controller of a run of the whole suite (no test paths given) with two
    workers or more, on a cache that lacks the node or cluster engine: a developer's run of a few tests, or a
    warm cache, starts at once."""
    import pytest

    from sim.engine import is_compiled

    if os.environ.get(OFF) or hasattr(config, "workerinput"):
        return False
    n = config.getoption("numprocesses", None)
    if not isinstance(n, int) or n < 2 or config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return False
    return not (is_compiled("node_ops") and is_compiled("cluster_kernels"))


def run_parts(say: Callable[[str], None]) -> None:
    """SPLIT's lists, one process each, at once; a part that fails is reported and left to the tests."""
    t0 = time.perf_counter()
    say(f"compiling the numba kernels once before the workers start ({len(SPLIT)} processes; {OFF}=1 skips)")
    procs = [subprocess.Popen([sys.executable, "-m", "tests.compile_warmup", *parts], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for parts in SPLIT]
    for parts, p in zip(SPLIT, procs, strict=True):
        out, _ = p.communicate()
        if p.returncode:
            tail = out.strip().splitlines()[-1:] or ["no output"]
            say(f"compile warm-up {' '.join(parts)} failed (exit {p.returncode}: {tail[0]}); its tests compile")
    say(f"compile warm-up done in {time.perf_counter() - t0:.0f} s")


def main(argv: list[str]) -> int:
    for name in argv:
        t0 = time.perf_counter()
        PARTS[name]()
        print(f"compile_warmup {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
