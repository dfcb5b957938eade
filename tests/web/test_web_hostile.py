"""Hostile requests against the web API: no server path is opened, bodies are capped, nothing is
echoed in full, NaN/Infinity are refused, work runs in a bounded pool with a time limit, and the
results listing stays inside the results directory."""
import builtins
import json
import pathlib
import threading
import time
import warnings

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install fastapi)")
pytest.importorskip("httpx", reason="httpx is not installed (the FastAPI TestClient needs it)")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import web.app as web_app  # noqa: E402
from web.app import WebLimits, create_app  # noqa: E402
from web.model_input import MAX_CONFIG_BYTES  # noqa: E402

# Llama-3-8B's HuggingFace config.json (the fields kvsim reads), as a browser would post it.
LLAMA3_8B = {"_name_or_path": "my-llama", "model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
             "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
             "vocab_size": 128256, "max_position_embeddings": 8192, "tie_word_embeddings": False}
PATHS = ["/etc/shadow", "/nonexistent", "/root", "../x", "/etc/passwd", ".", "~", "tests/data/vllm_bench_c1.json",
         "C:\\Windows\\win.ini", "/dev/zero", "file:///etc/passwd"]
ENDPOINTS = ["/api/hit-rate", "/api/reuse"]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with TestClient(create_app(tmp_path_factory.mktemp("results"))) as c:
        yield c


def _post(client, url, text):
    return client.post(url, content=text, headers={"content-type": "application/json"})


@pytest.fixture
def fs_calls(monkeypatch):
    """Every file look-up and open made while a request runs (none is allowed for `model`)."""
    calls = []

    def spy(name, orig):
        def f(*a, **k):
            calls.append((name, str(a[0]) if a else ""))
            return orig(*a, **k)
        return f

    for name in ("exists", "is_file", "is_dir", "stat", "open", "read_text", "read_bytes", "resolve"):
        monkeypatch.setattr(pathlib.Path, name, spy(name, getattr(pathlib.Path, name)))
    monkeypatch.setattr(builtins, "open", spy("builtins.open", builtins.open))
    return calls


# ------------------------------------------------------------------ model: presets or posted contents
@pytest.mark.parametrize("url", ENDPOINTS)
def test_a_path_in_model_is_refused_the_same_way_without_touching_files(client, fs_calls, url):
    answers = set()
    for path in PATHS:
        fs_calls.clear()
        r = client.post(url, json={"model": path})
        assert r.status_code == 422, (path, r.text)
        assert fs_calls == [], (path, fs_calls)
        (d,) = r.json()["detail"]
        assert d["loc"] == ["body", "model"] and "unknown model preset (or paste a config.json)" in d["msg"]
        assert path not in r.text or path in (".",)
        answers.add(r.text)
    assert len(answers) == 1  # nothing tells an existing path from a missing one


def test_model_longer_than_255_characters_is_one_line(client):
    for url in ENDPOINTS:
        r = client.post(url, json={"model": "m" * 100_000})
        assert r.status_code == 422
        (d,) = r.json()["detail"]
        assert d["loc"] == ["body", "model"] and "255" in d["msg"] and "\n" not in d["msg"]
        assert len(r.text) < 400
    r = client.post("/api/hit-rate", json={"model": "m" * 255})  # at the cap: just not a preset
    assert r.status_code == 422 and "unknown model preset" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize("model", [5, [1, 2], None, True, ""])
def test_model_of_the_wrong_type_names_the_field(client, model):
    r = client.post("/api/hit-rate", json={"model": model})
    assert r.status_code == 422 and [d["loc"] for d in r.json()["detail"]] == [["body", "model"]]


def test_posted_config_gives_the_presets_numbers(client):
    mine = client.post("/api/hit-rate", json={"model": LLAMA3_8B, "gpus": 2, "vary": None})
    preset = client.post("/api/hit-rate", json={"model": "llama-3-8b", "gpus": 2, "vary": None})
    assert mine.status_code == 200, mine.text
    a, b = mine.json(), preset.json()
    assert a["model"] == "my-llama"
    for k in ("kv_bytes_per_token", "kv_bytes_per_token_per_gpu", "hit_rate", "lru_hit_rate", "tp"):
        assert a[k] == pytest.approx(b[k], rel=1e-3), k
    r = client.post("/api/reuse", json={"model": LLAMA3_8B, "gpus": 1, "prefix_tokens": 4096})
    assert r.status_code == 200 and r.json()["model"] == "my-llama"
    assert r.json()["kv_bytes_per_gpu"] == client.post(
        "/api/reuse", json={"model": "llama-3-8b", "gpus": 1, "prefix_tokens": 4096}).json()["kv_bytes_per_gpu"]


@pytest.mark.parametrize("bad, says", [
    ({"hidden_size": None}, "hidden_size"),
    ({"num_hidden_layers": 10**9}, "at most"),
    ({"hidden_size": 1e300}, "finite number"),
    ({"num_attention_heads": "32x"}, "num_attention_heads"),
    ({"num_key_value_heads": 7}, "multiple"),
    ({"full_attention_interval": "x"}, "full_attention_interval"),
    ({"kv_lora_rank": [1]}, "kv_lora_rank"),
    ({"filler": "x" * (MAX_CONFIG_BYTES + 1)}, "KiB"),
])
def test_bad_posted_config_is_422_naming_model(client, bad, says):
    cfg = {**LLAMA3_8B, **bad}
    r = client.post("/api/hit-rate", json={"model": cfg})
    assert r.status_code == 422, r.text
    (d,) = r.json()["detail"]
    assert d["loc"] == ["body", "model"] and says in d["msg"], d
    assert len(r.text) < 600


def test_posted_config_with_nan_is_422(client):
    text = json.dumps({"model": LLAMA3_8B}).replace('"hidden_size": 4096', '"hidden_size": NaN')
    r = _post(client, "/api/hit-rate", text)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]


# ------------------------------------------------------------------ NaN / Infinity in numeric fields
CALC_NUMERIC = ["gpus", "tp", "pp", "arrival_rate", "turns", "interval_s", "prompt_tokens", "response_tokens",
                "system_prompt_tokens", "system_prompts", "weight_overhead", "memory_gb", "kv_budget_gb",
                "target_hit_rate", "points"]
REUSE_NUMERIC = ["gpus", "tp", "prefix_tokens", "gemm_efficiency", "link_gb_s"]


@pytest.mark.parametrize("url, field", [("/api/hit-rate", f) for f in CALC_NUMERIC]
                         + [("/api/reuse", f) for f in REUSE_NUMERIC])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_422_naming_the_field(client, url, field, value):
    r = _post(client, url, f'{{"{field}": {value}}}')
    assert r.status_code == 422, r.text
    assert ["body", field] in [d["loc"] for d in r.json()["detail"]]


# ------------------------------------------------------------------ body cap, no echo
def test_body_over_the_cap_is_413_before_parsing():
    with TestClient(create_app("nowhere", WebLimits(body_bytes=1000))) as c:
        big = json.dumps({"model": "llama-3-8b", "pad": "x" * 2000})
        r = _post(c, "/api/hit-rate", big)
        assert r.status_code == 413 and len(r.text) < 300 and "xxxx" not in r.text

        def chunks():  # no content-length: counted while reading
            for _ in range(5):
                yield b"x" * 400

        r = c.post("/api/hit-rate", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert _post(c, "/api/hit-rate", json.dumps({"model": "llama-3-8b"})).status_code == 200


def test_default_cap_is_one_mib(client):
    r = _post(client, "/api/hit-rate", '{"x": "' + "a" * (1 << 20) + '"}')
    assert r.status_code == 413


@pytest.mark.parametrize("body, char", [
    ({"k" * 50_000: 1}, "k"),                # an unknown key, huge
    ({"gpus": "9" * 50_000}, "9"),           # a huge bad value
    ({"model": "llama-3-8b", "vary": "v" * 50_000}, "v"),
    ({"gpu": "g" * 50_000}, "g"),
    ({"gpu": "g" * 64}, "g"),                # at the cap: quoted in "unknown GPU", whole
    ({"model": {**LLAMA3_8B, "z" * 5000: "bad", "hidden_size": "z" * 5000}}, "z"),
])
def test_errors_never_echo_the_input_in_full(client, body, char):
    for url in ENDPOINTS:
        r = client.post(url, json=body)
        assert r.status_code == 422 and len(r.text) < 1000, (url, len(r.text))
        assert char * 81 not in r.text and "\n" not in r.json()["detail"][0]["msg"]


def test_invalid_json_and_deep_nesting_are_client_errors(client):
    assert _post(client, "/api/hit-rate", "{not json").status_code == 422
    assert _post(client, "/api/hit-rate", "[" * 100_000 + "]" * 100_000).status_code in (400, 422)


# ------------------------------------------------------------------ worker pool: 429 and 503
def _blocking(monkeypatch, started, release):
    def slow(req):
        started.set()
        release.wait(10)
        return web_app._json({"ok": True})
    monkeypatch.setattr(web_app, "_calc", slow)


def test_requests_beyond_workers_and_queue_get_429(monkeypatch):
    started, release = threading.Event(), threading.Event()
    _blocking(monkeypatch, started, release)
    with TestClient(create_app("nowhere", WebLimits(workers=1, queue=0, timeout_s=20))) as c:
        first = {}
        t = threading.Thread(target=lambda: first.update(r=c.post("/api/hit-rate", json={})))
        t.start()
        assert started.wait(10)
        r = c.post("/api/hit-rate", json={})
        assert r.status_code == 429 and r.headers.get("retry-after") and "busy" in r.json()["detail"][0]["msg"]
        assert c.post("/api/reuse", json={}).status_code == 429  # one pool for every heavy endpoint
        release.set()
        t.join(10)
        assert first["r"].status_code == 200 and first["r"].json() == {"ok": True}
        assert c.post("/api/reuse", json={"model": "llama-3-8b", "gpus": 1}).status_code == 200


def test_a_request_over_the_time_limit_gets_503(monkeypatch):
    started, release = threading.Event(), threading.Event()
    _blocking(monkeypatch, started, release)
    with TestClient(create_app("nowhere", WebLimits(workers=1, queue=1, timeout_s=0.2))) as c:
        t0 = time.monotonic()
        r = c.post("/api/hit-rate", json={})
        assert r.status_code == 503 and "time limit" in r.json()["detail"][0]["msg"]
        assert time.monotonic() - t0 < 5
        # the stuck computation keeps its worker; the queue slot answers 503 too, then 429 when full
        assert c.post("/api/hit-rate", json={}).status_code == 503
        release.set()
        deadline = time.monotonic() + 10
        while c.post("/api/reuse", json={"model": "llama-3-8b", "gpus": 1}).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


# ------------------------------------------------------------------ results folder confinement
@pytest.fixture
def escaping_results(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "points.csv").write_text("SECRET_HEADER,hit_rate\n1,0.5\n")
    (outside / "report.json").write_text(json.dumps({"policies": [{"name": "SECRET", "metrics": {}}]}))
    root = tmp_path / "results"
    (root / "sw").mkdir(parents=True)
    (root / "sw" / "points.csv").symlink_to(outside / "points.csv")
    (root / "linked.json").symlink_to(outside / "report.json")
    (root / "dirlink").symlink_to(outside, target_is_directory=True)
    return root


def test_results_listing_does_not_follow_symlinks_out(escaping_results):
    with TestClient(create_app(escaping_results)) as c:
        r = c.get("/api/results")
        assert r.status_code == 200 and "SECRET" not in r.text
        d = r.json()
        assert d["sweeps"] == [] and d["reports"] == []
        assert {"sw/points.csv", "linked.json"} <= {s["path"] for s in d["skipped"]}
        for url, path in (("/api/results/sweep", "sw"), ("/api/results/sweep", "sw/points.csv"),
                          ("/api/results/report", "linked.json"), ("/api/results/sweep", "dirlink"),
                          ("/api/results/report", "dirlink/report.json"), ("/api/results/report", "a\x00b"),
                          ("/api/results/report", "../outside/report.json")):
            r = c.get(url, params={"path": path})
            assert r.status_code == 422 and "SECRET" not in r.text, (path, r.text)
            assert r.json()["detail"][0]["loc"] == ["query", "path"]
        r = c.get("/api/results/report", params={"path": "p" * 5000})
        assert r.status_code == 422 and len(r.text) < 1000


# ------------------------------------------------------------------ the library side and `serve`
@pytest.mark.parametrize("name", PATHS)
def test_presets_only_makes_model_spec_refuse_paths(fs_calls, name):
    from sim.config.models import model_spec, presets_only
    from sim.errors import InputError

    with presets_only(), pytest.raises(InputError, match=r"unknown model preset \(or paste a config.json\)") as e:
        model_spec(name)
    assert fs_calls == [] and (name not in str(e.value) or name == ".")  # "." is in "llama-3.1"
    assert model_spec("llama-3-8b").name == "llama-3-8b"


def test_serve_on_a_busy_port_is_one_line_exit_2(capsys):
    import socket

    from sim.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        rc = main(["serve", "--port", str(s.getsockname()[1]), "--results-dir", "nowhere"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: --port: cannot listen") and "\n" not in err
