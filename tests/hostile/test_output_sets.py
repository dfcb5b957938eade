"""Commands that write several files write them as one set: after a failure none of them is there,
and an --output-dir named for the run is not created until its files are."""
from __future__ import annotations

import pytest

from sim.cli import main
from tests.conftest import DATA
from tests.hostile.test_config_run_trace import one_error_line

TRACE = ["--trace", str(DATA / "mooncake_small.jsonl"), "--quiet"]
ORACLE = ["oracle", *TRACE, "--kv-budget-gb", "1"]
ORACLE_FILES = ["hit_summary.csv", "tier_summary.csv", "metadata.json", "details.json", "report.md"]


def test_oracle_files_are_one_set(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "report.zh.md").mkdir()  # the last file of the set cannot be written
    code = main([*ORACLE, "--output-dir", str(out)])
    one_error_line(capsys, code, "report.zh.md")
    assert sorted(p.name for p in out.iterdir()) == ["report.zh.md"]  # no file of the set, no temporary


def test_oracle_success_writes_every_file(tmp_path, capsys):
    out = tmp_path / "new" / "o"
    assert main([*ORACLE, "--output-dir", str(out)]) == 0
    assert all((out / f).stat().st_size > 0 for f in ORACLE_FILES)
    assert not list(out.glob(".*tmp*"))


@pytest.mark.parametrize("argv", [
    ["oracle", "--trace", "{bad}", "--quiet", "--kv-budget-gb", "1"],
    ["plan", "--trace", "{bad}", "--quiet", "--target-tps", "100", "--baseline-per-card-tps", "10"],
    ["audit", "--trace", "{bad}", "--quiet"],
    ["calibrate", "estimator", "--trace", "{bad}", "--quiet", "--kv-budget-gb", "1"],
], ids=["oracle", "plan", "audit", "calibrate"])
def test_failed_run_leaves_no_output_folder(argv, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 10}\n' * 3)  # no hash_ids: nothing to simulate
    out = tmp_path / "res" / "o"
    code = main([a.replace("{bad}", str(bad)) for a in argv] + ["--output-dir", str(out)])
    assert code == 2, capsys.readouterr()
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("target", ["/proc/kvsim.jsonl", "DIR", "NUL"])
def test_trace_convert_out_checked_before_reading(target, tmp_path, capsys):
    out = {"DIR": str(tmp_path), "NUL": str(tmp_path / "a\0b")}.get(target, target)
    code = main(["trace", "convert", *TRACE[:2], "--out", out])
    one_error_line(capsys, code, "--out")


def test_trace_convert_is_atomic(tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    assert main(["trace", "convert", *TRACE[:2], "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and [p.name for p in tmp_path.iterdir()] == ["t.jsonl"]
