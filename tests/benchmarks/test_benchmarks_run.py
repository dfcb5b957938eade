"""Every benchmark still runs: each script with a tiny workload, as a user would start it.

The benchmarks are not timed here (speed is measured by running ``benchmarks/``, never in tests);
this only catches a script that no longer runs against the code it measures (a helper's signature
changed under it, a default it relied on moved), and checks each prints a rate and its peak RSS, as
every benchmark must. The scripts that need the real trace skip without ``../shared``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT.parent / "shared" / "traces" / "mooncake_conversation.jsonl"

# (script, tiny arguments, needs the real trace); the long ones (ab_timed: two source trees;
# bench_trace_files, bench_trace_load, bench_distinct_traces, bench_cluster: a minute of subprocesses
# or a reference replay) are left to their own runs
RUNS = [
    ("bench_scale.py", ["--run", "single", "--requests", "300", "--identical", "300"], False),
    ("bench_scale.py", ["--run", "single_timed", "--requests", "300", "--exact-max", "0"], False),
    ("bench_scale.py", ["--run", "cluster", "--requests", "300", "--racks", "2"], False),
    ("bench_cluster_kernels.py", ["--requests", "300", "--repeat", "1"], False),
    ("bench_pd.py", ["--requests", "300"], False),
    ("bench_sketch.py", ["--values", "10000", "--repeat", "1"], False),
    ("bench_trace_synth.py", ["--requests", "300"], True),
    ("bench_convert_chat.py", ["--conversations", "300"], False),
    ("bench_learned.py", ["--limit", "3000"], True),
    ("bench_single_node.py", ["--limit", "300", "--repeat", "1"], True),
    ("bench_requests_out.py", ["--limit", "300", "--repeat", "1"], True),
    ("bench_oracle.py", ["--points", "2"], True),
]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,needs_trace", RUNS, ids=[f"{s}:{' '.join(a[:2])}" for s, a, _ in RUNS])
def test_benchmark_runs(script: str, args: list[str], needs_trace: bool, tmp_path: Path) -> None:
    if needs_trace and not TRACE.exists():
        pytest.skip(f"needs {TRACE}")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert "/s" in p.stdout, p.stdout[-2000:]
    assert "RSS" in p.stdout, p.stdout[-2000:]
