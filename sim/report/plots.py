"""PNG plots of reports (matplotlib, headless): policy / router comparison and the cluster skew plot."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from sim.cache.layout import LOC_NAMES  # noqa: E402
from sim.report import style  # noqa: E402
from sim.report.rows import policy_rows, router_rows  # noqa: E402

SKEW_WARN_MAX_MEAN = 2.0  # max/mean above this is marked on the skew plot (the seed simulator's warning level)


def save_with_footer(fig, report: dict, path: str | Path) -> Path:
    """Footnote the config hash and seed, write the figure, free it."""
    fig.text(0.01, 0.005, f"config {report.get('config_hash')}  seed {report.get('seed')}", fontsize=7, color="gray")
    return style.save_figure(fig, path)


def comparison_figure(
    report: dict,
    names: list[str],
    segments: Sequence[tuple[str, Sequence[float | None]]],
    ttft_p50: list[float | None],
    ttft_p99: list[float | None],
    *,
    hit_title: str,
    suptitle: str,
):
    """Stacked hit-rate bars (one segment per tier/location) and TTFT p50/p99 bars per run, SLO line on TTFT."""
    x = list(range(len(names)))
    fig, axes = plt.subplots(1, 2, figsize=(max(9, 1.4 * len(names) + 5), 4.5))
    ax = axes[0]
    bottom = [0.0] * len(names)
    seg_styles = style.series_styles(label for label, _ in segments)
    for label, rates in segments:
        vals = [100 * (v or 0) for v in rates]
        ax.bar(x, vals, bottom=bottom, label=label, **seg_styles[label].bar_kw())
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    for i, b in enumerate(bottom):
        ax.text(i, b, f"{b:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    style.percent_axis(ax, "token hit rate")
    ax.set_title(hit_title)
    ax.set_ylim(0, max(bottom + [1]) * 1.15)
    style.legend_outside(ax, fontsize=7)
    ax = axes[1]
    if names and all(v is not None for v in ttft_p50 + ttft_p99):
        slo_ms = ((report.get("config") or {}).get("slo") or {}).get("ttft_ms")
        unit = style.time_unit(list(ttft_p50) + list(ttft_p99) + ([slo_ms] if slo_ms else []))
        width = 0.4
        st = style.series_styles(["p50", "p99"])
        for off, q, series in ((-width / 2, "p50", ttft_p50), (width / 2, "p99", ttft_p99)):
            ax.bar([i + off for i in x], [(v or 0) * unit.scale for v in series], width, label=q, **st[q].bar_kw())
        if slo_ms:
            style.slo_line(ax, slo_ms, unit, "TTFT SLO")
        # p50 and p99 differ by orders of magnitude under load: log scale keeps both readable
        log = min(v for v in ttft_p50 + ttft_p99 if v is not None) > 0  # all set (checked above)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(unit.label("TTFT") + (", log scale" if log else ""))
        ax.set_title("Time to first token")
        style.legend_outside(ax)
    else:
        ax.text(0.5, 0.5, "hit-rate-only run:\nno timing", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(x, names, rotation=30, ha="right")
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def policy_figure(report: dict):
    rows = policy_rows(report)
    segments = [(tier.upper(), [r[f"{tier}_hit_rate"] for r in rows]) for tier in ("hbm", "dram", "ssd")]
    return comparison_figure(
        report, [r["policy"] for r in rows], segments,
        [r["ttft_p50_ms"] for r in rows], [r["ttft_p99_ms"] for r in rows],
        hit_title="Prefix hit rate by tier",
        suptitle=f"{report.get('mode')} mode: {style.run_title(report)}",
    )


def plot_policy_comparison(report: dict, path: str | Path) -> Path:
    """Hit rate by tier (stacked) and TTFT p50/p99 per policy, config hash in a footnote."""
    return save_with_footer(policy_figure(report), report, path)


def router_figure(report: dict):
    rows = router_rows(report)
    return comparison_figure(
        report, [r["router"] for r in rows],
        [(loc, [r[f"{loc}_hit_rate"] for r in rows]) for loc in LOC_NAMES],
        [r["ttft_p50_ms"] for r in rows], [r["ttft_p99_ms"] for r in rows],
        hit_title="Prefix hit rate by location",
        suptitle=f"cluster mode: {style.run_title(report)}",
    )


def plot_router_comparison(report: dict, path: str | Path) -> Path:
    """Hit rate by location (stacked) and TTFT p50/p99 per router."""
    return save_with_footer(router_figure(report), report, path)


SKEW_SERIES = (("worker load", "worker", "load"), ("worker requests", "worker", "requests"),
               ("rack load", "rack", "load"))


def skew_figure(report: dict):
    """Per router (or policy): max/mean of the load and requests per worker and of the load per rack.

    1 is a perfectly even spread; the dashed line marks the 2x warning level;
    each group is labelled with how many of the workers received any request."""
    src = report.get("routers") or []
    if len(src) <= 1 and len(report.get("policies") or []) > 1:  # one router, several policies: one group each
        src = report["policies"]
    runs = [(p["name"], p["metrics"].get("skew") or {}) for p in src]
    x = list(range(len(runs)))
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(runs) + 5), 4.5))
    width = 0.8 / len(SKEW_SERIES)
    st = style.series_styles(label for label, _, _ in SKEW_SERIES)
    tops = [0.0] * len(runs)
    for k, (label, level, what) in enumerate(SKEW_SERIES):
        vals = [((s.get(level) or {}).get(what) or {}).get("max_mean") or 0.0 for _, s in runs]
        xs = [i - 0.4 + width * (k + 0.5) for i in x]
        ax.bar(xs, vals, width * 0.95, label=label, **st[label].bar_kw())
        for xi, v in zip(xs, vals, strict=True):
            ax.text(xi, v, f"{v:.2g}", ha="center", va="bottom", fontsize=7)
        tops = [max(t, v) for t, v in zip(tops, vals, strict=True)]
    ax.axhline(1.0, color=style.REF_COLOR, lw=1, ls=":", label="even spread (max = mean)")
    ax.axhline(SKEW_WARN_MAX_MEAN, color=style.REF_COLOR, lw=1.2, ls="--",
               label=f"{SKEW_WARN_MAX_MEAN:g}x: skewed")
    names = []
    for name, s in runs:
        w = s.get("worker") or {}
        names.append(f"{name}\n{w.get('used')} of {w.get('count')} workers used")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("max / mean over all workers or racks")
    ax.set_ylim(0, max(tops + [SKEW_WARN_MAX_MEAN]) * 1.15)
    ax.set_title("Load skew per router (busiest / mean)")
    style.legend_outside(ax)
    fig.suptitle(f"cluster mode: {style.run_title(report)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def plot_cluster_skew(report: dict, path: str | Path) -> Path:
    """The skew plot of a cluster run (written next to routers.png as skew.png)."""
    return save_with_footer(skew_figure(report), report, path)
