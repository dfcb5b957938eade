"""Hostile input to the config loader, `run` and its outputs, trace reading and model configs.

Each case must end with exit 2, one `error: ...` line on stderr naming the key, flag or file, no
traceback, and no output file left looking complete.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from sim.cli import main
from tests.conftest import ROOT

RUN = ["run", "--preset", "smoke", "--hit-rate-only", "--quiet", "--no-plot"]


def one_error_line(capsys, code: int, *names: str) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert len(lines[0]) < 600
    return lines[0]


# ----------------------------------------------------------------- config values

@pytest.mark.parametrize("args, names", [
    (["--set", "hardware.hbm.capacity_gib=.inf"], ["hardware.hbm.capacity_gib", "finite"]),
    (["--set", "hardware.hbm.capacity_gib=1e300"], ["hardware.hbm.capacity_gib"]),
    (["--set", "hardware.dram.bandwidth_gb_s=.nan"], ["hardware.dram.bandwidth_gb_s"]),
    (["--set", "slo.ttft_ms=-.inf"], ["slo.ttft_ms"]),
    (["--set", "seed=-1"], ["seed"]),
    (["--seed", "-1"], ["seed"]),
    (["--set", "model.tp=3"], ["model.tp", "heads"]),
    (["--set", "model.name=qwen2.5-7b", "--set", "model.tp=14", "--set", "hardware.gpus_per_node=14",
      "--set", "cluster.gpus_per_rack=28"], ["model.tp", "KV heads"]),
    (["--set", "model.pp=1000"], ["model.pp"]),
    (["--set", "model.tp=100000"], ["model.tp"]),
    (["--set", "cluster.racks=100000"], ["cluster.racks"]),
    (["--set", "cluster.racks=1000000000000"], ["cluster.racks"]),
    (["--set", "cluster.racks=4096", "--set", "cluster.gpus_per_rack=4096"], ["cluster.gpus_per_rack", "GB"]),
    (["--set", "pd.racks=1000000000000"], ["pd.racks"]),
    (["--set", "pd.gpus_per_rack=1000000000000"], ["pd.gpus_per_rack"]),
    (["--set", "pd.racks=4000", "--set", "pd.gpus_per_rack=4000"], ["pd.gpus_per_rack", "GPUs"]),
    (["--set", "synthetic.requests=1000000000000"], ["synthetic.requests"]),
    (["--set", "synthetic.sessions=1000000000000"], ["synthetic.sessions"]),
    (["--set", "synthetic.document_tokens=1000000000000"], ["synthetic.document_tokens"]),
    (["--set", "model.name=" + "a" * 300], ["model.name", "255"]),
    (["--set", "trace.path=" + "x" * 5000], ["trace.path"]),
    (["--policy", ","], ["--policy"]),
    (["--policy", " , ,"], ["--policy"]),
    (["--compare", "--set", "policies.compare=[]"], ["policies.compare"]),
])
def test_bad_config_values_are_one_line(args, names, capsys, tmp_path):
    out = tmp_path / "r.json"
    code = main([*RUN, *args, "--report-json", str(out)])
    line = one_error_line(capsys, code, *names)
    assert "a" * 100 not in line  # a long value is clipped, never echoed whole
    assert not out.exists()


@pytest.mark.parametrize("content", [b"\x00\x01\x02binary\xff\xfe", b"\xff\xfe\xfd not utf-8 at all"])
def test_binary_config_file(content, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    one_error_line(capsys, main([*RUN, "--config", str(cfg)]), str(cfg))


@pytest.mark.parametrize("flag", ["--config", "--profile"])
@pytest.mark.parametrize("path", ["DIR", "/dev/zero", "/nonexistent/c.yaml"])
def test_config_not_a_regular_file(flag, path, tmp_path, capsys):
    path = str(tmp_path) if path == "DIR" else path
    one_error_line(capsys, main([*RUN, flag, path]), path)


@pytest.mark.parametrize("key, value", [
    ("hidden_size", float("nan")),
    ("num_attention_heads", float("inf")),
    ("num_hidden_layers", 10**12),
    ("vocab_size", 1e300),
    ("q_lora_rank", float("nan")),
    ("num_local_experts", "eight"),
    ("attn_layer_period", float("nan")),
])
def test_hf_config_json_nan_or_absurd(key, value, tmp_path, capsys):
    d = dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
             intermediate_size=14336, vocab_size=32000, max_position_embeddings=8192)
    d[key] = value
    if key == "q_lora_rank":
        d.update(kv_lora_rank=512, qk_rope_head_dim=64)
    if key == "attn_layer_period":
        d["attn_layer_offset"] = 0
    p = tmp_path / "config.json"
    p.write_text(json.dumps(d))  # json.dumps writes NaN / Infinity, which json.loads reads back
    one_error_line(capsys, main([*RUN, "--set", f"model.name={p}"]), str(p), key)


@pytest.mark.parametrize("content", [b"\x00\x89PNG binary", b"[1, 2]"])
def test_hf_config_json_binary_or_not_an_object(content, tmp_path, capsys):
    p = tmp_path / "config.json"
    p.write_bytes(content)
    one_error_line(capsys, main(["calc", "kv", "--model", str(p)]), str(p))


def test_model_name_too_long_for_the_model_lookup(capsys):
    from sim.config.models import model_spec
    from sim.errors import InputError

    with pytest.raises(InputError, match="model.name"):
        model_spec("b" * 300)


# ----------------------------------------------------------------- report outputs

@pytest.mark.parametrize("flag", ["--report-json", "--report-csv"])
@pytest.mark.parametrize("target", ["DIR", "/proc/kvsim-report", "/dev/full", "NUL"])
def test_unusable_report_path(flag, target, tmp_path, capsys):
    target = {"DIR": str(tmp_path), "NUL": str(tmp_path / "a\0b.json")}.get(target, target)
    other = tmp_path / "other.json"
    other_flag = "--report-csv" if flag == "--report-json" else "--report-json"
    one_error_line(capsys, main([*RUN, flag, target, other_flag, str(other)]), flag)
    assert not other.exists()


def test_unusable_plot_path(tmp_path, capsys):
    run = [a for a in RUN if a != "--no-plot"]
    one_error_line(capsys, main([*run, "--plot", str(tmp_path / "p.xyz")]), "--plot")
    one_error_line(capsys, main([*run, "--plot", str(tmp_path)]), "--plot")


@pytest.mark.parametrize("failing", ["csv", "plot"])
def test_outputs_are_written_as_a_set(failing, tmp_path, capsys, monkeypatch):
    """A failing --report-csv or plot after --report-json leaves no JSON (and no temporary) behind."""
    import sim.report.plots
    import sim.report.rows

    def boom(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sim.report.rows if failing == "csv" else sim.report.plots,
                        "write_csv" if failing == "csv" else "plot_policy_comparison", boom)
    run = [a for a in RUN if a != "--no-plot"]
    code = main([*run, "--report-json", str(tmp_path / "r.json"), "--report-csv", str(tmp_path / "r.csv"),
                 "--plot", str(tmp_path / "p.png")])
    one_error_line(capsys, code, "--report-csv" if failing == "csv" else "--plot", "No space")
    assert list(tmp_path.iterdir()) == []


def test_outputs_written_together_on_success(tmp_path, capsys):
    run = [a for a in RUN if a not in ("--no-plot", "--quiet")]
    assert main([*run, "--report-json", str(tmp_path / "r.json"), "--report-csv", str(tmp_path / "r.csv"),
                 "--plot", str(tmp_path / "p")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "r.csv", "r.json"]
    assert json.loads((tmp_path / "r.json").read_text())["policies"]
    out = capsys.readouterr().out.splitlines()
    wrote = [ln for ln in out if ln.startswith("wrote")]
    assert wrote == [f"wrote {tmp_path / n}" for n in ("r.json", "r.csv", "p.png")]


def test_closed_pipe_is_one_line():
    """`calc kv --json | head`: the reader is gone before the first write; one line, exit 2, no traceback."""
    p = subprocess.Popen([sys.executable, "main.py", "calc", "kv", "--model", "llama-3-8b", "--json"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 2
    assert err.startswith("error: stdout:") and err.count("\n") == 1, err


# ----------------------------------------------------------------- traces

def _stats(path) -> list[str]:
    return ["trace", "stats", "--trace", str(path)]


@pytest.mark.parametrize("target", ["/dev/zero", "DIR", "NUL"])
def test_trace_not_a_regular_file(target, tmp_path, capsys):
    target = {"DIR": str(tmp_path), "NUL": "a\0b.jsonl"}.get(target, target)
    one_error_line(capsys, main(_stats(target)))


@pytest.mark.parametrize("newline", [False, True])
def test_trace_line_length_limit(newline, tmp_path, capsys):
    from trace.rowio import MAX_LINE_BYTES

    p = tmp_path / "t.jsonl"
    first = b'{"timestamp": 0, "input_length": 16, "output_length": 5, "hash_ids": [1]}\n' if newline else b""
    p.write_bytes(first + b"{" + b"7" * (MAX_LINE_BYTES + 10) + b"\n")
    fmt = ["--trace-format", "mooncake"] if newline else []
    line = one_error_line(capsys, main([*_stats(p), *fmt]), str(p), "line 2" if newline else "line 1")
    assert "4,194,304" in line


def _mooncake(tmp_path, ts) -> str:
    p = tmp_path / "m.jsonl"
    rows = [{"timestamp": 0, "input_length": 16, "output_length": 5, "hash_ids": [1]},
            {"timestamp": ts, "input_length": 16, "output_length": 5, "hash_ids": [2]}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


@pytest.mark.parametrize("ts, reason", [(1e300, "timestamp_out_of_range"), (1e14, "timestamp_out_of_range"),
                                        (float("nan"), "bad_value"), (float("inf"), "bad_value")])
def test_mooncake_timestamp_out_of_range(ts, reason, tmp_path, capsys):
    from trace.formats import load_trace

    path = _mooncake(tmp_path, ts)
    wl, stats = load_trace(path, "mooncake")
    assert stats.loaded == 1 and stats.rejected == {reason: 1}
    one_error_line(capsys, main([*_stats(path), "--strict"]), path, "line 2", reason)


def test_format_detection_does_not_echo_binary(tmp_path, capsys):
    p = tmp_path / "t.dat"
    p.write_bytes(b"\x1b[31m\xff\xfe\x07evil\x00\x01 line\n")
    line = one_error_line(capsys, main(_stats(p)), str(p))
    assert line.isascii() and "\x1b" not in line and "\x07" not in line and "\x00" not in line


# ----------------------------------------------------------------- serve

def test_serve_on_a_busy_port_exits_2():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "main.py", "serve", "--port", str(port)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --port"), r.stderr
