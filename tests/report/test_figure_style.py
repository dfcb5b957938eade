"""Figures: colour-blind-safe distinct palette, ms/s switch, percent labels, titles, legends outside, skips."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from sim.report import style  # noqa: E402
from sim.report.pd_plots import pd_figure, pd_ratio_figure  # noqa: E402
from sim.report.plots import plot_cluster_skew, policy_figure, router_figure, skew_figure  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "data"
POLICIES = ("lru", "lfu", "fifo", "arc", "s3fifo", "selective_write", "session_prefetch", "learned", "belady")


def _report(case: str) -> dict:
    return json.loads((GOLDEN / f"{case}.json").read_text())["report.json"]


def _lab(hex_color: str) -> tuple[float, float, float]:
    """sRGB (D65) -> CIE L*a*b*, written out here so the test does not trust the module it checks."""
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(int(hex_color[i:i + 2], 16) / 255) for i in (1, 3, 5))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116
    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def delta_e(a: str, b: str) -> float:
    return math.dist(_lab(a), _lab(b))


def test_lab_conversion_reference_points():
    assert _lab("#FFFFFF") == pytest.approx((100, 0, 0), abs=0.1)
    assert _lab("#000000") == pytest.approx((0, 0, 0), abs=0.1)
    assert _lab("#FF0000") == pytest.approx((53.24, 80.09, 67.20), abs=0.3)  # standard sRGB red


def test_palette_is_okabe_ito_and_pairwise_distinct():
    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    assert set(style.PALETTE) == okabe_ito and len(style.PALETTE) == 8
    worst = min(delta_e(a, b) for a, b in itertools.combinations(style.PALETTE, 2))
    assert worst >= 25, worst  # blue vs sky blue is the closest pair (26.4)
    # the complaints: LFU and ARC were two similar oranges
    st = style.series_styles(POLICIES)
    assert delta_e(st["lfu"].color, st["arc"].color) >= 40
    assert style.REF_COLOR not in style.PALETTE


def test_every_series_is_distinct_past_the_palette_and_stable_across_subsets():
    st = style.series_styles(POLICIES)
    combos = {(s.color, s.linestyle, s.hatch) for s in st.values()}
    assert len(combos) == len(POLICIES)  # 9 policies, 8 colours: the 9th differs in line style and hatch
    assert len({s.color for s in list(st.values())[:8]}) == 8
    # a run showing only some policies colours them as the full comparison does
    sub = style.series_styles(["belady", "arc", "lru"])
    assert all(sub[k] == st[k] for k in sub)
    # unknown names (sweep labels) take free slots in order: the oracle's two lines differ
    cap = style.series_styles(["LRU", "learned (LightGBM)", "oracle optimum", "content bound (unlimited capacity)"])
    assert len({s.color for s in cap.values()}) == 4


@pytest.mark.parametrize(("values", "unit", "scale"), [
    ([9999.0], "ms", 1.0), ([10_000.0], "s", 1e-3), ([5.0, None, 47_743.1], "s", 1e-3), ([], "ms", 1.0),
    ([None], "ms", 1.0), ([-20_000.0], "s", 1e-3),
])
def test_time_unit_switches_at_ten_thousand_ms(values, unit, scale):
    tu = style.time_unit(values)
    assert (tu.name, tu.scale) == (unit, scale)
    assert tu.label("TTFT") == f"TTFT ({unit})"


def test_percent_axis_ticks_carry_the_percent_sign_and_shares_are_labelled_0_1():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.2, 0.7])  # a percent axis whose values happen to stay under 1
    style.percent_axis(ax, "share of TTFT on the network")
    fig.canvas.draw()
    assert "(%)" not in ax.get_ylabel()
    ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert ticks and all(t.endswith("%") for t in ticks)
    plt.close(fig)
    assert style.share_label("hit rate", percent=False) == "hit rate (0-1)"
    assert style.share_label("hit rate", percent=True) == "hit rate (%)"


def test_all_zero():
    assert style.all_zero([0, 0.0, None]) and style.all_zero([])
    assert not style.all_zero([0, 1e-9])


def _legends_outside(fig) -> int:
    """Number of legends checked; each must not overlap its axes."""
    fig.canvas.draw()
    n = 0
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None:
            continue
        lb, ab = leg.get_window_extent(), ax.get_window_extent()
        assert lb.x0 >= ab.x1 or lb.x1 <= ab.x0 or lb.y0 >= ab.y1 or lb.y1 <= ab.y0, (lb, ab)
        n += 1
    return n


def test_policy_figure_title_seconds_slo_and_legends():
    fig = policy_figure(_report("single_timed_small"))
    title = fig._suptitle.get_text()
    for part in ("llama-3-70b", "h100-sxm", "8 GPUs", "TP2", "4 workers", "mooncake_small.jsonl", "55 requests"):
        assert part in title, (part, title)
    hit_ax, ttft_ax = fig.axes
    assert ttft_ax.get_ylabel().startswith("TTFT (s)")  # p99 47,743 ms reads 47.7 s
    assert "(%)" not in hit_ax.get_ylabel()
    slo = [ln for ln in ttft_ax.get_lines() if ln.get_label().startswith("TTFT SLO")]
    assert len(slo) == 1 and slo[0].get_ydata()[0] == pytest.approx(30.0)  # 30,000 ms SLO, in seconds
    tallest = max(p.get_height() for p in ttft_ax.patches)
    assert tallest == pytest.approx(47.743, rel=1e-3)
    assert _legends_outside(fig) == 2
    plt.close(fig)


def test_router_and_pd_titles_name_the_deployment():
    fig = router_figure(_report("cluster_small"))
    assert "32 GPUs in 2 racks, TP2, 16 workers" in fig._suptitle.get_text()
    assert _legends_outside(fig) == 2
    plt.close(fig)
    fig = pd_figure(_report("pd_small"))
    t = fig._suptitle.get_text()
    assert "P:D 8:24 (16 prefill + 48 decode replicas)" in t and "128 GPUs" in t and "llama-3-70b" in t
    assert _legends_outside(fig) == 2
    labels = [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
    assert "TTFT SLO 30 s" in labels and "TPOT SLO 100 ms" in labels
    plt.close(fig)


def test_pd_ratio_title():
    result = {"rows": [{"ratio": "1:1", "prefill_replicas": 2, "decode_replicas": 2, "goodput_req_s": 1.0,
                        "slo_attainment": 0.5, "ttft_attainment": 0.6, "tpot_attainment": 0.9}],
              "layout": {"model": "llama-3-8b", "gpu": "h100-sxm", "tp": 1, "pp": 1}, "gpus": 4,
              "workload": {"name": "mooncake_conversation", "requests": 300}}
    fig = pd_ratio_figure(result)
    t = fig._suptitle.get_text()
    assert "llama-3-8b on h100-sxm" in t and "4 GPUs, TP1" in t and "mooncake_conversation, 300 requests" in t
    assert _legends_outside(fig) == 2
    plt.close(fig)


def test_skew_plot_marks_max_mean_and_is_written(tmp_path):
    rep = _report("cluster_small")
    fig = skew_figure(rep)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    first = rep["routers"][0]["metrics"]["skew"]
    assert heights[0] == pytest.approx(first["worker"]["load"]["max_mean"])
    assert len(heights) == 3 * len(rep["routers"])
    assert {ln.get_ydata()[0] for ln in ax.get_lines()} == {1.0, 2.0}  # even spread and the 2x warning level
    assert "16 of 16 workers used" in ax.get_xticklabels()[0].get_text()
    assert _legends_outside(fig) == 1
    plt.close(fig)
    out = plot_cluster_skew(rep, tmp_path / "skew.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sensitivity_figure_title_and_percent_axis():
    from sim.analytic import calc_hit_rate
    from sim.analytic.render import sensitivity_figure

    rep = calc_hit_rate({"model": "llama-3-70b", "gpu": "h100-sxm", "gpus": 8, "arrival_rate": 2, "turns": 5,
                         "interval_s": 60}, vary="kv_budget_gb", points=3)
    fig = sensitivity_figure(rep)
    ax = fig.axes[0]
    t = ax.get_title()
    assert "llama-3-70b on h100-sxm" in t and "8 GPUs, TP4, 2 replicas" in t and "arrival rate 2" in t
    assert "(%)" not in ax.get_ylabel()
    assert _legends_outside(fig) == 1
    plt.close(fig)


def _meta(metric: str) -> dict:
    return {"name": "nv", "mode": "cluster", "modes": ["cluster"], "seeds": [1], "metrics": [metric],
            "axes": [{"name": "network.jitter_cv", "values": [0.0, 0.5], "numeric": True,
                      "keys": ["network.jitter_cv"], "label": "jitter CV", "log": False}],
            "workloads": {"default": {"trace": "../shared/traces/mooncake_conversation.jsonl"}},
            "setup": {"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 2, "pp": 1, "racks": 2, "gpus_per_rack": 16,
                      "slo_ttft_ms": 30000.0, "slo_tpot_ms": 100.0}}


def test_sweep_plot_of_all_zeros_is_skipped_with_a_note(tmp_path):
    from experiments.plots import plot_one

    meta = _meta("network.tail_events")
    rows = [{"status": "ok", "network.jitter_cv": v, "network.tail_events": 0} for v in (0.0, 0.5)]
    path, note = plot_one(meta, rows, {"y": ["network.tail_events"]}, tmp_path / "t.png")
    assert path is None and "0 at every finished point" in note and not (tmp_path / "t.png").exists()
    rows[1]["network.tail_events"] = 3
    path, note = plot_one(meta, rows, {"y": ["network.tail_events"]}, tmp_path / "t.png")
    assert path == tmp_path / "t.png" and path.exists() and note is None


def test_sweep_plot_title_units_and_percent(tmp_path, monkeypatch):
    import experiments.plots as P

    seen = {}
    real = P.plt.close

    def grab(fig):
        seen["fig"] = fig
        fig.canvas.draw()
        seen["title"] = fig._suptitle.get_text()
        seen["ylabels"] = [ax.get_ylabel() for ax in fig.axes]
        seen["refs"] = [ln.get_ydata()[0] for ln in fig.axes[0].get_lines() if "SLO" in ln.get_label()]
        seen["texts"] = [t.get_text() for t in fig.axes[0].texts]
        seen["ticks"] = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
        real(fig)

    monkeypatch.setattr(P.plt, "close", grab)
    meta = _meta("ttft_p99_ms")
    rows = [{"status": "ok", "network.jitter_cv": v, "ttft_p99_ms": ms} for v, ms in ((0.0, 8000.0), (0.5, 25000.0))]
    P.plot_one(meta, rows, {"y": ["ttft_p99_ms"]}, tmp_path / "a.png")
    assert "llama-3-70b on h100-sxm · 2 racks x 16 GPUs, TP2 · cluster mode · mooncake_conversation.jsonl" \
        in seen["title"].replace("\n", " ")
    assert seen["ylabels"][0] == "TTFT p99 (s)"
    assert seen["refs"] == [30.0]  # the base config's 30,000 ms TTFT SLO, in seconds
    rows = [{"status": "ok", "network.jitter_cv": v, "ttft_p99_ms": ms} for v, ms in ((0.0, 80.0), (0.5, 250.0))]
    P.plot_one(meta, rows, {"y": ["ttft_p99_ms"]}, tmp_path / "a.png")
    assert seen["ylabels"][0] == "TTFT p99 (ms)" and seen["refs"] == []  # 30 s would flatten 80-250 ms curves
    assert any("TTFT SLO 30 s: above the plotted range" in t for t in seen["texts"])
    meta = _meta("ttft_network_share")
    rows = [{"status": "ok", "network.jitter_cv": v, "ttft_network_share": s} for v, s in ((0.0, 1e-4),
                                                                                                   (0.5, 2e-3))]
    P.plot_one(meta, rows, {"y": ["ttft_network_share"]}, tmp_path / "b.png")
    assert "(%)" not in seen["ylabels"][0] and all(t.endswith("%") for t in seen["ticks"])


def test_sweep_plot_names_a_varied_model_per_axis():
    from experiments.plots import setup_text

    meta = _meta("hit_rate")
    meta["axes"].append({"name": "deployment", "values": ["a", "b"], "numeric": False, "keys": ["profile"],
                         "label": "calibration profile"})
    meta["mode"] = "single"
    t = setup_text(meta)
    assert t.startswith("model per calibration profile on gpu per calibration profile")


def test_cli_cluster_run_writes_the_skew_plot(tmp_path, capsys):
    from sim.cli import main

    plot = tmp_path / "c.png"
    rc = main(["run", "--mode", "cluster", "--trace", "tests/data/mooncake_small.jsonl", "--router",
               "prefix_aware,round_robin", "--hit-rate-only", "--set", "cluster.racks=2", "--set",
               "cluster.gpus_per_rack=16", "--plot", str(plot)])
    assert rc == 0
    skew = tmp_path / "c_skew.png"
    assert plot.exists() and skew.exists()
    out = capsys.readouterr().out
    assert f"wrote {plot}\n" in out and f"wrote {skew}\n" in out
    assert Path(skew).read_bytes()[:4] == b"\x89PNG"
