"""One look for every figure: palette, series styles, time and percent axes, SLO lines, titles, saving.

Every plot (run/cluster/PD reports, the P:D sweep, `calc hit-rate --plot`,
sweep plots) draws through these helpers so that a policy has the same colour
in every figure, legends never cover data, long times read in seconds and a
figure names the model, GPU, deployment and trace it shows.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every
# common colour-vision deficiency. Ordered so that neighbours differ most
# (orange and vermillion, blue and sky blue are never adjacent).
OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "bluish_green": "#009E73", "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9", "vermillion": "#D55E00", "yellow": "#F0E442", "black": "#000000",
}
PALETTE: tuple[str, ...] = tuple(OKABE_ITO.values())
# past the palette: the colours repeat with another line style, marker and bar hatch
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
HATCHES = (None, "//", "..", "xx")
REF_COLOR = "#555555"  # reference lines (SLO, mean, thresholds): grey, dashed, never a series colour

# Built-in names keep one slot (hence one colour) in every figure, whichever subset a run shows.
# Families never share a figure's series, so their slots may overlap.
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("lru", "lfu", "fifo", "arc", "s3fifo", "selective_write", "session_prefetch", "learned", "belady"),
    ("prefix_aware", "session_affinity", "round_robin", "least_loaded", "random", "cache_load_balanced"),
    ("hbm", "peer_hbm", "dram", "local_eic", "remote_eic", "ssd", "eic"),
    ("p50", "p90", "p99", "mean"),
)
_SLOT = {name: i for fam in FAMILIES for i, name in enumerate(fam)}

TIME_S_FROM_MS = 1e4  # at or above 10^4 ms an axis reads in seconds


@dataclass(frozen=True)
class SeriesStyle:
    color: str
    linestyle: str
    marker: str
    hatch: str | None

    def line_kw(self) -> dict[str, Any]:
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker}

    def bar_kw(self) -> dict[str, Any]:
        return {"color": self.color, "hatch": self.hatch, "edgecolor": "white" if self.hatch else None}


def slot_style(i: int) -> SeriesStyle:
    """Style of slot i: a palette colour; each pass past the palette changes line style and hatch."""
    n = len(PALETTE)
    return SeriesStyle(PALETTE[i % n], LINESTYLES[(i // n) % len(LINESTYLES)], MARKERS[i % len(MARKERS)],
                       HATCHES[(i // n) % len(HATCHES)])


def series_styles(names: Iterable[Any]) -> dict[str, SeriesStyle]:
    """name -> style: built-in names keep their fixed slot, others take the first free slots in order."""
    keys = list(dict.fromkeys(str(n) for n in names))
    slots: dict[str, int] = {}
    for k in keys:
        s = _SLOT.get(k.lower())
        if s is not None and s not in slots.values():
            slots[k] = s
    free = (i for i in range(10**6) if i not in slots.values())
    for k in keys:
        if k not in slots:
            slots[k] = next(free)
    return {k: slot_style(slots[k]) for k in keys}


@dataclass(frozen=True)
class TimeUnit:
    name: str  # "ms" or "s"
    scale: float  # plotted value = value in ms x scale

    def label(self, what: str) -> str:
        return f"{what} ({self.name})"


def time_unit(values_ms: Iterable[float | None]) -> TimeUnit:
    """Milliseconds, or seconds once the largest value reaches 10^4 ms (30000 ms reads as 30 s)."""
    finite = [abs(v) for v in values_ms if v is not None and v == v]
    return TimeUnit("s", 1e-3) if finite and max(finite) >= TIME_S_FROM_MS else TimeUnit("ms", 1.0)


def percent_axis(ax, label: str, axis: str = "y") -> None:
    """An axis of values already scaled to 0-100: ticks read "40%", the label carries no "(%)".

    A range of 0-1 then reads 0.0%-1.0%, never a bare 0-1 under a "(%)" label."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(100, decimals=None))
    (ax.set_ylabel if axis == "y" else ax.set_xlabel)(label)


def share_label(label: str, percent: bool) -> str:
    """Axis label of a fraction: "(%)" only when the values were multiplied by 100, "(0-1)" otherwise."""
    return f"{label} ({'%' if percent else '0-1'})"


def slo_line(ax, value_ms: float, unit: TimeUnit, what: str = "SLO", annotate: bool = False) -> None:
    """A dashed reference line at the SLO, in the axis' time unit, labelled for the legend
    (annotate: also written on the line, for figures without a legend)."""
    v = value_ms * unit.scale
    text = f"{what} {v:g} {unit.name}"
    ax.axhline(v, color=REF_COLOR, ls="--", lw=1.2, label=text, zorder=3)
    if annotate:
        ax.annotate(text, (1.0, v), xycoords=("axes fraction", "data"), xytext=(-3, 2), textcoords="offset points",
                    ha="right", va="bottom", fontsize=7, color=REF_COLOR)


def legend_outside(ax, **kw: Any):
    """The legend right of the axes (never over the data); figures are saved with a tight bbox to keep it."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False,
                     fontsize=kw.pop("fontsize", 8), **kw)


def all_zero(values: Iterable[float | None]) -> bool:
    """True when there is nothing to draw: every value is 0 or missing."""
    return all(v is None or v == 0 for v in values)


def trace_text(cfg: dict, workload: dict | None = None) -> str:
    """The trace file name, or the synthetic workload kind; with the request count when known."""
    path = (cfg.get("trace") or {}).get("path")
    text = Path(path).name if path else f"synthetic {(cfg.get('synthetic') or {}).get('kind', '?')}"
    n = (workload or {}).get("requests")
    return f"{text}, {n:,} requests" if isinstance(n, int) else text


def _parallel(tp: Any, pp: Any) -> str:
    return f"TP{tp}" + (f" PP{pp}" if pp not in (None, 1) else "")


def deployment_text(report: dict) -> str:
    """GPUs, parallelism and workers / replicas (P:D for disaggregated runs) of a run report."""
    cfg = report.get("config") or {}
    m, hw = cfg.get("model") or {}, cfg.get("hardware") or {}
    par = _parallel(m.get("tp"), m.get("pp"))
    if report.get("mode") == "pd":
        lay = report.get("pd_layout") or {}
        return (f"{lay.get('gpus')} GPUs, {par}, P:D {lay.get('actual_ratio')} "
                f"({lay.get('prefill_replicas')} prefill + {lay.get('decode_replicas')} decode replicas)")
    first = ((report.get("policies") or [{}])[0].get("metrics") or {})
    if report.get("mode") == "cluster":
        topo = report.get("topology") or {}
        workers = ((first.get("skew") or {}).get("worker") or {}).get("count")
        return f"{topo.get('gpus')} GPUs in {topo.get('racks')} racks, {par}, {workers} workers"
    n, w = hw.get("gpus_per_node"), first.get("workers")
    return f"{n} GPU{'' if n == 1 else 's'}, {par}, {w} worker{'' if w == 1 else 's'}"


def run_title(report: dict) -> str:
    """'<model> on <GPU> · <deployment> · <trace>' for a run report (single, cluster, pd)."""
    cfg = report.get("config") or {}
    model = (cfg.get("model") or {}).get("name")
    gpu = (cfg.get("hardware") or {}).get("gpu")
    return f"{model} on {gpu} · {deployment_text(report)} · {trace_text(cfg, report.get('workload'))}"


def save_figure(fig, path: str | Path, fmt: str | None = None) -> Path:
    """Write the figure (tight bbox: outside legends and footnotes included) and free it."""
    out = Path(path)
    try:
        fig.savefig(out, dpi=110, bbox_inches="tight", format=fmt)
    finally:
        plt.close(fig)
    return out


def bar_labels(ax, xs: Sequence[float], ys: Sequence[float], texts: Sequence[str], fontsize: int = 7) -> None:
    for x, y, t in zip(xs, ys, texts, strict=True):
        ax.text(x, y, t, ha="center", va="bottom", fontsize=fontsize)
