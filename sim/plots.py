"""PNG plots of reports (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.report import policy_rows  # noqa: E402


def plot_policy_comparison(report: dict, path: str | Path) -> Path:
    """Hit rate by tier (stacked) and TTFT p50/p99 per policy, config hash in a footnote."""
    rows = policy_rows(report)
    names = [r["policy"] for r in rows]
    x = range(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(rows) + 4), 4.5))
    ax = axes[0]
    bottom = [0.0] * len(rows)
    for tier, color in (("hbm", "#1f77b4"), ("dram", "#ff7f0e"), ("ssd", "#2ca02c")):
        vals = [100 * (r[f"{tier}_hit_rate"] or 0) for r in rows]
        ax.bar(x, vals, bottom=bottom, label=tier.upper(), color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, b in enumerate(bottom):
        ax.text(i, b + 0.5, f"{b:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("token hit rate (%)")
    ax.set_title("Prefix hit rate by tier")
    ax.set_ylim(0, max(bottom + [1]) * 1.15)
    ax.legend(fontsize=8)
    ax = axes[1]
    p50 = [r["ttft_p50_ms"] for r in rows]
    if all(v is not None for v in p50):
        p99 = [r["ttft_p99_ms"] for r in rows]
        width = 0.4
        ax.bar([i - width / 2 for i in x], p50, width, label="p50")
        ax.bar([i + width / 2 for i in x], p99, width, label="p99")
        # p50 and p99 differ by orders of magnitude under load: log scale keeps both readable
        if min(v for v in p50 + p99) > 0:
            ax.set_yscale("log")
        ax.set_ylabel("TTFT (ms, log scale)")
        ax.set_title("Time to first token")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "hit-rate-only run:\nno timing", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    w = report.get("workload", {})
    fig.suptitle(f"{report.get('mode')} mode, {w.get('name')} ({w.get('requests')} requests)")
    fig.text(0.01, 0.01, f"config {report.get('config_hash')}  seed {report.get('seed')}", fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
