"""Hostile input to `sweep`, `plot`, `experiment pd-ratio`: one line, exit 2, nothing complete left;
--resume re-runs damaged point files; kill -9 of a sweep leaves no worker running."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import main
from experiments.engine import run_sweep
from experiments.spec import load_spec
from tests.conftest import ROOT

BASE = {"set": {"model.name": "llama-3-8b", "model.tp": 1, "hardware.gpus_per_node": 1,
                "hardware.dram.capacity_gib": 0, "hardware.ssd.capacity_gib": 0}}
TINY = {"synthetic": {"kind": "multi_turn", "requests": 150, "sessions": 15}}
FOUR = {"name": "four", "base": BASE, "workload": TINY, "timing": False, "metrics": ["hit_rate"],
        "axes": {"policies.eviction": ["lru", "fifo"], "kv_capacity_tokens": [2000, 8000]}}
RANGE = {"start": 1, "stop": 16}


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


SPECS = {
    "abs_name": ({"name": "/tmp/x", "axes": {"policies.eviction": ["lru"]}}, "name"),
    "dotdot_name": ({"name": "../../../../tmp/x", "axes": {"policies.eviction": ["lru"]}}, "name"),
    "plot_name": ({"plots": [{"name": "../x", "y": ["hit_rate"]}], "axes": {"policies.eviction": ["lru"]}}, "name"),
    "num_1e12": ({"axes": {"hardware.hbm.capacity_gib": {**RANGE, "num": 10**12}}}, "max 10,000"),
    "three_1000": ({"axes": {k: {**RANGE, "num": 1000} for k in
                             ("hardware.hbm.capacity_gib", "hardware.dram.capacity_gib", "hardware.ssd.capacity_gib")}},
                   "1,000,000,000 points"),
    "repeats_1e12": ({"repeats": 10**12, "axes": {"policies.eviction": ["lru"]}}, "repeats"),
    "inf_range": ({"axes": {"hardware.hbm.capacity_gib": {"start": 1, "stop": float("inf"), "num": 3}}}, "finite"),
    "empty": ({}, "empty"),
}


@pytest.mark.parametrize("case", sorted(SPECS))
def test_bad_spec_is_one_line(tmp_path, capsys, case):
    body, needle = SPECS[case]
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(body) if body else "")
    out = tmp_path / "out"
    assert main.main(["sweep", str(spec), "--out", str(out), "--quiet", "--no-plot"]) == 2
    _one_line_error(capsys, "s.yaml", needle)
    assert not out.exists() and not Path("/tmp/x/points.csv").exists()


@pytest.mark.parametrize("kind", ["dir", "binary", "nul"])
def test_spec_that_is_not_a_text_file(tmp_path, capsys, kind):
    spec = tmp_path / "s.yaml"
    if kind == "dir":
        spec.mkdir()
    else:
        spec.write_bytes(os.urandom(3000) if kind == "binary" else b"name: a\x00b\n")
    assert main.main(["sweep", str(spec), "--quiet"]) == 2
    _one_line_error(capsys, "s.yaml")


def test_out_is_a_file_and_bad_preset(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(FOUR))
    f = tmp_path / "afile"
    f.write_text("x")
    assert main.main(["sweep", str(spec), "--out", str(f), "--quiet"]) == 2
    _one_line_error(capsys, "--out", "not a directory")
    assert main.main(["sweep", str(spec), "--preset", "../../x", "--quiet"]) == 2
    _one_line_error(capsys, "--preset")


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory):
    d = tmp_path_factory.mktemp("sw")
    spec = d / "four.yaml"
    spec.write_text(yaml.safe_dump(FOUR))
    out = d / "res"
    run_sweep(load_spec(spec), out_dir=out, workers=1)
    return spec, out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


PLOT_DAMAGE = {
    "binary_sweep_json": ("sweep.json", lambda: os.urandom(500), "sweep.json"),
    "keyless_sweep_json": ("sweep.json", lambda: b'{"x": 1}', "lacks 'name'"),
    "list_sweep_json": ("sweep.json", lambda: b"[1]", "not a JSON object"),
    "bad_plot_name": ("sweep.json", None, "plain file name"),
    "binary_points_csv": ("points.csv", lambda: os.urandom(3000), "points.csv"),
    "garbage_points_csv": ("points.csv", lambda: b"a,b\n1,2\n", "lacks the column"),
    "cut_points_csv": ("points.csv", "cut", "cut short"),
}


@pytest.mark.parametrize("case", sorted(PLOT_DAMAGE))
def test_plot_on_damaged_files_is_one_line(done_sweep, tmp_path, capsys, case):
    name, make, needle = PLOT_DAMAGE[case]
    d = _copy(done_sweep[1], tmp_path / "c")
    if make is None:
        meta = json.loads((d / name).read_text())
        meta["plots"] = [{"name": "../../evil", "y": ["hit_rate"]}]
        (d / name).write_text(json.dumps(meta))
    elif make == "cut":
        (d / name).write_bytes((d / name).read_bytes()[:900])
    else:
        (d / name).write_bytes(make())
    assert main.main(["plot", str(d)]) == 2
    _one_line_error(capsys, needle)
    assert not (tmp_path / "evil.png").exists()


def _rows(d: Path) -> dict[str, dict]:
    with (d / "points.csv").open() as f:
        return {r["point_id"]: r for r in csv.DictReader(f)}


DAMAGE = {"truncated_500": lambda b: b[:500], "random": lambda b: os.urandom(2000), "empty": lambda b: b"",
          "edited": lambda b: b.replace(b'"hit_rate": 0.', b'"hit_rate": 0.9', 1)}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_resume_reruns_a_damaged_point_file(done_sweep, tmp_path, case):
    spec, src = done_sweep
    d = _copy(src, tmp_path / "c")
    good = _rows(src)
    pid = sorted(good)[0]
    f = d / "points" / f"{pid}.json"
    f.write_bytes(DAMAGE[case](f.read_bytes()))
    res = run_sweep(load_spec(spec), out_dir=d, workers=1, resume=True)
    assert (res.reused, res.ran, res.damaged, res.failed) == (3, 1, 1, 0)
    assert any(pid in n and "damaged" in n for n in res.notes)
    assert json.loads(f.read_text())["metrics"]["hit_rate"] == float(good[pid]["hit_rate"])


@pytest.mark.parametrize("case", ["edited_row", "cut", "binary"])
def test_resume_never_trusts_points_csv(done_sweep, tmp_path, case):
    spec, src = done_sweep
    d = _copy(src, tmp_path / "c")
    good = _rows(src)
    p = d / "points.csv"
    if case == "edited_row":
        rows = list(good.values())
        rows[1] = {**rows[1], "hit_rate": "0.999"}
        with p.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif case == "cut":
        p.write_bytes(p.read_bytes()[:-40])
    else:
        p.write_bytes(os.urandom(3000))
    res = run_sweep(load_spec(spec), out_dir=d, workers=1, resume=True)
    assert (res.reused, res.ran, res.failed) == (4, 0, 0)
    assert any("points.csv" in n for n in res.notes)
    assert _rows(d) == good  # rebuilt from the verified point files


def test_kill_9_leaves_no_worker(tmp_path):
    body = {**FOUR, "workload": {"synthetic": {"kind": "multi_turn", "requests": 40000, "sessions": 400}},
            "timing": True, "axes": {"policies.eviction": ["lru", "fifo", "arc", "s3fifo"]}}
    spec = tmp_path / "slow.yaml"
    spec.write_text(yaml.safe_dump(body))

    def group(pgid: int) -> list[int]:
        out = []
        for e in os.listdir("/proc"):
            if e.isdigit():
                try:
                    f = Path(f"/proc/{e}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(f[2]) == pgid and f[0] != "Z":
                    out.append(int(e))
        return out

    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    p = subprocess.Popen([sys.executable, "main.py", "sweep", str(spec), "--out", str(tmp_path / "r"), "--workers",
                          "2", "--quiet", "--no-plot"], cwd=ROOT, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        # sweep, fork server, 2 workers; generous: a CI run with the machine loaded once took over 60 s
        while len(group(p.pid)) < 4 and time.time() - t0 < 180:
            time.sleep(0.1)
        assert len(group(p.pid)) >= 4, "the sweep never started its workers"
        time.sleep(0.5)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    t1 = time.time()
    while group(p.pid) and time.time() - t1 < 5:
        time.sleep(0.1)
    left = group(p.pid)
    for pid in left:  # do not leak them into the rest of the test run
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes survived the sweep's kill -9: {left}"


SMALL = ROOT / "tests" / "data" / "mooncake_small.jsonl"
SMALL_PD = ["--set", "model.name=llama-3-8b", "--set", "model.tp=1", "--set", "pd.gpus_per_rack=8"]


@pytest.mark.parametrize("ratios,needle", [("1:1000000000000", "8 replicas per rack"), ("9:1", "1..7"),
                                           (",".join(["1:1"] * 65), "max 64")])
def test_pd_ratio_out_of_bounds(tmp_path, capsys, ratios, needle):
    out = tmp_path / "o"
    assert main.main(["experiment", "pd-ratio", "--trace", str(SMALL), *SMALL_PD, "--ratios", ratios, "--out",
                      str(out), "--quiet", "--no-plot"]) == 2
    _one_line_error(capsys, "--ratios", needle)
    assert not (out / "pd_ratio.json").exists()


def test_pd_ratio_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main.main(["experiment", "pd-ratio", "--trace", str(SMALL), *SMALL_PD, "--out", str(f), "--quiet"]) == 2
    _one_line_error(capsys, "--out", "not a directory")


def test_pd_ratio_labels_what_ran(tmp_path):
    out = tmp_path / "o"
    assert main.main(["experiment", "pd-ratio", "--trace", str(SMALL), *SMALL_PD, "--ratios", "1:4,1:3,2:5",
                      "--out", str(out), "--quiet", "--no-plot", "--workers", "1", "--no-baseline"]) == 0
    rows = json.loads((out / "pd_ratio.json").read_text())["rows"]
    # 8 replicas per rack: 1:4 and 1:3 both run 2P+6D (labelled 1:3), 2:5 runs 2P+6D too -> one row
    assert [(r["ratio"], r["requested"]) for r in rows] == [("1:3", "1:4,1:3,2:5")]


def test_resume_removes_temporaries_of_a_killed_run(done_sweep, tmp_path):
    spec, src = done_sweep
    d = _copy(src, tmp_path / "c")
    # what a kill -9 during an atomic write leaves: a temporary that never got its rename
    stray = [d / ".points.ab12cd34.tmp.csv", d / "points" / ".0123abcd.9f9f9f9f.tmp.json"]
    for f in stray:
        f.write_bytes(b'{"half": ')
    res = run_sweep(load_spec(spec), out_dir=d, workers=1, resume=True)
    assert (res.reused, res.ran) == (4, 0)
    assert not any(f.exists() for f in stray)
    assert any("removed 2 unfinished temporary" in n for n in res.notes)


def test_unknown_model_in_an_axis_is_refused_before_any_point(tmp_path, capsys):
    body = {**FOUR, "axes": {"model.name": ["llama-3-8b", "no-such-model"]}}
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(body))
    out = tmp_path / "out"
    assert main.main(["sweep", str(spec), "--out", str(out)]) == 2
    _one_line_error(capsys, "no-such-model", "model.name")
    assert not out.exists()
