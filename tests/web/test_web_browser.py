"""The web UI in a real browser: system Chromium driven by Playwright.

Starts the FastAPI app with uvicorn on 127.0.0.1 (a free port) in a thread,
types into the calculator, checks that the numbers shown are the library's,
that bad input puts a message next to its field, that the results page draws
the policy and sweep charts, and saves screenshots (path printed; set
KVSIM_SCREENSHOT_DIR to keep them somewhere else than pytest's tmp dir).

Skips, saying why, when Chromium (Debian package ``chromium``), the
``playwright`` Python package, fastapi or uvicorn is missing. It never runs
``playwright install``: it uses the system browser through executable_path.
"""
import csv
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="fastapi is not installed (pip install fastapi)")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install uvicorn)")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed "
                                                             "(pip install playwright; the browser is the system one)")

from sim.analytic import calc_hit_rate  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.modes.runner import run_mode  # noqa: E402
from sim.report.schema import write_json  # noqa: E402
from tests.conftest import DATA  # noqa: E402
from trace.formats import load_trace  # noqa: E402
from web.app import create_app  # noqa: E402

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "")
                 if p and os.path.exists(p)), None)
if CHROMIUM is None:
    pytest.skip("no system Chromium (apt-get install chromium); the browser test needs it", allow_module_level=True)

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]

FIXTURE = DATA / "mooncake_small.jsonl"
TIMEOUT_MS = 20_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    w, _ = load_trace(FIXTURE)
    rep = run_mode(load_config(overrides=["hardware.hbm.capacity_gib=0.25"]), "single", workload=w,
                   policies=["lru", "arc", "belady"], timing=True)
    write_json(rep, root / "policies" / "report.json")
    sweep = root / "sweep1"
    sweep.mkdir()
    with (sweep / "points.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["hardware.hbm.capacity_gib", "policies.eviction", "seed", "hit_rate", "error"])
        for cap in (0.1, 0.25, 0.5):
            for pol in ("lru", "belady"):
                r = run_mode(load_config(overrides=[f"hardware.hbm.capacity_gib={cap}"]), "single", workload=w,
                             policies=[pol], timing=False)
                wr.writerow([cap, pol, 42, r["metrics"]["hit_rate"], ""])
    return root


@pytest.fixture(scope="module")
def server(results_dir):
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(results_dir), host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    t0 = time.monotonic()
    while not srv.started:
        if not th.is_alive() or time.monotonic() - t0 > 20:
            pytest.fail("the web server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(10)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1400})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.set_default_timeout(TIMEOUT_MS)
        pg.goto(server + "/")
        pg.wait_for_function("document.body.dataset.state === 'ok'")
        yield pg
        browser.close()
        assert not errors, errors


def _shot_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("KVSIM_SCREENSHOT_DIR") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _settle(pg, state: str = "ok") -> None:
    """Wait until the debounced request has gone out and every answer is in."""
    pg.wait_for_timeout(350)
    pg.wait_for_function(f"document.body.dataset.pending === '0' && document.body.dataset.state === '{state}'")


def _fmt(kind: str, v: float) -> str:
    # the page's formats (web/static/app.js FMT)
    return {"pct": f"{100 * v:.2f}%", "int": f"{round(v):,}", "gib": f"{v:,.2f}", "dec1": f"{v:,.1f}"}[kind]


SHOWN = {"hit_rate": "pct", "lru_hit_rate": "pct", "coverage": "pct", "max_hit_rate": "pct",
         "kv_bytes_per_token": "int", "kv_bytes_per_token_per_gpu": "int", "kv_budget_gib_per_gpu": "gib",
         "kv_budget_gib_total": "gib", "weights_gib_per_gpu": "gib", "cacheable_tokens": "int",
         "max_concurrency": "int", "active_conversations": "dec1", "tokens_per_conversation": "int",
         "tokens_needed": "int", "reuse_share": "pct", "system_share": "pct"}


def test_calculator_shows_the_library_numbers(page, tmp_path):
    typed = {"f-model": "llama-3-70b", "f-gpus": "16", "f-arrival_rate": "12", "f-turns": "6", "f-interval_s": "45",
             "f-prompt_tokens": "600", "f-response_tokens": "300", "f-system_prompt_tokens": "1000",
             "f-target_hit_rate": "0.7"}
    for sel, v in typed.items():
        page.fill("#" + sel, v)
    page.select_option("#f-kv_dtype", "fp8")
    _settle(page)
    want = calc_hit_rate({"model": "llama-3-70b", "gpus": 16, "arrival_rate": 12, "turns": 6, "interval_s": 45,
                          "prompt_tokens": 600, "response_tokens": 300, "system_prompt_tokens": 1000,
                          "kv_dtype": "fp8"}, target_hit_rate=0.7, vary="kv_budget_gb", points=25)
    for key, kind in SHOWN.items():
        node = page.locator(f"#o-{key}")
        assert float(node.get_attribute("data-value")) == want[key], key
        assert node.inner_text().strip() == _fmt(kind, want[key]), key
    assert f"tp {want['tp']} (auto)" in page.inner_text("#o-layout")
    # sensitivity chart: two curves over every point the library computed
    assert page.locator("#sens-chart path.series").count() == 2
    assert page.get_attribute("#sens-chart", "data-points") == str(len(want["sensitivity"]["rows"]))
    # target box: the library's suggestion and memory figure
    assert page.inner_text("#o-suggestion").strip() == want["target"]["message"]
    assert float(page.get_attribute("#o-memory-needed", "data-value")) == want["target"]["memory"]["kv_gib_per_gpu"]
    assert not want["target"]["met"] and want["target"]["suggestion"] is not None
    assert page.locator("#suggestion tbody tr").count() == len(want["target"]["options"])
    assert page.locator("#suggestion tbody tr.sel td").first.inner_text() == want["target"]["suggestion"]["lever"]
    shot = _shot_dir(tmp_path) / "calculator.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_bad_input_shows_a_message_next_to_the_field(page, tmp_path):
    page.fill("#f-arrival_rate", "-2")
    page.fill("#f-gpus", "")
    _settle(page, "error")
    assert "greater than 0" in page.inner_text("#e-arrival_rate")
    assert "valid integer" in page.inner_text("#e-gpus")
    assert "bad" in page.get_attribute("#f-arrival_rate", "class")
    assert page.inner_text("#e-turns") == ""
    shot = _shot_dir(tmp_path) / "calculator_error.png"
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    # an error the library finds (not the schema) lands next to its field too
    page.fill("#f-arrival_rate", "2")
    page.fill("#f-gpus", "6")
    page.fill("#f-tp", "4")
    _settle(page, "error")
    assert "do not split" in page.inner_text("#e-gpus")
    assert page.inner_text("#e-arrival_rate") == ""
    page.fill("#f-tp", "")
    page.fill("#f-gpus", "8")
    _settle(page)
    assert page.inner_text("#e-gpus") == ""


LLAMA3_8B_CONFIG = {"_name_or_path": "pasted-llama", "num_hidden_layers": 32, "hidden_size": 4096,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
                    "vocab_size": 128256, "max_position_embeddings": 8192}


def test_model_is_a_preset_or_a_pasted_config_never_a_path(page, tmp_path):
    page.fill("#f-model", "/etc/passwd")
    _settle(page, "error")
    assert "unknown model preset (or paste a config.json)" in page.inner_text("#e-model")
    page.fill("#f-model", "llama-3-8b")
    _settle(page)
    preset_kv = page.get_attribute("#o-kv_bytes_per_token", "data-value")
    page.fill("#f-model", "not-a-preset")  # the pasted config replaces the preset field
    page.fill("#f-model_config", json.dumps(LLAMA3_8B_CONFIG))
    _settle(page)
    assert "pasted-llama" in page.inner_text("#o-layout")
    assert page.get_attribute("#o-kv_bytes_per_token", "data-value") == preset_kv
    page.fill("#f-model_config", "{not json")
    _settle(page, "error")
    assert "not valid JSON" in page.inner_text("#e-model_config")
    page.fill("#f-model_config", json.dumps({**LLAMA3_8B_CONFIG, "hidden_size": None}))
    _settle(page, "error")
    assert "hidden_size" in page.inner_text("#e-model_config")
    upload = tmp_path / "config.json"
    upload.write_text(json.dumps({**LLAMA3_8B_CONFIG, "_name_or_path": "uploaded-llama"}))
    page.set_input_files("#f-model_file", str(upload))
    _settle(page)
    assert "uploaded-llama" in page.inner_text("#o-layout")
    page.fill("#f-model_config", "")
    page.fill("#f-model", "llama-3-70b")
    _settle(page)


def test_results_page_draws_the_charts(page, results_dir, tmp_path):
    page.click("#tab-results")
    page.wait_for_function("document.body.dataset.results === 'ok'")
    assert page.locator("#res-reports tbody tr").count() == 1
    rep = json.loads((results_dir / "policies" / "report.json").read_text())
    totals = page.locator("#policy-chart text.bar-total").all_text_contents()  # SVG: no innerText
    assert totals == [f"{100 * p['metrics']['hit_rate']:.1f}%" for p in rep["policies"]]
    assert page.locator("#ttft-chart rect.bar").count() == 2 * len(rep["policies"])
    assert page.locator("#res-sweeps tbody tr").count() == 1
    assert page.input_value("#sw-x") == "hardware.hbm.capacity_gib"
    assert page.input_value("#sw-series") == "policies.eviction"
    assert page.get_attribute("#sweep-chart", "data-series") == "2"
    assert page.locator("#sweep-chart path.series").count() == 2
    shot = _shot_dir(tmp_path) / "results.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
