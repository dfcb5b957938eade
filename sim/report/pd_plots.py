"""PNG plots of PD runs: PD vs colocated, and the P:D ratio sweep (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from sim.report import style  # noqa: E402
from sim.report.plots import save_with_footer  # noqa: E402


def pd_figure(report: dict):
    """TTFT and TPOT p50/p99 with the SLO lines, SLO attainment and goodput: PD vs colocated."""
    runs = [(p["name"], p["metrics"]) for p in report["policies"]]
    names = [n for n, _ in runs]
    x = list(range(len(runs)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    st = style.series_styles(["p50", "p99"])
    for ax, key, what, title in ((axes[0], "ttft_ms", "TTFT", "Time to first token"),
                                 (axes[1], "tpot_ms", "TPOT", "Time per output token")):
        w = 0.38
        p50 = [m[key]["p50"] or 0 for _, m in runs]
        p99 = [m[key]["p99"] or 0 for _, m in runs]
        slo = report["config"]["slo"][key]
        unit = style.time_unit(p50 + p99 + [slo])
        ax.bar([i - w / 2 for i in x], [v * unit.scale for v in p50], w, label="p50", **st["p50"].bar_kw())
        ax.bar([i + w / 2 for i in x], [v * unit.scale for v in p99], w, label="p99", **st["p99"].bar_kw())
        style.slo_line(ax, slo, unit, f"{what} SLO")
        for i in x:
            ax.text(i - w / 2, p50[i] * unit.scale, f"{p50[i] * unit.scale:,.3g}", ha="center", va="bottom",
                    fontsize=7)
            ax.text(i + w / 2, p99[i] * unit.scale, f"{p99[i] * unit.scale:,.3g}", ha="center", va="bottom",
                    fontsize=7)
        ax.set_xticks(x, names)
        ax.set_ylabel(unit.label(what))
        ax.set_title(title)
        style.legend_outside(ax)
    ax = axes[2]
    att = [100 * (m["slo_attainment"] or 0) for _, m in runs]
    ax.bar(x, att, 0.5, color=style.PALETTE[2])
    for i, (a, (_, m)) in enumerate(zip(att, runs, strict=True)):
        ax.text(i, a + 1, f"{a:.1f}%\n{m['goodput_req_s']:.2f} req/s", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 119)
    ax.set_xticks(x, names)
    style.percent_axis(ax, "requests meeting both SLOs")
    ax.set_title("SLO attainment (label: goodput)")
    fig.suptitle(f"PD vs colocated: {style.run_title(report)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def plot_pd_comparison(report: dict, path: str | Path) -> Path:
    return save_with_footer(pd_figure(report), report, path)


def pd_ratio_title(result: dict) -> str:
    """Model, GPU, deployment and trace of a P:D ratio sweep (every row shares the layout's GPUs and TP)."""
    lay = result.get("layout") or {}
    w = result.get("workload") or {}
    trace = f"{w.get('name')}, {w.get('requests')} requests"  # the result keeps the workload's name, not its path
    par = f"TP{lay.get('tp')}" + (f" PP{lay.get('pp')}" if lay.get("pp") not in (None, 1) else "")
    return (f"{lay.get('model')} on {lay.get('gpu')} · {result.get('gpus')} GPUs, {par}, "
            f"{len(result.get('rows') or [])} P:D ratios · {trace}")


def pd_ratio_figure(result: dict):
    """Goodput and SLO attainment per P:D ratio; colocated on the same GPUs as a dashed line."""
    rows = result["rows"]
    labels = [r["ratio"] + (f"\n({r['prefill_replicas']}P+{r['decode_replicas']}D)") for r in rows]
    x = list(range(len(rows)))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    col = result.get("colocated")
    ax = axes[0]
    ax.plot(x, [r["goodput_req_s"] for r in rows], label="PD", **style.slot_style(0).line_kw())
    if col:
        ax.axhline(col["goodput_req_s"], color=style.REF_COLOR, ls="--", label="colocated")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("goodput (requests/s meeting both SLOs)")
    ax.set_title("Goodput per P:D ratio")
    ax.set_ylim(bottom=0)
    style.legend_outside(ax)
    ax = axes[1]
    keys = (("slo_attainment", "both SLOs"), ("ttft_attainment", "TTFT SLO"), ("tpot_attainment", "TPOT SLO"))
    st = style.series_styles(lab for _, lab in keys)
    for key, lab in keys:
        ax.plot(x, [100 * (r[key] or 0) for r in rows], label=lab, **st[lab].line_kw())
    if col:
        ax.axhline(100 * col["slo_attainment"], color=style.REF_COLOR, ls="--", label="colocated (both)")
    ax.set_xticks(x, labels, fontsize=8)
    style.percent_axis(ax, "requests meeting the SLO")
    ax.set_ylim(0, 105)
    ax.set_title("SLO attainment per P:D ratio")
    style.legend_outside(ax)
    fig.suptitle(f"P:D ratio sweep: {pd_ratio_title(result)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def plot_pd_ratio(result: dict, path: str | Path) -> Path:
    return save_with_footer(pd_ratio_figure(result), result, path)
