"""`python main.py calc hit-rate|reuse` and `serve` argument handling: the CLI prints the library's numbers."""
import json

import pytest

import main
from sim.analytic import calc_hit_rate, reuse_breakeven
from sim.cli import build_parser
from sim.cli.serve import cmd_serve
from tests.conftest import run_main

run = run_main


def test_design_flags_give_json_with_hit_rate():
    # the exact command of the design contract (the README quick reference)
    p = run("calc", "hit-rate", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--gpus", "8", "--arrival-rate", "2",
            "--turns", "5", "--interval-s", "60", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    want = calc_hit_rate({"model": "llama-3-70b", "gpu": "h100-sxm", "gpus": 8, "arrival_rate": 2, "turns": 5,
                          "interval_s": 60})
    assert out["hit_rate"] == want["hit_rate"]
    assert out == json.loads(json.dumps(want))


def test_every_flag_reaches_the_library(capsys, tmp_path):
    png = tmp_path / "sens.png"
    rc = main.main(["calc", "hit-rate", "--model", "llama-3-8b", "--gpu", "a100-80g", "--gpus", "4", "--tp", "2",
                    "--pp", "1", "--dtype", "fp8", "--weight-dtype", "bf16", "--arrival-rate", "3", "--turns", "6",
                    "--turns-dist", "geometric", "--interval-s", "40", "--prompt-tokens", "300",
                    "--response-tokens", "150",
                    "--system-prompt-tokens", "512", "--system-prompts", "2", "--weight-overhead", "1.3",
                    "--cache-outputs", "--target-hit-rate", "0.7", "--vary", "turns", "--values", "2,4,8",
                    "--plot", str(png), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    inputs = dict(model="llama-3-8b", gpu="a100-80g", gpus=4, tp=2, pp=1, kv_dtype="fp8", weight_dtype="bf16",
                  arrival_rate=3, turns=6, turns_dist="geometric", interval_s=40, prompt_tokens=300,
                  response_tokens=150,
                  system_prompt_tokens=512, system_prompts=2, weight_overhead=1.3, cache_outputs=True)
    want = calc_hit_rate(inputs, target_hit_rate=0.7, vary="turns", values=[2, 4, 8])
    assert out == json.loads(json.dumps(want))
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"


def test_table_output_shows_the_numbers(capsys):
    assert main.main(["calc", "hit-rate", "--model", "llama-3-8b", "--gpus", "2", "--arrival-rate", "4",
                      "--kv-budget-gb", "20", "--target-hit-rate", "0.5"]) == 0
    text = capsys.readouterr().out
    r = calc_hit_rate({"model": "llama-3-8b", "gpus": 2, "arrival_rate": 4, "kv_budget_gb": 20},
                      target_hit_rate=0.5)
    assert f"{100 * r['hit_rate']:.2f}%" in text
    assert f"{r['cacheable_tokens']:,}" in text
    assert r["target"]["message"] in text


@pytest.mark.parametrize("args, flag", [
    (["--arrival-rate", "-1"], "--arrival-rate"),
    (["--turns", "0"], "--turns"),
    (["--gpus", "6", "--tp", "4"], "--gpus"),
    (["--model", "no-such-model"], "--model"),
    (["--dtype", "fp8", "--kv-budget-gb", "0"], "--kv-budget-gb"),
    (["--target-hit-rate", "1.5"], "--target-hit-rate"),
    (["--vary", "colour"], "--vary"),
])
def test_bad_input_is_one_line_naming_the_flag(args, flag, capsys):
    assert main.main(["calc", "hit-rate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {flag}:") and "\n" not in err and "Traceback" not in err


def test_reuse_json_is_the_library():
    p = run("calc", "reuse", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--gpus", "8", "--prefix-tokens", "8192",
            "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["breakeven_gb_s"] == reuse_breakeven("llama-3-70b", "h100-sxm", gpus=8, prefix_tokens=8192)[
        "breakeven_gb_s"]


def test_reuse_table_and_errors(capsys):
    assert main.main(["calc", "reuse", "--gpus", "4", "--prefix-tokens", "32768", "--link-gb-s", "25"]) == 0
    text = capsys.readouterr().out
    r = reuse_breakeven("llama-3-70b", "h100-sxm", gpus=4, prefix_tokens=32768, link_gb_s=25)
    assert f"{r['breakeven_gb_s']:,.2f} GB/s" in text and "loading pays" in text
    assert main.main(["calc", "reuse", "--prefix-tokens", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --prefix-tokens:")


def test_serve_is_a_real_command():
    ns = build_parser().parse_args(["serve", "--host", "127.0.0.1", "--port", "8123", "--results-dir", "r"])
    assert ns.func is cmd_serve and (ns.host, ns.port, ns.results_dir) == ("127.0.0.1", 8123, "r")
    p = run("serve", "--port", "0")
    assert p.returncode == 2 and p.stderr.startswith("error: --port:")


@pytest.mark.parametrize("model,gpu,tp,reserve", [("llama-3-70b", "h100-sxm", "4", None),
                                                  ("llama-3-8b", "a100-80g", "1", "6.5")])
def test_calc_kv_and_hit_rate_report_one_kv_budget(capsys, model, gpu, tp, reserve):
    # the two calculators share sim.config.kv_sizes.free_kv_bytes_per_gpu: memory - weights/GPU - reserve
    extra = ["--reserve-gb", reserve] if reserve else []
    assert main.main(["calc", "kv", "--model", model, "--gpu", gpu, "--tp", tp, "--json", *extra]) == 0
    kv = json.loads(capsys.readouterr().out)
    assert main.main(["calc", "hit-rate", "--model", model, "--gpu", gpu, "--gpus", "8", "--tp", tp, "--json",
                      *extra]) == 0
    hr = json.loads(capsys.readouterr().out)
    assert hr["kv_budget_gib_per_gpu"] == pytest.approx(kv["free_kv_gib_per_gpu"], rel=1e-12)
    r = float(reserve or 4.0)
    assert kv["free_kv_gib_per_gpu"] == pytest.approx(kv["gpu"]["memory_gib"] - kv["weights_gib_per_gpu"] - r)
    if model == "llama-3-70b":  # the case: 80 - 131.42/4 - 4 = 43.15 GiB (no longer 40.58)
        assert round(kv["free_kv_gib_per_gpu"], 2) == 43.15


def test_calc_kv_that_does_not_fit_prints_sizes_and_the_smallest_tp(capsys):
    # llama-3-70b fp16 at TP 1 on an 80 GiB H100: 131 GiB of weights; TP 2 leaves 80 - 65.7 - 4 = 10.29 GiB
    assert main.main(["calc", "kv", "--model", "llama-3-70b", "--gpu", "h100-sxm"]) == 0
    out = capsys.readouterr().out
    assert "327,680 B" in out                       # KV bytes per token are printed
    assert "does not fit at tp 1 x pp 1" in out
    assert "smallest TP that fits: 2 (10.29 GiB KV per GPU)" in out
    assert main.main(["calc", "kv", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["fits"] is False and rep["smallest_fit"]["tp"] == 2 and rep["kv_bytes_per_token"] == 327_680
