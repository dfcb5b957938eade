"""PNG plots of reports (matplotlib, headless)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.cache.layout import LOC_NAMES  # noqa: E402
from sim.report.rows import policy_rows, router_rows  # noqa: E402


def save_with_footer(fig, report: dict, path: str | Path) -> Path:
    """Footnote the config hash and seed, write the PNG, free the figure."""
    fig.text(0.01, 0.01, f"config {report.get('config_hash')}  seed {report.get('seed')}", fontsize=7, color="gray")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def comparison_plot(
    report: dict,
    names: list[str],
    segments: Sequence[tuple[str, Sequence[float | None], str | None]],
    ttft_p50: list[float | None],
    ttft_p99: list[float | None],
    *,
    hit_title: str,
    suptitle: str,
    path: str | Path,
) -> Path:
    """Stacked hit-rate bars (one segment per tier/location) and TTFT p50/p99 bars per run."""
    x = list(range(len(names)))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(names) + 4), 4.5))
    ax = axes[0]
    bottom = [0.0] * len(names)
    for label, rates, color in segments:
        vals = [100 * (v or 0) for v in rates]
        ax.bar(x, vals, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    for i, b in enumerate(bottom):
        ax.text(i, b + 0.5, f"{b:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("token hit rate (%)")
    ax.set_title(hit_title)
    ax.set_ylim(0, max(bottom + [1]) * 1.15)
    ax.legend(fontsize=7)
    ax = axes[1]
    if names and all(v is not None for v in ttft_p50 + ttft_p99):
        width = 0.4
        ax.bar([i - width / 2 for i in x], ttft_p50, width, label="p50")
        ax.bar([i + width / 2 for i in x], ttft_p99, width, label="p99")
        # p50 and p99 differ by orders of magnitude under load: log scale keeps both readable
        if min(v for v in ttft_p50 + ttft_p99 if v is not None) > 0:  # all set (checked above)
            ax.set_yscale("log")
        ax.set_ylabel("TTFT (ms, log scale)")
        ax.set_title("Time to first token")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "hit-rate-only run:\nno timing", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(x, names, rotation=30, ha="right")
    fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_with_footer(fig, report, path)


def plot_policy_comparison(report: dict, path: str | Path) -> Path:
    """Hit rate by tier (stacked) and TTFT p50/p99 per policy, config hash in a footnote."""
    rows = policy_rows(report)
    w = report.get("workload", {})
    segments = [(tier.upper(), [r[f"{tier}_hit_rate"] for r in rows], color)
                for tier, color in (("hbm", "#1f77b4"), ("dram", "#ff7f0e"), ("ssd", "#2ca02c"))]
    return comparison_plot(
        report, [r["policy"] for r in rows], segments,
        [r["ttft_p50_ms"] for r in rows], [r["ttft_p99_ms"] for r in rows],
        hit_title="Prefix hit rate by tier",
        suptitle=f"{report.get('mode')} mode, {w.get('name')} ({w.get('requests')} requests)",
        path=path,
    )


def plot_router_comparison(report: dict, path: str | Path) -> Path:
    """Hit rate by location (stacked) and TTFT p50/p99 per router."""
    rows = router_rows(report)
    w = report.get("workload", {})
    topo = report.get("topology", {})
    return comparison_plot(
        report, [r["router"] for r in rows],
        [(loc, [r[f"{loc}_hit_rate"] for r in rows], None) for loc in LOC_NAMES],
        [r["ttft_p50_ms"] for r in rows], [r["ttft_p99_ms"] for r in rows],
        hit_title="Prefix hit rate by location",
        suptitle=f"cluster mode ({topo.get('gpus')} GPUs, {topo.get('racks')} racks), "
                 f"{w.get('name')} ({w.get('requests')} requests)",
        path=path,
    )
