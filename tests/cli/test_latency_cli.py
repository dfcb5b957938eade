"""`python main.py calc latency`: the step-cost model's numbers through the CLI, and its errors."""
import json

import pytest

import main
from sim.config import load_config
from sim.config.gpus import gpu_spec
from sim.config.models import model_spec
from sim.timing.step_cost import StepModel, step_params
from tests.conftest import run_main

run = run_main


def test_json_is_the_step_model():
    p = run("calc", "latency", "--model", "llama-3-70b", "--gpu", "h100", "--tp", "8", "--prompt-tokens", "2048",
            "--batch", "128", "--context", "2048", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    m = StepModel(model_spec("llama-3-70b"), gpu_spec("h100-sxm"), step_params(), tp=8,
                  kv_dtype=load_config().model.kv_dtype)  # calc latency reads the KV dtype from the config
    pre, dec = m.iteration([(2048, 0)]), m.iteration(decode_batch=128, decode_kv_tokens=128 * 2048)
    assert out["prefill"]["total_ms"] == pytest.approx(pre.total_s * 1e3, rel=1e-12)
    assert out["prefill"]["communication_ms"] == pytest.approx(pre.communication_s * 1e3, rel=1e-12)
    assert out["decode"]["total_ms"] == pytest.approx(dec.total_s * 1e3, rel=1e-12)
    assert out["decode"]["attention_ms"] == pytest.approx(dec.attention_s * 1e3, rel=1e-12)
    assert out["prefill_batch"]["total_ms"] == pytest.approx(m.iteration_s([(2048, 0)] * 128) * 1e3, rel=1e-12)
    assert out["params"] == step_params().__dict__ and out["calibration"] == ""
    assert (out["model"], out["gpu"], out["tp"], out["context"]) == ("llama-3-70b", "h100-sxm", 8, 2048)


def test_table_cached_prompt_fp8_and_profile(capsys, tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("compute:\n  gemm_efficiency: 0.32\n  calibration: my-h100-run\n")
    assert main.main(["calc", "latency", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens", "1000",
                      "--cached-tokens", "3000", "--dtype", "fp8", "--profile", str(prof), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    params = step_params().__dict__ | {"gemm_efficiency": 0.32}
    m = StepModel(model_spec("llama-3-8b"), gpu_spec("h100-sxm"), type(step_params())(**params),
                  compute_dtype="fp8", weight_dtype="fp8")
    assert out["prefill"]["total_ms"] == pytest.approx(m.prefill_s(1000, 3000) * 1e3, rel=1e-12)
    assert out["context"] == 4000 and out["calibration"] == "my-h100-run" and "prefill_batch" not in out
    assert main.main(["calc", "latency", "--model", "llama-3-8b", "--gpu", "h100-sxm", "--prompt-tokens", "1000"]) == 0
    text = capsys.readouterr().out
    assert "prefill 1,000 tokens" in text and "communication" in text and "shipped defaults" in text


@pytest.mark.parametrize("args, flag", [
    (["--model", "gpt-9", "--gpu", "h100"], "--model"),
    (["--model", "llama-3-8b", "--gpu", "tpu-v9"], "--gpu"),
    (["--model", "llama-3-8b", "--gpu", "h100", "--batch", "0"], "--batch"),
])
def test_bad_input_is_one_line_exit_2(args, flag):
    p = run("calc", "latency", "--prompt-tokens", "100", *args)
    assert p.returncode == 2 and p.stderr.startswith(f"error: {flag}:") and p.stderr.count("\n") == 1
    assert p.stdout == ""
