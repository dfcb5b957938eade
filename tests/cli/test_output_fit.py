"""Issue #17, output: tables that fit the terminal, progress off a terminal, per-run folders, report
metadata, --version and "did you mean" (each run through the CLI)."""
from __future__ import annotations

import json
import os
import re

import pytest

import sim.cli as cli
from sim.cli.common import LineProgress
from tests.conftest import DATA

SMALL = str(DATA / "mooncake_small.jsonl")
SMALL_PD = ["--set", "model.name=llama-3-8b", "--set", "model.tp=1", "--set", "pd.gpus_per_rack=8"]


def _table_lines(text: str) -> list[str]:
    # "wrote PATH" lines are not wrapped on purpose (a path must stay copyable); everything else must fit
    return [ln for ln in text.splitlines() if not ln.startswith("wrote ")]


def _fits(text: str, width: int) -> None:
    lines = _table_lines(text)
    assert lines, "nothing printed"
    too_long = [ln for ln in lines if len(ln) > width]
    assert not too_long, f"{len(too_long)} lines wider than {width}: {too_long[0]!r}"
    assert "…" not in text, "a cell was cut with an ellipsis"


RUNS = {
    "single": ["run", "--preset", "smoke", "--compare"],
    "cluster": ["run", "--mode", "cluster", "--trace", SMALL, "--router", "prefix_aware,round_robin"],
    "pd": ["run", "--mode", "pd", "--trace", SMALL, *SMALL_PD],
}


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("mode", sorted(RUNS))
def test_run_tables_fit(mode, width, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(width))
    assert cli.main([*RUNS[mode], "--no-plot", "--out", str(tmp_path / "o")]) == 0
    _fits(capsys.readouterr().out, width)


@pytest.mark.parametrize("argv", [
    ["calc", "kv", "--tp", "4"],
    ["calc", "hit-rate", "--vary", "arrival_rate", "--values", "1,2"],
    ["calc", "latency", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens", "2000"],
])
def test_calc_tables_fit(argv, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert cli.main(argv) == 0
    _fits(capsys.readouterr().out, 80)


def test_oracle_table_fits(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert cli.main(["oracle", "--trace", SMALL, "--method", "belady", "--kv-budget-gb", "1", "--tiers", "",
                     "--output-dir", str(tmp_path), "--set", "model.name=llama-3-8b"]) == 0
    _fits(capsys.readouterr().out, 100)


def test_wide_shows_every_column(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    argv = ["run", "--preset", "smoke", "--policy", "lru", "--no-plot", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    narrow = capsys.readouterr().out
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main([*argv, "--wide"]) == 0
    wide = capsys.readouterr().out
    assert "evictions" not in narrow and "evictions" in wide and "req/s (wall)" in wide
    assert "TTFT p99 ms" in narrow  # a headline column


# ---------------------------------------------------------------- progress off a terminal

def clocked_progress(interval_s: float = 5.0):
    """(LineProgress on a hand-set clock, the clock [seconds], the lines it printed)."""
    now = [0.0]
    lines: list[str] = []

    class Sink:
        def write(self, s):
            lines.extend(x for x in s.splitlines() if x)

        def flush(self):
            pass

    return LineProgress(stream=Sink(), interval_s=interval_s, clock=lambda: now[0]), now, lines


def test_line_progress_paces_lines_with_a_clock():
    p, now, lines = clocked_progress()
    p("lru", 0, 1000)          # start line
    for t, done in ((1, 100), (4.9, 400), (5.0, 500), (6, 600), (10.5, 900), (12, 1000)):
        now[0] = t
        p("lru", done, 1000)
    assert lines == [
        "progress: lru: started, 1,000 requests",
        "progress: lru: 500/1,000 requests (50%), 5 s elapsed, ETA 5 s",
        "progress: lru: 900/1,000 requests (90%), 10 s elapsed, ETA 1 s",  # 100 left at 800/9.5 s: 1.2 s
        "progress: lru: done in 12 s",
    ]


def test_progress_lines_on_stderr_when_piped(tmp_path, capsys):
    assert cli.main(["run", "--preset", "smoke", "--policy", "lru,arc", "--no-plot", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err  # capsys: stderr is not a terminal
    lines = [ln for ln in err.splitlines() if ln.startswith("progress: ")]
    assert any(ln == "progress: lru: started, 300 requests" for ln in lines), err
    assert any(ln.startswith("progress: arc: started") for ln in lines), err
    assert "\x1b" not in err and "\r" not in err  # plain text, no bar
    assert cli.main(["run", "--preset", "smoke", "--policy", "lru", "--no-plot", "--quiet", "--out",
                     str(tmp_path)]) == 0
    assert "progress" not in capsys.readouterr().err


# ---------------------------------------------------------------- per-run folders

def _wrote(out: str) -> list[str]:
    return [ln.removeprefix("wrote ") for ln in out.splitlines() if ln.startswith("wrote ")]


def test_each_run_gets_its_own_folder_and_latest(tmp_path, capsys):
    base = tmp_path / "res"
    argv = ["run", "--preset", "smoke", "--policy", "lru", "--set", f"experiments.out_dir={base}"]
    assert cli.main(argv) == 0
    first = _wrote(capsys.readouterr().out)
    assert cli.main([*argv, "--no-plot"]) == 0
    second = _wrote(capsys.readouterr().out)
    d1, d2 = {os.path.dirname(p) for p in first}, {os.path.dirname(p) for p in second}
    assert len(d1) == len(d2) == 1 and d1 != d2  # same second or not: two folders
    (f1,), (f2,) = d1, d2
    assert re.fullmatch(r"single-\d{8}T\d{6}Z(-\d+)?", os.path.basename(f1)), f1
    assert sorted(os.path.basename(p) for p in first) == ["policies.png", "report.csv", "report.json"]
    assert sorted(os.listdir(f1)) == ["policies.png", "report.csv", "report.json"]
    assert sorted(os.listdir(f2)) == ["report.csv", "report.json"]
    latest = base / "latest"
    assert latest.is_symlink() and latest.resolve() == (base / os.path.basename(f2)).resolve()
    assert not (base / "report.json").exists()  # nothing shared between runs is overwritten


def test_latest_is_a_pointer_file_where_symlinks_fail(tmp_path, capsys, monkeypatch):
    def no_symlink(*a, **k):
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", no_symlink)
    base = tmp_path / "res"
    assert cli.main(["run", "--preset", "smoke", "--policy", "lru", "--no-plot",
                     "--set", f"experiments.out_dir={base}"]) == 0
    (folder,) = {os.path.dirname(p) for p in _wrote(capsys.readouterr().out)}
    assert (base / "latest").read_text().strip() == os.path.basename(folder)


def test_explicit_files_only_those_written_and_printed(tmp_path, capsys):
    base = tmp_path / "res"
    rj = tmp_path / "x.json"
    assert cli.main(["run", "--preset", "smoke", "--policy", "lru", "--report-json", str(rj),
                     "--set", f"experiments.out_dir={base}"]) == 0
    assert _wrote(capsys.readouterr().out) == [str(rj)]
    assert rj.exists() and not base.exists()


def test_out_dir_and_refusals(tmp_path, capsys):
    out = tmp_path / "mine"
    assert cli.main(["run", "--preset", "smoke", "--policy", "lru", "--no-plot", "--out", str(out)]) == 0
    assert sorted(_wrote(capsys.readouterr().out)) == [str(out / "report.csv"), str(out / "report.json")]
    assert not (tmp_path / "latest").exists()
    code = cli.main(["run", "--preset", "smoke", "--out", str(out), "--report-json", str(tmp_path / "r.json")])
    assert code == 2 and capsys.readouterr().err.startswith("error: --out: ")
    (tmp_path / "file").write_text("x")
    assert cli.main(["run", "--preset", "smoke", "--out", str(tmp_path / "file")]) == 2


def test_new_run_dir_never_shares_a_folder(tmp_path):
    from sim.io_safe import new_run_dir

    a = new_run_dir(tmp_path, "pd", "20260101T000000Z", "x")
    b = new_run_dir(tmp_path, "pd", "20260101T000000Z", "x")
    assert a.name == "pd-20260101T000000Z" and b.name == "pd-20260101T000000Z-2"


# ---------------------------------------------------------------- report metadata

def _walk_keys(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield f"{path}/{k}", k
            yield from _walk_keys(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk_keys(v, f"{path}[{i}]")


@pytest.mark.parametrize("mode", ["single", "pd"])
def test_report_metadata_and_one_wall_clock(mode, tmp_path):
    rj = tmp_path / "r.json"
    argv = {"single": ["run", "--preset", "smoke", "--policy", "lru,arc"],
            "pd": ["run", "--mode", "pd", "--trace", SMALL, *SMALL_PD]}[mode]
    assert cli.main([*argv, "--quiet", "--report-json", str(rj)]) == 0
    r = json.loads(rj.read_text())
    assert r["preset"] == ("smoke" if mode == "single" else None) and r["profile"] is None
    assert re.fullmatch(r"\d+\.\d+\.\d+", r["kvsim_version"])
    assert r["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", r["git_commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["started_utc"])
    wall = [p for p, k in _walk_keys(r) if k.startswith("wall") or k.endswith("wall_s")]
    assert wall == ["/wall_s"], wall


def test_profile_name_recorded(tmp_path):
    rj = tmp_path / "r.json"
    prof = "profiles/h100_llama3_70b.yaml"
    if not os.path.exists(prof):
        pytest.skip("no profile file")
    assert cli.main(["run", "--preset", "smoke", "--policy", "lru", "--profile", prof, "--quiet",
                     "--report-json", str(rj)]) == 0
    assert json.loads(rj.read_text())["profile"] == prof


def test_git_commit_is_none_outside_a_checkout(tmp_path, monkeypatch):
    import sim.version as v

    monkeypatch.setattr(v, "ROOT", tmp_path)
    v.git_commit.cache_clear()
    try:
        assert v.git_commit() is None
    finally:
        v.git_commit.cache_clear()


# ---------------------------------------------------------------- --version, did you mean, input names

def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert re.fullmatch(r"kvsim \d+\.\d+\.\d+ \(commit .+\)\n", capsys.readouterr().out)


def test_did_you_mean_config_key(capsys):
    assert cli.main(["run", "--set", "cache.load_polcy=lru"]) == 2
    assert capsys.readouterr().err == "error: --set cache.load_polcy: unknown key (did you mean cache.load_policy?)\n"
    assert cli.main(["run", "--set", "qqq.zzz=1"]) == 2
    assert capsys.readouterr().err == "error: --set qqq: unknown key\n"


def test_did_you_mean_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--wdie"])
    assert e.value.code == 2
    assert "unrecognized arguments: --wdie (did you mean --wide?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["calc", "kv", "--contxts", "1K"])
    assert "--contxts (did you mean --contexts?) 1K" in capsys.readouterr().err


def test_vary_accepts_flag_spelling(capsys):
    outs = []
    for name in ("arrival-rate", "arrival_rate"):
        assert cli.main(["calc", "hit-rate", "--vary", name, "--values", "1,2", "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out)["sensitivity"])
    assert outs[0] == outs[1] and outs[0]["param"] == "arrival_rate"
