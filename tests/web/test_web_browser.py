"""The web UI in a real browser: system Chromium driven by Playwright.

Starts the FastAPI app with uvicorn on 127.0.0.1 (a free port) in a thread,
types into the calculator, checks that the numbers shown are the library's,
that bad input puts a friendly message next to its field and greys the stale
figures, that a typed architecture gives the preset's numbers, that the results
page groups runs and draws the policy and sweep charts, and that at 390 and
1,280 px nothing is wider than the window; saves screenshots (path printed; set
KVSIM_SCREENSHOT_DIR to keep them somewhere else than pytest's tmp dir).

Runs in CI (.ci/run installs the dev extras, playwright among them, and the
Debian ``chromium`` package). Skips, saying why, only when no Chromium binary
exists; outside CI also when the ``playwright`` package is missing. It never
runs ``playwright install``: it uses the system browser through executable_path.
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

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "",
                             shutil.which("chromium-browser") or "")
                 if p and os.path.exists(p)), None)
if CHROMIUM is None:
    pytest.skip("no system Chromium (apt-get install chromium); the browser test needs it", allow_module_level=True)

import uvicorn  # noqa: E402  (a project dependency)

try:
    from playwright import sync_api
except ImportError:
    if os.environ.get("CI"):  # CI installs the dev extras: a missing playwright there is a broken setup
        raise
    pytest.skip("the playwright Python package is not installed (pip install '.[dev]'; the browser is the "
                "system one)", allow_module_level=True)

from sim.analytic import calc_hit_rate  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.modes.runner import run_mode  # noqa: E402
from sim.report.schema import write_json  # noqa: E402
from tests.conftest import DATA  # noqa: E402
from trace.formats import load_trace  # noqa: E402
from web.app import create_app  # noqa: E402

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
    """A run folder with its report (and results/latest -> it), and a sweep folder laid out as the sweep
    engine writes it: sweep.json, points.csv, checksums.json and one report per point under points/."""
    root = tmp_path_factory.mktemp("results")
    w, _ = load_trace(FIXTURE)
    rep = run_mode(load_config(overrides=["hardware.hbm.capacity_gib=0.25"]), "single", workload=w,
                   policies=["lru", "arc", "belady"], timing=True)
    write_json(rep, root / "single-20250101-120000" / "report.json")
    (root / "latest").symlink_to("single-20250101-120000", target_is_directory=True)
    sweep = root / "sweep-20250101-110000"
    (sweep / "points").mkdir(parents=True)
    caps, pols = (0.1, 0.25, 0.5), ("lru", "belady")
    (sweep / "sweep.json").write_text(json.dumps({
        "name": "capacity", "metrics": ["hit_rate", "evictions"], "plots": [],
        "axes": [{"name": "hardware.hbm.capacity_gib", "values": list(caps), "numeric": True},
                 {"name": "policies.eviction", "values": list(pols), "numeric": False}]}))
    (sweep / "checksums.json").write_text(json.dumps({"points": {}}))
    with (sweep / "points.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        # evictions before hit_rate: the chart's default y must come from sweep.json, not the column order
        wr.writerow(["point_id", "error", "hardware.hbm.capacity_gib", "policies.eviction", "seed", "evictions",
                     "hit_rate"])
        for i, cap in enumerate(caps):
            for j, pol in enumerate(pols):
                r = run_mode(load_config(overrides=[f"hardware.hbm.capacity_gib={cap}"]), "single", workload=w,
                             policies=[pol], timing=False)
                pid = f"p{2 * i + j:04d}"
                wr.writerow([pid, "", cap, pol, 42, r["metrics"]["evictions"], r["metrics"]["hit_rate"]])
                write_json(r, sweep / "points" / f"{pid}.json")
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


# Every test starts from this form, whatever ran before it: pytest-xdist hands a module's tests to either
# worker process, so no test may rely on what an earlier one typed into the shared page.
BASE_FORM = {"f-model": "llama-3-70b", "f-gpus": "8", "f-arrival_rate": "2", "f-turns": "6", "f-interval_s": "45",
             "f-prompt_tokens": "600", "f-response_tokens": "300", "f-system_prompt_tokens": "1000",
             "f-target_hit_rate": ""}


@pytest.fixture(autouse=True)
def base_form(page, server):
    page.goto(server + "/")  # a new document: no field, tab or stale mark left from the test before
    page.wait_for_function("document.body.dataset.state === 'ok'")
    for sel, v in BASE_FORM.items():
        page.fill("#" + sel, v)
    page.select_option("#f-kv_dtype", "fp8")
    _settle(page)


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


STALE = ["#results-card", "#sens-card", "#suggestion", "#reuse-out"]


def _opacity(pg, sel: str) -> float:
    return float(pg.eval_on_selector(sel, "e => getComputedStyle(e).opacity"))


def test_bad_input_shows_a_message_next_to_the_field(page, tmp_path):
    shown = page.get_attribute("#o-hit_rate", "data-value")
    assert not any("stale" in (page.get_attribute(s, "class") or "") for s in STALE)
    assert not page.is_visible("#o-stale")
    page.fill("#f-arrival_rate", "-2")
    page.fill("#f-gpus", "")
    _settle(page, "error")
    # friendly words (web/messages.py), not pydantic's "Input should be ..."
    assert page.inner_text("#e-arrival_rate") == ("Arrival rate (conversations/s) must be a number above 0 "
                                                  "and up to 100,000")
    assert page.inner_text("#e-gpus") == "GPUs must be a whole number between 1 and 1,000,000"
    assert "Input should" not in page.inner_text("#calc-form")
    assert "bad" in page.get_attribute("#f-arrival_rate", "class")
    assert page.inner_text("#e-turns") == ""
    # the last valid figures stay, greyed, with a note saying they are stale
    assert page.get_attribute("#o-hit_rate", "data-value") == shown
    for sel in STALE:
        assert "stale" in page.get_attribute(sel, "class"), sel
        assert _opacity(page, sel) < 0.6, sel
    assert page.is_visible("#o-stale")
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
    for sel in STALE:
        assert "stale" not in page.get_attribute(sel, "class"), sel
        assert _opacity(page, sel) == 1.0, sel
    assert not page.is_visible("#o-stale")


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


def test_results_page_groups_runs_and_draws_the_charts(page, results_dir, tmp_path):
    page.click("#tab-results")
    page.wait_for_function("document.body.dataset.results === 'ok'")
    # two runs: the plain run (its report) first, then the sweep with its points folded
    runs = page.locator("#res-runs .run")
    assert runs.count() == 2
    assert runs.nth(0).get_attribute("data-dir") == "single-20250101-120000"
    assert "latest" in runs.nth(0).inner_text()
    assert runs.nth(1).get_attribute("data-dir") == "sweep-20250101-110000"
    assert page.locator("#res-runs li.report").count() == 1  # the 6 point reports are not listed as reports
    sweep_run = runs.nth(1)
    assert "6 points" in sweep_run.locator("li.sweep").inner_text()
    assert "(sweep.json)" in sweep_run.locator("li.sweep").inner_text()
    assert sweep_run.locator("summary").inner_text() == "6 point reports"
    assert not sweep_run.locator("li.point").first.is_visible()  # folded
    assert page.inner_text("#res-skipped") == "none"  # sweep.json and checksums.json are recognised
    rep = json.loads((results_dir / "single-20250101-120000" / "report.json").read_text())
    totals = page.locator("#policy-chart text.bar-total").all_text_contents()  # SVG: no innerText
    assert totals == [f"{100 * p['metrics']['hit_rate']:.1f}%" for p in rep["policies"]]
    assert page.locator("#ttft-chart rect.bar").count() == 2 * len(rep["policies"])
    # the sweep's default chart: first axis x first metric (sweep.json), the second axis as series
    assert page.input_value("#sw-x") == "hardware.hbm.capacity_gib"
    assert page.input_value("#sw-y") == "hit_rate"
    assert page.input_value("#sw-series") == "policies.eviction"
    assert page.get_attribute("#sweep-chart", "data-series") == "2"
    assert page.locator("#sweep-chart path.series").count() == 2
    assert "capacity" in page.inner_text("#sweep-title")
    # a point report opens from the folded list
    sweep_run.locator("summary").click()
    sweep_run.locator("li.point").first.click()
    page.wait_for_function("document.querySelector('#policy-title').textContent.includes('p0000.json')")
    shot = _shot_dir(tmp_path) / "results.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    page.click("#tab-calc")


# Every visible element's box within the window (SVG content included), and the page no wider than it.
OVERFLOW_JS = """() => {
  const W = window.innerWidth, bad = [];
  const doc = document.documentElement.scrollWidth;
  if (doc > W) bad.push(`document ${doc} > ${W}`);
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const cs = getComputedStyle(e);
    if (cs.visibility === 'hidden' || cs.display === 'none') continue;
    if (r.right > W + 0.5 || r.left < -0.5) {
      const what = `${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute('class') || ''}`;
      bad.push(`${what} [${r.left.toFixed(0)}, ${r.right.toFixed(0)}]`);
    }
  }
  return bad;
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_no_element_is_wider_than_the_window(page, tmp_path, width):
    page.set_viewport_size({"width": width, "height": 900})
    try:
        page.fill("#f-arrival_rate", "12")
        page.fill("#f-target_hit_rate", "0.6")  # not met: the suggestion table shows too
        _settle(page)
        assert page.locator("#suggestion tbody tr").count() > 0
        assert page.evaluate(OVERFLOW_JS) == [], "calculator"
        if width == 390:  # one column: the answers follow the form, readable without sideways scrolling
            form, out = page.locator("#calc-form").bounding_box(), page.locator("#results-card").bounding_box()
            assert out["y"] >= form["y"] + form["height"] - 1 and out["x"] + out["width"] <= width
        page.select_option("#f-model_source", "custom")
        _settle(page)
        assert page.evaluate(OVERFLOW_JS) == [], "custom architecture form"
        page.select_option("#f-model_source", "preset")
        page.fill("#f-target_hit_rate", "")
        page.fill("#f-arrival_rate", "2")
        _settle(page)
        page.screenshot(path=str(_shot_dir(tmp_path) / f"calculator_{width}.png"), full_page=True)
        page.click("#tab-results")
        page.wait_for_function("document.body.dataset.results === 'ok'")
        page.locator("#res-runs summary").first.click()  # the folded point list open too
        assert page.evaluate(OVERFLOW_JS) == [], "results"
        page.screenshot(path=str(_shot_dir(tmp_path) / f"results_{width}.png"), full_page=True)
    finally:
        page.click("#tab-calc")
        page.set_viewport_size({"width": 1400, "height": 1400})


def test_secondary_figures_are_the_library_numbers(page):
    _settle(page)
    want = calc_hit_rate({"model": "llama-3-70b", "gpus": 8, "arrival_rate": 2, "turns": 6, "interval_s": 45,
                          "prompt_tokens": 600, "response_tokens": 300, "system_prompt_tokens": 1000,
                          "kv_dtype": "fp8"})
    for key, kind in (("cache_utilization_share", "pct"), ("request_rate_req_s", "dec1"),
                      ("prompt_tokens_s", "int"), ("hit_tokens_s", "int")):
        node = page.locator(f"#o-{key}")
        assert float(node.get_attribute("data-value")) == want[key], key
        assert node.inner_text().strip() == _fmt(kind, want[key]), key


ARCH_8B = {"layers": "32", "kv_heads": "8", "head_dim": "128", "params_b": "8.030261248", "attention_heads": "32",
           "hidden_size": "4096", "vocab_size": "128256", "max_context": "8192"}


def test_custom_architecture_gives_the_preset_numbers(page):
    page.fill("#f-model", "llama-3-8b")
    _settle(page)
    preset = {k: page.get_attribute(f"#o-{k}", "data-value") for k in SHOWN}
    preset_reuse = page.get_attribute("#o-breakeven", "data-value")
    page.select_option("#f-model_source", "custom")
    for k in ARCH_8B:  # typed by hand, not filled from the preset
        page.fill(f"#f-architecture-{k}", "")
    _settle(page, "error")
    assert page.inner_text("#e-architecture-layers") == "Layers is required"
    page.fill("#f-architecture-name", "my-8b")
    for k, v in ARCH_8B.items():
        page.fill(f"#f-architecture-{k}", v)
    _settle(page)
    assert "my-8b" in page.inner_text("#o-layout")
    assert {k: page.get_attribute(f"#o-{k}", "data-value") for k in SHOWN} == preset
    page.wait_for_function(f"document.querySelector('#o-breakeven')?.dataset.value === '{preset_reuse}'")
    # friendly range message, and the stale figures greyed
    page.fill("#f-architecture-layers", "20000")
    _settle(page, "error")
    assert page.inner_text("#e-architecture-layers") == "Layers must be a whole number between 1 and 10,000"
    assert "stale" in page.get_attribute("#results-card", "class")
    page.fill("#f-architecture-layers", "32")
    page.fill("#f-architecture-kv_heads", "6")
    _settle(page, "error")
    assert "multiple of the KV heads" in page.inner_text("#e-architecture-kv_heads")
    page.fill("#f-architecture-kv_heads", "8")
    _settle(page)
    page.select_option("#f-model_source", "preset")
    page.fill("#f-model", "llama-3-70b")
    _settle(page)
