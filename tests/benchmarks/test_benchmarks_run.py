"""Every benchmark still runs: each script with a tiny workload, as a user would start it.

The benchmarks are not timed here (speed is measured by running ``benchmarks/``, never in tests); this
only catches a script that no longer runs against the code it measures (a helper's signature changed under
it, a default it relied on moved), and checks each prints a rate and its peak RSS, as every benchmark must.
Each script runs in this process (``runpy``, as ``python script.py ARGS``): the compiled kernels it needs
are the ones the other tests of this worker compile, so it adds no compile of its own. The scripts that need
the real trace skip without ``../shared``.
"""
from __future__ import annotations

import runpy
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
    ("machine_ref.py", [], False),
]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,needs_trace", RUNS, ids=[f"{s}:{' '.join(a[:2])}" for s, a, _ in RUNS])
def test_benchmark_runs(script: str, args: list[str], needs_trace: bool, tmp_path: Path, monkeypatch,
                        capsys) -> None:
    if needs_trace and not TRACE.exists():
        pytest.skip(f"needs {TRACE}")
    path = ROOT / "benchmarks" / script
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    monkeypatch.setattr(sys, "path", [str(path.parent), *sys.path])  # as `python script.py` puts it first
    code = 0
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:  # argparse errors, a failed check
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    assert code == 0, out.out[-2000:] + out.err[-3000:]
    assert "/s" in out.out, out.out[-2000:]
    assert "RSS" in out.out, out.out[-2000:]
