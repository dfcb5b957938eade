"""Compact trace files: `trace synth --out x.npz` (parent form, memory-mapped) against JSONL.

    python3 benchmarks/bench_trace_files.py [--fit FIT.yaml] [--requests 1000000] [--block-tokens 16]
                                            [--compare-requests 200000] [--dir DIR]

Without --fit it fits ../shared/traces/mooncake_conversation.jsonl first (512-token blocks).
--block-tokens re-expresses the fit at a finer block size (the roots' depths scaled, so the same
tokens are shared): 16 = the issue's target workload. Each step runs in its own process and reports
its own wall time and peak RSS (ru_maxrss):
  1. trace synth --out x.npz (N requests): time, requests/s, file size, peak RSS;
  2. run --mode single --policy lru --hit-rate-only --trace x.npz: wall, engine req/s, hit rate, peak RSS;
  3. the same seed at --compare-requests to JSONL and to .npz, both run: the hit rates must be identical.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation.jsonl"

# One step in a fresh interpreter: prints a JSON line {wall_s, rss_gib, result}.
_STEP = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
t = time.perf_counter()
{body}
print("STEP " + json.dumps({{"wall_s": time.perf_counter() - t,
      "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "result": res}}))
"""

_SYNTH = """
from trace.fitmodel import load_fit
from trace.synth import synthesize
res = synthesize(load_fit({fit!r}), {out!r}, requests={n}, seed={seed})
"""

_RUN = """
from sim.cli import main
rc = main(["run", "--mode", "single", "--policy", "lru", "--hit-rate-only", "--trace", {trace!r},
           "--out", {out!r}, "--no-plot", "--quiet"])
rep = json.load(open({out!r} + "/report.json"))
m = rep["policies"][0]["metrics"]
res = {{"rc": rc, "hit_rate": m["hit_rate"], "block_hit_rate": m["block_hit_rate"],
        "sim_speed_req_s": m["sim_speed_req_s"], "requests": rep["workload"].get("requests")}}
"""


_LOAD = """
from trace.formats import load_trace
w, _ = load_trace({trace!r})
pb = w.prefix_blocks()
res = {{"requests": len(w), "accesses": int(w.block_offsets[-1]), "own_blocks": pb.n_own(),
        "parents_share": float((pb.parent >= 0).mean()), "resident_gib": w.nbytes() / 2**30}}
"""


# Step bodies shared by the trace benchmarks (bench_trace_load, bench_distinct_traces): load a trace as
# the simulators hold it, and one hit-rate-only single-node replay of it.
LOAD_STEP = """
from trace.formats import load_trace
w, st = load_trace({trace!r})
w = w.compacted()
pb = w.prefix_blocks()
res = {{"requests": len(w), "accesses": int(w.block_offsets[-1]), "own_blocks": pb.n_own(),
        "compact": bool(w.compact), "distinct": bool(pb.distinct), "resident_gib": w.nbytes() / 2**30,
        "notes": st.notes}}
"""

REPLAY_STEP = """
from sim.cli import main
rc = main(["run", "--mode", "single", "--policy", {policy!r}, "--hit-rate-only", "--trace", {trace!r},
           "--out", {out!r}, "--no-plot", "--quiet"])
m = json.load(open({out!r} + "/report.json"))["policies"][0]["metrics"]
res = {{"rc": rc, "hit_rate": m["hit_rate"], "block_hit_rate": m["block_hit_rate"],
        "sim_speed_req_s": m["sim_speed_req_s"]}}
"""


def step(body: str, root: Path = ROOT) -> dict:
    """Run `body` in a fresh interpreter of the tree at `root`; its {wall_s, rss_gib, result}."""
    code = _STEP.format(root=str(root), body=body)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("STEP ")), None)
    if p.returncode or line is None:
        sys.exit(f"step failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(line[5:])


def make_fit(fit: str | None, block_tokens: int | None, d: Path) -> Path:
    import yaml

    sys.path.insert(0, str(ROOT))
    from trace.fit import fit_workload
    from trace.fitmodel import save_fit
    from trace.formats import load_trace

    path = d / "fit.yaml"
    if fit is None:
        save_fit(fit_workload(load_trace(MOONCAKE)[0]), path)
    else:
        path.write_bytes(Path(fit).read_bytes())
    if block_tokens is not None:
        doc = yaml.safe_load(path.read_text())
        b0 = int(doc["source"]["block_tokens"])
        if b0 % block_tokens:
            sys.exit(f"--block-tokens {block_tokens} must divide the fit's {b0}")
        doc["source"]["block_tokens"] = block_tokens
        for r in doc["prefix_structure"]["roots"]:
            r["depth_blocks"] = int(r["depth_blocks"]) * (b0 // block_tokens)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", default=None)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--block-tokens", type=int, default=16)
    ap.add_argument("--compare-requests", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--skip-run", action="store_true", help="only write and load the big file")
    a = ap.parse_args()
    if a.dir:
        Path(a.dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        d = Path(tmp)
        fit = make_fit(a.fit, a.block_tokens, d)
        npz = d / "big.npz"
        s = step(_SYNTH.format(fit=str(fit), out=str(npz), n=a.requests, seed=a.seed))
        n = s["result"]["requests"]
        print(f"trace synth -> npz: {n:,} requests, {a.block_tokens}-token blocks, {s['wall_s']:.1f} s = "
              f"{n / s['wall_s']:,.0f} req/s, file {npz.stat().st_size / 2**30:.3f} GiB, "
              f"peak RSS {s['rss_gib']:.3f} GiB")
        ld_step = step(_LOAD.format(trace=str(npz)))
        ld = ld_step["result"]
        print(f"load the npz: {ld_step['wall_s']:.1f} s, {ld['accesses']:,} block accesses "
              f"({ld['accesses'] / 2**27:,.1f} GiB as int64 CSR), {ld['own_blocks']:,} own blocks, "
              f"{ld['parents_share']:.1%} of requests have a parent, arrays {ld['resident_gib']:.3f} GiB "
              f"(mapped), peak RSS {ld_step['rss_gib']:.3f} GiB")
        if a.skip_run:
            return
        r = step(_RUN.format(trace=str(npz), out=str(d / "run-big")))
        print(f"run single lru hit-rate-only on the npz: wall {r['wall_s']:.1f} s, engine "
              f"{r['result']['sim_speed_req_s']:,.0f} req/s, hit rate {r['result']['hit_rate']:.6f}, "
              f"peak RSS {r['rss_gib']:.3f} GiB")
        npz.unlink()
        if a.skip_compare:
            return
        k = a.compare_requests
        rates = {}
        for suffix in (".jsonl", ".npz"):
            f = d / f"cmp{suffix}"
            s = step(_SYNTH.format(fit=str(fit), out=str(f), n=k, seed=a.seed))
            r = step(_RUN.format(trace=str(f), out=str(d / f"run{suffix}")))
            rates[suffix] = (r["result"]["hit_rate"], r["result"]["block_hit_rate"])
            print(f"{k:,} requests {suffix}: synth {s['wall_s']:.1f} s, {f.stat().st_size / 2**20:,.1f} MiB, "
                  f"synth peak RSS {s['rss_gib']:.3f} GiB; run wall {r['wall_s']:.1f} s, "
                  f"engine {r['result']['sim_speed_req_s']:,.0f} req/s, hit rate {r['result']['hit_rate']:.6f}, "
                  f"run peak RSS {r['rss_gib']:.3f} GiB")
            f.unlink()
        print(f"hit rates identical: {rates['.jsonl'] == rates['.npz']}")


if __name__ == "__main__":
    main()
