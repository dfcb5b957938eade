"""PNGs of a finished (or partial) sweep: `python main.py plot results/<sweep>`.

One PNG per entry of the spec's ``plots`` (default: one per selected metric):

* a numeric x axis -> lines (log x when the axis is log-spaced), one colour
  per value of the series axis, one line style per metric;
* no numeric axis -> grouped bars: groups along the first categorical axis,
  one bar colour per series value;
* every other axis with several values -> one panel per value combination
  (nothing is averaged away silently); repeats (seeds) are averaged, with
  min-max error bars.

Axis labels carry units (metric registry, config key suffixes); a footnote
names the sweep, the spec, the base config hash and how many points failed.
"""
from __future__ import annotations

import json
import math
import textwrap
from itertools import product
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from experiments import results as R  # noqa: E402
from experiments.metrics import METRICS, Metric  # noqa: E402
from experiments.spec import SAFE_NAME  # noqa: E402
from sim.errors import InputError  # noqa: E402
from sim.io_safe import atomic_path  # noqa: E402
from sim.report import style  # noqa: E402

PANEL_W, PANEL_H = 6.0, 4.2


def _human(v: float, binary: bool = False) -> str:
    """10000 -> 10k, 3162277.7 -> 3.16M, 0.25 -> 0.25 (tick labels of large token counts);
    binary: 4096 -> 4K, 131072 -> 128K (context lengths are powers of two)."""
    a = abs(v)
    if binary and a >= 1024:
        for div, suf in ((1024**3, "G"), (1024**2, "M"), (1024, "K")):
            if a >= div:
                return f"{v / div:.4g}{suf}"
    for scale, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{v / scale:.3g}{suf}"
    return f"{v:.3g}"


def _metric(name: str) -> Metric:
    if name in METRICS:
        return METRICS[name]
    return Metric(name, "as reported")


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def load_sweep(sweep_dir: str | Path) -> tuple[dict, list[dict]]:
    d = Path(sweep_dir)
    meta_p, csv_p = d / R.SWEEP_JSON, d / R.POINTS_CSV
    if not meta_p.exists() or not csv_p.exists():
        raise InputError(f"not a sweep directory (needs {R.SWEEP_JSON} and {R.POINTS_CSV}; "
                         f"run `python main.py sweep SPEC.yaml` first)", where=str(d))
    try:
        meta = json.loads(R.read_text_file(meta_p, R.SWEEP_JSON))
    except ValueError as e:
        raise InputError(f"{R.SWEEP_JSON} is not valid JSON ({e})", where=str(meta_p)) from None
    _check_meta(meta, str(meta_p))
    rows = [{k: R.typed(v) for k, v in r.items()} for r in R.read_points_csv(csv_p)]
    for i, r in enumerate(rows, start=2):
        for m in meta["metrics"]:
            v = r.get(m)
            if v is not None and (isinstance(v, (str, bool)) or not math.isfinite(v)) and r.get("status") == "ok":
                raise InputError(f"points.csv line {i}: {m} is {str(v)[:40]!r}, not a finite number", where=str(csv_p))
    # axis columns keep their spec types (e.g. a policy named "1" stays a string)
    for a in meta["axes"]:
        by_text = {str(R.cell(v)): v for v in a["values"]}
        for r in rows:
            raw = r.get(a["name"])
            r[a["name"]] = by_text.get(str(R.cell(raw)) if raw is not None else "", raw)
    return meta, rows


def _check_meta(meta: Any, where: str) -> None:
    """sweep.json has the keys plotting reads, with the right types (a hand-edited or foreign file is refused)."""
    if not isinstance(meta, dict):
        raise InputError(f"{R.SWEEP_JSON} is not a JSON object", where=where)
    for key, typ in (("name", str), ("axes", list), ("metrics", list)):
        if not isinstance(meta.get(key), typ):
            raise InputError(f"{R.SWEEP_JSON} lacks {key!r} (a {typ.__name__}): not a sweep's {R.SWEEP_JSON}",
                             where=where)
    for i, a in enumerate(meta["axes"]):
        if not (isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("values"), list)
                and isinstance(a.get("numeric"), bool)):
            raise InputError(f"{R.SWEEP_JSON}: axes[{i}] needs name, values and numeric", where=where)
    if not all(isinstance(m, str) for m in meta["metrics"]):
        raise InputError(f"{R.SWEEP_JSON}: metrics must be names", where=where)
    plots = meta.get("plots") or []
    if not isinstance(plots, list) or not all(isinstance(p, dict) and isinstance(p.get("y"), list) for p in plots):
        raise InputError(f"{R.SWEEP_JSON}: plots must be a list of {{y: [...], ...}}", where=where)
    axis_names = {a["name"] for a in meta["axes"]}
    for i, p in enumerate(plots):
        stem = p.get("name")
        if stem is not None and not (isinstance(stem, str) and SAFE_NAME.fullmatch(stem) and stem.strip(".")):
            raise InputError(f"{R.SWEEP_JSON}: plots[{i}].name {str(stem)[:40]!r} is not a plain file name",
                             where=where)
        for role in ("x", "series", "facet"):
            if p.get(role) is not None and p.get(role) not in axis_names:
                raise InputError(f"{R.SWEEP_JSON}: plots[{i}].{role} is not an axis", where=where)


def default_plots(meta: dict) -> list[dict]:
    varying = [a for a in meta["axes"] if len(a["values"]) > 1]
    numeric = [a["name"] for a in varying if a["numeric"]]
    cats = [a["name"] for a in varying if not a["numeric"]]
    x = numeric[0] if numeric else (cats[0] if cats else None)
    rest = [n for n in cats + numeric if n != x]
    series = rest[0] if rest else None
    return [{"name": m, "y": [m], "x": x, "series": series, "facet": None, "title": None, "logy": False}
            for m in meta["metrics"]]


def _agg(vals: list[float]) -> tuple[float, float, float]:
    return sum(vals) / len(vals), min(vals), max(vals)


def plot_one(meta: dict, rows: list[dict], spec: dict, path: Path) -> tuple[Path | None, str | None]:
    axes = {a["name"]: a for a in meta["axes"]}
    varying = [a["name"] for a in meta["axes"] if len(a["values"]) > 1]
    ys = spec["y"]
    x = spec.get("x")
    if x is None:
        nums = [n for n in varying if axes[n]["numeric"]]
        cats = [n for n in varying if not axes[n]["numeric"]]
        x = nums[0] if nums else (cats[0] if cats else None)
    series = spec.get("series")
    if series is None:
        series = next((n for n in varying if n != x), None)
    facet_axes = [spec["facet"]] if spec.get("facet") else []
    facet_axes += [n for n in varying if n not in (x, series) and n not in facet_axes]
    ok = [r for r in rows if r.get("status") == "ok"]
    if not any(r.get(y) is not None for r in ok for y in ys):
        return None, f"{', '.join(ys)}: no finished point reports it (modes: {', '.join(meta.get('modes', []))})"
    mets = _metrics_for(ys, ok)
    if style.all_zero(r.get(y) for r in ok for y in ys if _is_num(r.get(y))):
        return None, f"{', '.join(ys)}: 0 at every finished point, nothing to draw"

    def values(name):
        return axes[name]["values"] if name else [None]

    facets = list(product(*[values(n) for n in facet_axes])) if facet_axes else [()]
    facets = [f for f in facets if any(all(r.get(n) == v for n, v in zip(facet_axes, f, strict=True)) and
                                       any(r.get(y) is not None for y in ys) for r in ok)]
    ncols = min(len(facets), 3)
    nrows = math.ceil(len(facets) / ncols)
    line = x is not None and axes[x]["numeric"]
    fig, grid = plt.subplots(nrows, ncols, figsize=(PANEL_W * max(ncols, 1) + 0.4, PANEL_H * nrows + 0.9),
                             squeeze=False)
    m0 = mets[ys[0]]
    same_unit = all(mets[y].unit == m0.unit for y in ys)
    ylabel = _axis_label(m0) if len(ys) == 1 else (_axis_label(Metric("; ".join(mets[y].label for y in ys), m0.unit))
                                                   if same_unit else ", ".join(_axis_label(mets[y]) for y in ys))
    if len(ys) > 1 and same_unit:
        ylabel = _axis_label(Metric("hit rate" if m0.unit == "%" and all("hit_rate" in y for y in ys) else "value",
                                    m0.unit))
    all_y: list[float] = []
    handles: dict[str, Any] = {}
    svals = values(series)
    # one colour per legend entry (a second metric of a series, e.g. the content bound, gets its own),
    # built-in policy / router names keep their colour across figures
    st = style.series_styles(_line_label(sv if series else None, y, ys, mets[y], ok, series)
                             for sv in svals for y in ys)
    for fi, fv in enumerate(facets):
        ax = grid[fi // ncols][fi % ncols]
        frows = [r for r in ok if all(r.get(n) == v for n, v in zip(facet_axes, fv, strict=True))]
        xs_all = values(x) if x else [None]
        nser = sum(1 for sv in svals for y in ys
                   if any((series is None or r.get(series) == sv) and r.get(y) is not None for r in frows))
        bar_i = 0
        for si, sv in enumerate(svals):
            for yi, y in enumerate(ys):
                met = mets[y]
                pts = []
                for xv in xs_all:
                    vals = [float(r[y]) * met.scale for r in frows
                            if (series is None or r.get(series) == sv) and (x is None or r.get(x) == xv)
                            and isinstance(r.get(y), (int, float)) and not isinstance(r.get(y), bool)]
                    if vals:
                        pts.append((xv, *_agg(vals)))
                if not pts:
                    continue
                label = _line_label(sv if series else None, y, ys, met, ok, series)
                sty = st[label]
                color = sty.color
                all_y += [p[1] for p in pts]
                if line:
                    px = [p[0] for p in pts]
                    py = [p[1] for p in pts]
                    # later series slightly thinner: identical curves stay visible as a line on a line
                    ls = style.LINESTYLES[yi % len(style.LINESTYLES)] if yi else sty.linestyle
                    h = ax.plot(px, py, ls, marker=sty.marker, color=color,
                                label=label, linewidth=max(1.2, 2.6 - 0.45 * si),
                                markersize=max(4.0, 8.0 - 1.3 * si))[0]
                    if len(meta.get("seeds", [])) > 1:
                        ax.fill_between(px, [p[2] for p in pts], [p[3] for p in pts], color=color, alpha=0.15,
                                        linewidth=0)
                else:
                    width = 0.8 / max(1, nser)
                    idx = {_key(v): i for i, v in enumerate(xs_all)}
                    bx = [idx[_key(p[0])] - 0.4 + width * (bar_i + 0.5) for p in pts]
                    err = None
                    if len(meta.get("seeds", [])) > 1:
                        err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
                    h = ax.bar(bx, [p[1] for p in pts], width * 0.95, color=color, label=label, yerr=err,
                               capsize=2 if err else 0, hatch=sty.hatch or (None if yi == 0 else "//"),
                               edgecolor="white")
                    if len(pts) * max(1, nser) <= 24:
                        for bxi, p in zip(bx, pts, strict=True):
                            ax.text(bxi, p[3] if err else p[1], _fmt_val(p[1], met), ha="center", va="bottom",
                                    fontsize=7, rotation=90 if nser > 2 else 0)
                    bar_i += 1
                handles.setdefault(label, h)
        _style_axes(ax, axes, x, line, xs_all)
        if facet_axes:
            ax.set_title(", ".join(f"{_short(axes[n])} = {v}" for n, v in zip(facet_axes, fv, strict=True)),
                         fontsize=10)
        if fi % ncols == 0:
            ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_axisbelow(True)
    for fi in range(len(facets), nrows * ncols):
        grid[fi // ncols][fi % ncols].set_visible(False)
    logy = spec.get("logy") or (m0.unit in ("ms", "s") and all_y and min(all_y) > 0 and max(all_y) / min(all_y) >= 50)
    for axrow in grid:
        for ax in axrow:
            if logy and ax.get_visible():
                ax.set_yscale("log")
            elif ax.get_visible() and m0.unit == "%":
                ax.set_ylim(0, max(1.0, ax.dataLim.y1 * 1.08))
                style.percent_axis(ax, ax.get_ylabel())  # ticks read 0.5%: a 0-1 range is never a bare 0-1
            elif ax.get_visible() and all_y and min(all_y) >= 0 and max(all_y) - min(all_y) < 0.25 * max(all_y):
                # differences of a few percent: a zero-based axis keeps noise from looking like a trend
                ax.set_ylim(0, ax.dataLim.y1 * 1.08)
    if logy:
        for axrow in grid:
            axrow[0].set_ylabel(ylabel + ", log scale")
    _slo_lines(meta, ys, mets, grid, all_y)
    # footnote wrapped to the figure width (about 17 characters per inch at 7 pt)
    note = textwrap.fill(_footnote(meta, rows), width=max(60, int(fig.get_figwidth() * 17)))
    foot_h = 0.14 * (note.count("\n") + 1) + 0.08
    extra_h = foot_h
    leg_h = 0.0
    if handles and (series or len(ys) > 1):
        # below the panels: long series names never cover data
        ncol = max(1, min(len(handles), 4 if fig.get_figwidth() > 9 else 2))
        leg_h = 0.28 * math.ceil(len(handles) / ncol) + (0.3 if series else 0.05)
        extra_h += leg_h
    fig.set_figheight(fig.get_figheight() + extra_h)
    h = fig.get_figheight()
    if leg_h:
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=ncol, fontsize=9,
                   bbox_to_anchor=(0.5, foot_h / h), title=_short(axes[series]) if series else None,
                   title_fontsize=9, frameon=False)
    title = spec.get("title") or (f"{meta['name']}: {' / '.join(_metric(y).label for y in ys)}"
                                  + (f" vs {_short(axes[x])}" if x else ""))
    title = textwrap.fill(title, width=max(40, int(fig.get_figwidth() * 10)))
    title += "\n" + textwrap.fill(setup_text(meta), width=max(50, int(fig.get_figwidth() * 13)))
    fig.suptitle(title, fontsize=11, y=1 - 0.1 / h, va="top")
    fig.text(0.01, 0.04 / h, note, fontsize=7, color="gray", ha="left", va="bottom")
    fig.tight_layout(rect=(0, (foot_h + leg_h) / h, 1, 1))  # tight_layout leaves room for the suptitle
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path, None


def _slo_lines(meta: dict, ys: list[str], mets: dict[str, Metric], grid, all_y: list[float]) -> None:
    """The base config's TTFT or TPOT SLO on TTFT / TPOT plots, where it is within 3x of the data
    (further out it would flatten the curves; a note on the axis says where it is)."""
    kind = {y.split("_")[0] for y in ys}
    if len(kind) != 1 or not kind <= {"ttft", "tpot"} or not all_y:
        return
    slo_ms = (meta.get("setup") or {}).get(f"slo_{kind.pop()}_ms")
    if not slo_ms:
        return
    unit = style.TimeUnit(mets[ys[0]].unit, 1e-3 if mets[ys[0]].unit == "s" else 1.0)
    what = f"{ys[0].split('_')[0].upper()} SLO"
    for axrow in grid:
        for ax in axrow:
            if not ax.get_visible():
                continue
            if slo_ms * unit.scale <= 3 * max(all_y):
                style.slo_line(ax, slo_ms, unit, what, annotate=True)
            else:
                own = style.time_unit([slo_ms])
                ax.text(0.99, 0.98, f"{what} {slo_ms * own.scale:g} {own.name}: above the plotted range",
                        transform=ax.transAxes, ha="right", va="top", fontsize=7, color=style.REF_COLOR)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _metrics_for(ys: list[str], ok: list[dict]) -> dict[str, Metric]:
    """The plotted metrics; millisecond metrics read in seconds when their largest value reaches 10^4 ms."""
    mets = {y: _metric(y) for y in ys}
    ms = [y for y in ys if mets[y].unit == "ms"]
    if ms:
        tu = style.time_unit(float(r[y]) * mets[y].scale for r in ok for y in ms if _is_num(r.get(y)))
        for y in ms:
            mets[y] = Metric(mets[y].label, tu.name, mets[y].scale * tu.scale)
    return mets


def _axis_label(met: Metric) -> str:
    """Percent axes carry the % on their ticks, not in the label; other units in parentheses."""
    return met.label if met.unit == "%" else met.axis_label()


SETUP_KEYS = {"model": ("model.name", "profile"), "gpu": ("hardware.gpu", "profile"),
              "deployment": ("model.tp", "model.pp", "hardware.gpus_per_node", "cluster.racks",
                             "cluster.gpus_per_rack", "pd.prefill_ratio", "pd.decode_ratio", "pd.racks", "profile"),
              "trace": ()}  # every workload's trace is listed; the facet or series titles say which is which


def setup_text(meta: dict) -> str:
    """'<model> on <GPU> · <deployment> · <trace>' of the sweep's base config; a part an axis varies says so."""
    s = meta.get("setup") or {}
    varied: dict[str, str] = {}
    for a in meta.get("axes", []):
        if len(a.get("values") or []) > 1:
            for k in [a["name"], *(a.get("keys") or [])]:
                varied.setdefault(k, a.get("label") or a["name"])

    def part(what: str, text: str) -> str:
        hit = next((varied[k] for k in SETUP_KEYS[what] if k in varied), None)
        return f"{what} per {hit}" if hit else text

    mode = meta.get("mode")
    par = f"TP{s.get('tp')}" + (f" PP{s.get('pp')}" if s.get("pp") not in (None, 1) else "")
    if mode == "cluster":
        dep = f"{s.get('racks')} racks x {s.get('gpus_per_rack')} GPUs, {par}"
    elif mode == "pd":
        dep = f"PD {s.get('pd_ratio')}, {s.get('pd_racks')} racks, {par}"
    else:
        n = s.get("gpus_per_node")
        dep = f"{n} GPU{'' if n == 1 else 's'}, {par}"
    traces = []
    for w in (meta.get("workloads") or {}).values():
        syn = w.get("synthetic") or {}
        traces.append(Path(w["trace"]).name if w.get("trace")
                      else f"synthetic {syn['kind']}" if syn.get("kind") else "synthetic workload")
    trace = ", ".join(dict.fromkeys(traces)) or "workload of the base config"
    model = part("model", str(s.get("model", "?")))
    gpu = part("gpu", str(s.get("gpu", "?")))
    return f"{model} on {gpu} · {part('deployment', dep)} · {mode} mode · {part('trace', trace)}"


def _line_label(sv: Any, y: str, ys: list[str], met: Metric, ok: list[dict], series: str | None) -> str:
    """Legend text: the series value for the first metric; other metrics add their name
    (alone when a single series reports them, e.g. the oracle's content bound)."""
    if series is None:
        return met.label
    if y == ys[0]:
        return str(sv)
    owners = {_key(r.get(series)) for r in ok if r.get(y) is not None}
    return met.label if len(owners) == 1 else f"{sv}: {met.label}"


def _fmt_val(v: float, met: Metric) -> str:
    if met.unit == "%":
        return f"{v:.1f}"
    return _human(v)


def _short(axis: dict) -> str:
    return axis.get("label") or axis["name"]


def _style_axes(ax, axes: dict, x: str | None, line: bool, xs_all: list) -> None:
    if x is None:
        ax.set_xticks([])
        return
    a = axes[x]
    ax.set_xlabel(_short(a))
    if line:
        if a.get("log"):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if len(xs_all) <= 10:
            ax.set_xticks([float(v) for v in xs_all])
            ax.xaxis.set_minor_formatter(NullFormatter())
        binary = all(isinstance(v, int) and v >= 1024 and v & (v - 1) == 0 for v in xs_all)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _human(v, binary)))
    else:
        labels = [str(v) for v in xs_all]
        ax.set_xticks(range(len(xs_all)), labels, rotation=30 if max(len(s) for s in labels) > 6 else 0,
                      ha="right" if max(len(s) for s in labels) > 6 else "center")


def _footnote(meta: dict, rows: list[dict]) -> str:
    failed = sum(1 for r in rows if r.get("status") != "ok")
    hashes = {r.get("config_hash") for r in rows}
    parts = [f"sweep {meta['name']}" + (f" (preset {meta['preset']})" if meta.get("preset") else ""),
             f"spec {meta.get('spec')}", f"base config {meta.get('base_config_hash')}",
             f"{len(rows)} points, {len(hashes)} configs (hash per point in points.csv)"]
    if failed:
        parts.append(f"{failed} failed point(s) not shown")
    seeds = meta.get("seeds") or []
    if len(seeds) > 1:
        parts.append(f"mean of {len(seeds)} seeds, band/bars = min-max")
    else:
        parts.append(f"seed {seeds[0] if seeds else '-'}")
    return " · ".join(parts)


def plot_sweep(sweep_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Write the sweep's PNGs under <dir>/plots/; returns (paths, notes about skipped plots)."""
    meta, rows = load_sweep(sweep_dir)
    if not any(r.get("status") == "ok" for r in rows):
        raise InputError("no finished point to plot (every point failed or none ran yet)", where=str(sweep_dir))
    specs = meta.get("plots") or default_plots(meta)
    out = Path(sweep_dir) / "plots"
    paths: list[Path] = []
    notes: list[str] = []
    used: set[str] = set()
    for i, spec in enumerate(specs):
        stem = spec.get("name") or "_".join(str(y) for y in spec["y"])
        if not SAFE_NAME.fullmatch(stem):  # metric names from a hand-edited sweep.json: keep the file in plots/
            stem = f"plot_{i}"
        if stem in used:
            stem = f"{stem}_{i}"
        used.add(stem)
        p, note = plot_one(meta, rows, spec, out / f"{stem}.png")
        if p:
            paths.append(p)
        if note:
            notes.append(note)
    return paths, notes
