"""PNG plots of PD runs: PD vs colocated, and the P:D ratio sweep (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.report.plots import save_with_footer  # noqa: E402


def plot_pd_comparison(report: dict, path: str | Path) -> Path:
    """TTFT and TPOT p50/p99 with the SLO lines, SLO attainment and goodput: PD vs colocated."""
    runs = [(p["name"], p["metrics"]) for p in report["policies"]]
    names = [n for n, _ in runs]
    x = list(range(len(runs)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    for ax, key, title in ((axes[0], "ttft_ms", "Time to first token"), (axes[1], "tpot_ms", "Time per output token")):
        w = 0.38
        p50 = [m[key]["p50"] or 0 for _, m in runs]
        p99 = [m[key]["p99"] or 0 for _, m in runs]
        ax.bar([i - w / 2 for i in x], p50, w, label="p50")
        ax.bar([i + w / 2 for i in x], p99, w, label="p99")
        slo = report["config"]["slo"][key]
        ax.axhline(slo, color="red", ls="--", lw=1, label=f"SLO {slo:g} ms")
        for i in x:
            ax.text(i - w / 2, p50[i], f"{p50[i]:,.0f}", ha="center", va="bottom", fontsize=7)
            ax.text(i + w / 2, p99[i], f"{p99[i]:,.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, names)
        ax.set_ylabel("ms")
        ax.set_title(title)
        ax.legend(fontsize=8)
    ax = axes[2]
    att = [100 * (m["slo_attainment"] or 0) for _, m in runs]
    ax.bar(x, att, 0.5, color="#2ca02c")
    for i, (a, (_, m)) in enumerate(zip(att, runs, strict=True)):
        ax.text(i, a + 1, f"{a:.1f}%\n{m['goodput_req_s']:.2f} req/s", ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 119)
    ax.set_xticks(x, names)
    ax.set_ylabel("requests meeting both SLOs (%)")
    ax.set_title("SLO attainment (label: goodput)")
    lay, w = report.get("pd_layout", {}), report.get("workload", {})
    fig.suptitle(f"PD {lay.get('actual_ratio')} per rack ({lay.get('prefill_replicas')} prefill + "
                 f"{lay.get('decode_replicas')} decode replicas, {lay.get('gpus')} GPUs) vs colocated - "
                 f"{w.get('name')}, {w.get('requests')} requests")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_with_footer(fig, report, path)


def plot_pd_ratio(result: dict, path: str | Path) -> Path:
    """Goodput and SLO attainment per P:D ratio; colocated on the same GPUs as a dashed line."""
    rows = result["rows"]
    labels = [r["ratio"] + (f"\n({r['prefill_replicas']}P+{r['decode_replicas']}D)") for r in rows]
    x = list(range(len(rows)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    col = result.get("colocated")
    ax = axes[0]
    ax.plot(x, [r["goodput_req_s"] for r in rows], "o-", label="PD")
    if col:
        ax.axhline(col["goodput_req_s"], color="gray", ls="--", label="colocated")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("goodput (requests/s meeting both SLOs)")
    ax.set_title("Goodput per P:D ratio")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, lab in (("slo_attainment", "both SLOs"), ("ttft_attainment", "TTFT SLO"), ("tpot_attainment", "TPOT SLO")):
        ax.plot(x, [100 * (r[key] or 0) for r in rows], "o-", label=lab)
    if col:
        ax.axhline(100 * col["slo_attainment"], color="gray", ls="--", label="colocated (both)")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("requests meeting the SLO (%)")
    ax.set_ylim(0, 105)
    ax.set_title("SLO attainment per P:D ratio")
    ax.legend(fontsize=8)
    w = result.get("workload", {})
    fig.suptitle(f"P:D ratio sweep - {w.get('name')}, {w.get('requests')} requests, {result.get('gpus')} GPUs")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save_with_footer(fig, result, path)
