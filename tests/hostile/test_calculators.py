"""Hostile numeric flags of the calculators and the oracle commands: each is one
`error: --flag: ...` line, exit 2, and no output file left behind.

In-process through sim.cli.main (fast: no interpreter start per case). The
oracle commands read the small Mooncake sample so a refusal that came too late
(after the work) would still be caught by the "no output" check.
"""
from __future__ import annotations

import json

import pytest

from sim.cli import main
from tests.conftest import DATA

TRACE = ["--trace", str(DATA / "mooncake_small.jsonl"), "--quiet"]
LONG_MODEL = "m" * 300

# (case id, argv with {out} for the output folder, flag the message must name)
CASES = [
    ("reuse-link-nan", ["calc", "reuse", "--link-gb-s", "nan"], "--link-gb-s"),
    ("reuse-link-inf", ["calc", "reuse", "--link-gb-s", "inf"], "--link-gb-s"),
    ("reuse-link-zero", ["calc", "reuse", "--link-gb-s", "0"], "--link-gb-s"),
    ("reuse-tp-3", ["calc", "reuse", "--gpus", "3"], "--tp"),
    ("kv-reserve-nan", ["calc", "kv", "--reserve-gb", "nan"], "--reserve-gb"),
    ("kv-reserve-inf", ["calc", "kv", "--reserve-gb", "inf"], "--reserve-gb"),
    ("kv-reserve-neg", ["calc", "kv", "--reserve-gb", "-1"], "--reserve-gb"),
    ("kv-pp-1000", ["calc", "kv", "--pp", "1000"], "--pp"),
    ("kv-tp-2048", ["calc", "kv", "--tp", "2048"], "--tp"),
    ("kv-tp-x-pp", ["calc", "kv", "--tp", "64", "--pp", "32"], "--tp x --pp"),
    ("kv-tp-3", ["calc", "kv", "--model", "llama-3-8b", "--tp", "3"], "--tp"),
    ("kv-tp-kv-heads", ["calc", "kv", "--model", "qwen2.5-7b", "--tp", "14"], "--tp"),
    ("kv-tp-0", ["calc", "kv", "--tp", "0"], "--tp"),
    ("kv-block-0", ["calc", "kv", "--block-tokens", "0"], "--block-tokens"),
    ("kv-long-model", ["calc", "kv", "--model", LONG_MODEL], "--model"),
    ("kv-long-path", ["calc", "kv", "--model", "/tmp/" + LONG_MODEL], "--model"),
    ("kv-huge-model", ["calc", "kv", "--model", "x" * 5000], "--model"),
    ("latency-tp-3", ["calc", "latency", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--tp", "3",
                      "--prompt-tokens", "100"], "--tp"),
    ("hit-rate-arrival-nan", ["calc", "hit-rate", "--arrival-rate", "nan"], "--arrival-rate"),
    ("hit-rate-arrival-inf", ["calc", "hit-rate", "--arrival-rate", "inf"], "--arrival-rate"),
    ("hit-rate-interval-nan", ["calc", "hit-rate", "--interval-s", "nan"], "--interval-s"),
    ("hit-rate-tp-3", ["calc", "hit-rate", "--tp", "3", "--gpus", "6"], "--tp"),
    ("hit-rate-target-nan", ["calc", "hit-rate", "--target-hit-rate", "nan"], "--target-hit-rate"),
    ("hit-rate-points", ["calc", "hit-rate", "--vary", "gpus", "--points", "1000000000"], "--points"),
    ("hit-rate-values-nan", ["calc", "hit-rate", "--vary", "gpus", "--values", "8,nan"], "--values"),
    ("hit-rate-plot-dir", ["calc", "hit-rate", "--plot", "{out}"], "--plot"),
    ("oracle-tolerance-nan", ["oracle", *TRACE, "--kv-budget-gb", "1", "--tolerance", "nan",
                              "--output-dir", "{out}"], "--tolerance"),
    ("oracle-tolerance-neg", ["oracle", *TRACE, "--kv-budget-gb", "1", "--tolerance", "-1",
                              "--output-dir", "{out}"], "--tolerance"),
    ("oracle-budget-inf", ["oracle", *TRACE, "--kv-budget-gb", "inf", "--output-dir", "{out}"], "--kv-budget-gb"),
    ("oracle-budget-1e300", ["oracle", *TRACE, "--kv-budget-gb", "1e300", "--output-dir", "{out}"],
     "--kv-budget-gb"),
    ("oracle-budget-nan", ["oracle", *TRACE, "--kv-budget-gb", "nan", "--output-dir", "{out}"], "--kv-budget-gb"),
    ("oracle-cards-huge", ["oracle", *TRACE, "--gpu", "h100-sxm", "--cards", "1e12", "--output-dir", "{out}"],
     "--cards"),
    ("oracle-tp-3", ["oracle", *TRACE, "--kv-budget-gb", "1", "--tp", "3", "--output-dir", "{out}"], "--tp"),
    ("oracle-outdir-file", ["oracle", *TRACE, "--kv-budget-gb", "1", "--output-dir", "{file}"], "--output-dir"),
    ("plan-target-inf", ["plan", *TRACE, "--target-tps", "inf", "--baseline-per-card-tps", "1000",
                         "--output-dir", "{out}"], "--target-tps"),
    ("plan-target-1e300", ["plan", *TRACE, "--target-tps", "1e300", "--baseline-per-card-tps", "1000",
                           "--output-dir", "{out}"], "--target-tps"),
    ("plan-baseline-tiny", ["plan", *TRACE, "--target-tps", "1000", "--baseline-per-card-tps", "1e-300",
                            "--output-dir", "{out}"], "--baseline-per-card-tps"),
    ("plan-alpha-nan", ["plan", *TRACE, "--target-tps", "1000", "--baseline-per-card-tps", "100", "--alpha", "nan",
                        "--output-dir", "{out}"], "--alpha"),
    ("plan-outdir-file", ["plan", *TRACE, "--target-tps", "1000", "--baseline-per-card-tps", "100",
                          "--output-dir", "{file}"], "--output-dir"),
    ("estimate-turns-1e12", ["estimate", "--kv-budget-gb", "10", "--turns", "1e12", "--output-dir", "{out}"],
     "--turns"),
    ("estimate-sessions-nan", ["estimate", "--kv-budget-gb", "10", "--sessions", "nan", "--output-dir", "{out}"],
     "--sessions"),
    ("estimate-budget-inf", ["estimate", "--kv-budget-gb", "inf", "--output-dir", "{out}"], "--kv-budget-gb"),
    ("estimate-target-inf", ["estimate", "--kv-budget-gb", "10", "--target-tps", "inf",
                             "--baseline-per-card-tps", "100", "--output-dir", "{out}"], "--target-tps"),
    ("estimate-json-binary", ["estimate", "--kv-budget-gb", "10", "--from-json", "{binary}",
                              "--output-dir", "{out}"], "{binary}"),
    ("estimate-json-list", ["estimate", "--kv-budget-gb", "10", "--from-json", "{jsonlist}",
                            "--output-dir", "{out}"], "{jsonlist}"),
    ("estimate-json-nan", ["estimate", "--kv-budget-gb", "10", "--from-json", "{jsonnan}",
                           "--output-dir", "{out}"], "{jsonnan}"),
    ("estimate-outdir-file", ["estimate", "--kv-budget-gb", "10", "--output-dir", "{file}"], "--output-dir"),
    ("calibrate-points-0", ["calibrate", *TRACE, "--kv-budget-gb", "1", "--points", "0", "--output-dir", "{out}"],
     "--points"),
    ("calibrate-points-neg", ["calibrate", *TRACE, "--kv-budget-gb", "1", "--points", "-3",
                              "--output-dir", "{out}"], "--points"),
    ("calibrate-points-huge", ["calibrate", *TRACE, "--kv-budget-gb", "1", "--points", "1000000000",
                               "--output-dir", "{out}"], "--points"),
    ("calibrate-outdir-file", ["calibrate", *TRACE, "--kv-budget-gb", "1", "--output-dir", "{file}"],
     "--output-dir"),
    ("audit-sample-neg", ["audit", *TRACE, "--sample", "-5", "--output-dir", "{out}"], "--sample"),
    ("audit-sample-huge", ["audit", *TRACE, "--sample", "1000000000", "--output-dir", "{out}"], "--sample"),
    ("audit-outdir-file", ["audit", *TRACE, "--output-dir", "{file}"], "--output-dir"),
    ("learned-out-dir", ["learned", "train", *TRACE[:2], "--out", "{out}"], "--out"),
    ("learned-out-under-file", ["learned", "train", *TRACE[:2], "--out", "{file}/model.txt"], "--out"),
    ("learned-rounds-huge", ["learned", "train", *TRACE[:2], "--rounds", "1000000000", "--out", "{out}/m.txt"],
     "--rounds"),
]


@pytest.mark.parametrize("argv,flag", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_one_line(argv, flag, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    f = tmp_path / "a_file"
    f.write_text("not a folder\n")
    binary = tmp_path / "binary.json"
    binary.write_bytes(bytes(range(256)) * 4)
    jsonlist = tmp_path / "list.json"
    jsonlist.write_text(json.dumps([1, 2, 3]))
    jsonnan = tmp_path / "nan.json"
    jsonnan.write_text('{"heuristic": {"turns_per_session": NaN}}')
    subst = {"{out}": str(out), "{file}": str(f), "{binary}": str(binary), "{jsonlist}": str(jsonlist),
             "{jsonnan}": str(jsonnan)}

    def fill(s: str) -> str:
        for k, v in subst.items():
            s = s.replace(k, v)
        return s

    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = main([fill(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {fill(flag)}"), lines[0]
    assert len(lines[0]) < 400
    # Nothing written: the tree is as it was (output folders stay empty, no temporaries).
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert f.read_text() == "not a folder\n"


def test_plot_without_suffix_reports_the_real_file(tmp_path, capsys):
    target = tmp_path / "curve"
    rc = main(["calc", "hit-rate", "--plot", str(target), "--points", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    assert (tmp_path / "curve.png").is_file()
    assert f"plot: {target}.png" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]  # no temporary left
