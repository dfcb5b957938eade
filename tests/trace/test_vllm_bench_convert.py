"""`trace convert --from vllm-bench` and `run --compare-measured`, on hand-made save-detailed JSON."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.errors import InputError
from sim.report.measured import compare
from trace.converters.vllm_bench import convert as convert_vllm_bench
from trace.formats import load_trace


def bench(tmp_path: Path, name: str = "bench.json", **over) -> Path:
    run = {"date": "20261206-101500", "backend": "vllm", "model_id": "m", "num_prompts": 4, "request_rate": "inf",
           "burstiness": 1.0, "max_concurrency": None, "duration": 1.0,
           "input_lens": [100, 200, 300, 400], "output_lens": [3, 1, 4, 2], "ttfts": [0.05, 0.02, 0.0, 0.1],
           "itls": [[0.01, 0.03], [], [], [0.02]], "start_times": [10.5, 10.0, 10.2, 10.7],
           "errors": ["", "", "boom", ""]}
    run.update(over)
    run = {k: v for k, v in run.items() if v is not ...}
    p = tmp_path / name
    p.write_text(json.dumps(run))
    return p


def convert(tmp_path: Path, src: Path, *extra: str, out: str = "out.jsonl") -> int:
    return main(["trace", "convert", "--from", "vllm-bench", "--trace", str(src), "--out", str(tmp_path / out),
                 *extra])


def test_lengths_arrivals_and_measured_values_are_carried_through(tmp_path: Path, capsys) -> None:
    assert convert(tmp_path, bench(tmp_path)) == 0
    w, st = load_trace(tmp_path / "out.jsonl")
    # request 2 failed ("boom"); the rest sorted by start_times 10.0, 10.5, 10.7
    assert w.input_tokens.tolist() == [200, 100, 400]
    assert w.output_tokens.tolist() == [1, 3, 2]
    assert w.arrival_ms.tolist() == [0.0, 500.0, 700.0]
    x = w.extra
    assert x["measured_ttft_ms"].tolist() == pytest.approx([20.0, 50.0, 100.0])
    tpot = x["measured_tpot_ms"].tolist()  # sum(itls) / (output - 1): none for one output token
    assert math.isnan(tpot[0]) and tpot[1:] == pytest.approx([20.0, 20.0])
    itl = x["measured_itl_p50_ms"]
    assert math.isnan(itl[0]) and itl[1:].tolist() == pytest.approx([20.0, 20.0])
    assert x["measured_e2e_ms"].tolist() == pytest.approx([20.0, 90.0, 120.0])
    assert w.synthetic_blocks and w.block_tokens == 16 and len(set(w.block_ids.tolist())) == len(w.block_ids)
    assert any("compare-measured" in n for n in st.notes) and any("hit rates are 0" in n for n in st.notes)
    meta = json.loads((tmp_path / "out.jsonl.meta.json").read_text())
    assert meta["converter"] == "vllm-bench" and meta["requests"] == 3 and meta["skipped"] == {"failed_request": 1}
    assert "hit rates are 0" in meta["prefix_structure"] and meta["arrivals"] == "start_times"
    assert meta["benchmark"]["model_id"] == "m"
    out = capsys.readouterr().out
    assert "wrote 3 requests" in out and "failed_request=1" in out
    # the columns survive select/limit and the npz form
    assert load_trace(tmp_path / "out.jsonl", limit=2)[0].extra["measured_ttft_ms"].tolist() == [20.0, 50.0]
    assert main(["trace", "convert", "--trace", str(tmp_path / "out.jsonl"), "--out", str(tmp_path / "o.npz"),
                 "--to", "npz"]) == 0
    wz, _ = load_trace(tmp_path / "o.npz")
    assert np.array_equal(wz.extra["measured_tpot_ms"], x["measured_tpot_ms"], equal_nan=True)
    assert wz.select(np.array([2, 0])).extra["measured_ttft_ms"].tolist() == pytest.approx([100.0, 20.0])


def test_without_start_times_arrivals_follow_the_request_rate(tmp_path: Path) -> None:
    w, st, meta = convert_vllm_bench(bench(tmp_path, start_times=..., request_rate=4))
    assert w.arrival_ms.tolist() == [0.0, 250.0, 750.0]  # requests 0, 1, 3 at 1/4 s steps
    assert "request_rate 4" in meta["arrivals"]
    w, _, meta = convert_vllm_bench(bench(tmp_path, start_times=...))
    assert w.arrival_ms.tolist() == [0.0, 0.0, 0.0] and "inf" in meta["arrivals"]


def test_strict_and_bad_files_are_one_line_and_leave_no_output(tmp_path: Path, capsys) -> None:
    src = bench(tmp_path)
    assert convert(tmp_path, src, "--strict") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {src}: request 2: failed_request: boom"]
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))
    bad = bench(tmp_path, "bad.json", ttfts=[0.05, "x", 0.1, 0.1])
    w, st, _ = convert_vllm_bench(bad)
    assert st.rejected == {"bad_value": 1, "failed_request": 1} and len(w) == 2
    with pytest.raises(InputError, match=r"bad\.json: request 1: bad_value: ttfts: expected a number"):
        convert_vllm_bench(bad, strict=True)
    (tmp_path / "two.json").write_text(src.read_text() + "\n" + src.read_text() + "\n")
    with pytest.raises(InputError, match=r"two\.json: holds 2 runs"):
        convert_vllm_bench(tmp_path / "two.json")
    with pytest.raises(InputError, match=r"no per-request fields itls.*--save-detailed"):
        convert_vllm_bench(bench(tmp_path, "nod.json", itls=...))
    with pytest.raises(InputError, match=r"no valid requests: all 4 rows rejected \(failed_request: 4\)"):
        convert_vllm_bench(bench(tmp_path, "fail.json", errors=["a", "b", "c", "d"]))


def test_compare_by_hand() -> None:
    c = compare(np.array([10.0, 30.0, 5.0, np.nan, 7.0]), np.array([10.0, 15.0, 10.0, 3.0, np.nan]))
    assert c["requests"] == 3  # requests with both values
    # relative errors 0, +1, -0.5
    assert c["rel_error_p50_share"] == pytest.approx(0.5)
    assert c["rel_error_p90_share"] == pytest.approx(0.9)  # between 0.5 and 1 at 90%
    assert c["bias_share"] == pytest.approx(0.0)
    assert c["bias_ms"] == pytest.approx((0 + 15 - 5) / 3)
    assert c["predicted_ms"]["p50"] == 10.0 and c["measured_ms"]["p50"] == 10.0
    assert compare(np.array([np.nan]), np.array([1.0]))["bias_ms"] is None


def _rows(p: Path) -> list[dict]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def test_compare_measured_hand_checked_on_three_requests(tmp_path: Path, capsys) -> None:
    """Measured TTFT = predicted (error 0), half of it (+100%) and twice it (-50%)."""
    run = ["run", "--trace", str(tmp_path / "out.jsonl"), "--no-plot", "--quiet", "--set", "seed=1"]
    src = bench(tmp_path, start_times=[0.0, 1.0, 2.0, 3.0], errors=["", "", "", ""], ttfts=[0.05, 0.02, 0.03, 0.1],
                output_lens=[3, 1, 4, 2], itls=[[0.01, 0.03], [], [0.01, 0.01, 0.01], [0.02]])
    assert convert(tmp_path, src) == 0
    assert main([*run, "--out", str(tmp_path / "r0"), "--requests-out", str(tmp_path / "q0.csv")]) == 0
    pred = [float(r["ttft_ms"]) for r in _rows(tmp_path / "q0.csv")]
    factors = [1.0, 0.5, 2.0, 1.0]
    ttfts = [p * f / 1000.0 for p, f in zip(pred, factors, strict=True)]
    assert convert(tmp_path, bench(tmp_path, "b2.json", start_times=[0.0, 1.0, 2.0, 3.0], errors=["", "", "", ""],
                                   ttfts=ttfts, output_lens=[3, 1, 4, 2],
                                   itls=[[0.01, 0.03], [], [0.01, 0.01, 0.01], [0.02]])) == 0
    capsys.readouterr()
    assert main([*run, "--compare-measured", "--out", str(tmp_path / "r1"),
                 "--requests-out", str(tmp_path / "q1.csv")]) == 0
    rep = json.loads((tmp_path / "r1" / "report.json").read_text())["measured"]
    t = rep["runs"][0]["ttft"]
    assert rep["requests"] == 4 and rep["runs"][0]["policy"] and t["requests"] == 4
    rel = sorted([0.0, 1.0, 0.5, 0.0])  # |pred - meas| / meas per request
    assert t["rel_error_p50_share"] == pytest.approx(float(np.percentile(rel, 50)))
    assert t["rel_error_p90_share"] == pytest.approx(float(np.percentile(rel, 90)))
    assert t["bias_share"] == pytest.approx(float(np.median([0.0, 1.0, -0.5, 0.0])))
    assert t["predicted_ms"]["p50"] == pytest.approx(float(np.percentile(pred, 50)))
    assert t["measured_ms"]["p99"] == pytest.approx(float(np.percentile([p * 1000 * f / 1000 for p, f in
                                                                         zip(pred, factors, strict=True)], 99)))
    tp = rep["runs"][0]["tpot"]
    assert tp["requests"] == 3  # request 1 has one output token
    rows = _rows(tmp_path / "q1.csv")
    assert float(rows[0]["measured_ttft_ms"]) == pytest.approx(float(rows[0]["ttft_ms"]))
    assert rows[1]["measured_tpot_ms"] == "" and float(rows[2]["measured_tpot_ms"]) == pytest.approx(10.0)
    # refused: without timing, or on a trace with nothing measured
    assert main([*run, "--compare-measured", "--hit-rate-only"]) == 2
    assert main(["run", "--compare-measured", "--quiet", "--no-plot", "--set", "synthetic.requests=20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "error: --compare-measured: needs the timed simulation (TTFT/TPOT); drop --hit-rate-only"
    assert err[1].startswith("error: --compare-measured: the workload has no measured_ttft_ms")


@pytest.mark.parametrize("mode,labels", [("cluster", {"router", "policy"}), ("pd", {"deployment", "policy"})])
def test_compare_measured_in_cluster_and_pd(tmp_path: Path, mode: str, labels: set) -> None:
    assert convert(tmp_path, bench(tmp_path)) == 0
    assert main(["run", "--mode", mode, "--trace", str(tmp_path / "out.jsonl"), "--compare-measured", "--quiet",
                 "--no-plot", "--out", str(tmp_path / "r")]) == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())["measured"]
    for run in rep["runs"]:
        assert labels <= set(run) and run["ttft"]["requests"] == 3 and run["tpot"]["requests"] == 2
        assert run["ttft"]["measured_ms"]["p50"] == pytest.approx(50.0)
        assert run["ttft"]["predicted_ms"]["p50"] > 0


def test_mooncake_rows_with_measured_columns(tmp_path: Path) -> None:
    def row(ts: int, **m) -> str:
        return json.dumps({"timestamp": ts, "input_length": 16, "output_length": 2, "hash_ids": [ts],
                           "block_tokens": 16, **m}) + "\n"
    p = tmp_path / "m.jsonl"
    p.write_text(row(0, measured_ttft_ms=5.0, measured_tpot_ms=None) + row(1, measured_ttft_ms=7.5)
                 + row(2, measured_ttft_ms=-1, measured_tpot_ms=1) + row(3, measured_ttft_ms=2, measured_tpot_ms=3))
    w, st = load_trace(p)
    assert st.rejected == {"missing_field": 1, "bad_value": 1}  # row 2 lacks tpot; row 3 has a negative ttft
    assert w.extra["measured_ttft_ms"].tolist() == [5.0, 2.0]
    assert math.isnan(w.extra["measured_tpot_ms"][0]) and w.extra["measured_tpot_ms"][1] == 3.0
    plain = tmp_path / "p.jsonl"
    plain.write_text(row(0) + row(1, measured_ttft_ms=1.0))  # the first row decides: no measured columns
    assert load_trace(plain)[0].extra == {}
