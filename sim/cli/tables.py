"""The rich tables the commands print, and their cell formatters ("-" for a missing value).

Each main table has a headline set of columns that fits a 100-column terminal; the others are shown
with ``--wide``. A column marked ``*`` below is wide-only. Cells fold instead of being cut with an
ellipsis (every column is ``overflow="fold"``; make_console folds any other table it prints).
"""
from __future__ import annotations

from collections.abc import Sequence


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], wide: bool, left: tuple[str, ...] = ()):
    """A rich Table of `columns` ("*name" = shown only with --wide; names in `left` are left-aligned)."""
    from rich.table import Table

    keep = [i for i, c in enumerate(columns) if wide or not c.startswith("*")]
    t = Table(title=title, pad_edge=False)
    for i in keep:
        name = columns[i].lstrip("*")
        t.add_column(name, justify="left" if name in left else "right", overflow="fold")
    for r in rows:
        t.add_row(*[r[i] for i in keep])
    return t


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def ms(v) -> str:
    return "-" if v is None else f"{v:,.1f}"


def gib(v) -> str:
    return "-" if v is None else f"{v / 1024**3:,.1f}"


def x(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def load_title(report: dict) -> str:
    """The table title's load part: "; load: overloaded, offered 2.44 (13 workers for 0.8)" (or "")."""
    load = report.get("load") or {}
    rho = load.get("offered_load_share")
    if rho is None:
        return ""
    cls = load.get("load_class")
    need = load.get("workers_for_0_8_load")
    return (f"; load: {cls + ', ' if cls else ''}offered {rho:.2f}"
            + (f" ({need:,} workers for 0.8)" if need is not None else ""))


def policy_table(report: dict, wide: bool = False):
    """Single (and cluster with several policies): one row per eviction policy."""
    from sim.report.rows import policy_rows

    w = report["workload"]
    title = (f"{report['mode']} mode - {w['name']}: {w['requests']:,} requests, "
             f"{w['block_tokens']}-token blocks (config {report['config_hash']}){load_title(report)}")
    columns = ("policy", "hit rate", "HBM", "DRAM", "SSD", "TTFT p50 ms", "TTFT p99 ms", "TPOT ms", "SLO",
               "*load ms", "*evictions", "*moved GiB", "*req/s (wall)")
    rates = {p["name"]: p["metrics"].get("sim_speed_req_s") for p in report["policies"]}
    rows = []
    for r in policy_rows(report):
        rps = rates.get(r["policy"])
        rows.append((
            r["policy"], pct(r["hit_rate"]), pct(r["hbm_hit_rate"]), pct(r["dram_hit_rate"]),
            pct(r["ssd_hit_rate"]), ms(r["ttft_p50_ms"]), ms(r["ttft_p99_ms"]), ms(r["tpot_mean_ms"]),
            pct(r["slo_attainment"]), ms(r["load_mean_ms"]), f"{r['evictions']:,}", gib(r["transfer_bytes"]),
            "-" if rps is None else f"{rps:,.0f}",
        ))
    return _table(title, columns, rows, wide, left=("policy",))


def run_notes(report: dict) -> list[str]:
    """The lines under a run's main table: per headline run (each PD deployment) the iteration time, the
    recomputed prefixes and the TTFT split queue vs service; then the latency confidence."""
    lines = []
    runs = report.get("policies", [])
    if report.get("mode") != "pd":
        runs = runs[:1]
    for p in runs:
        m = p["metrics"]
        it = m.get("iteration_ms")
        if not it:
            continue
        pools = {k: v["iteration_ms"] for k, v in (m.get("pools") or {}).items() if v.get("iteration_ms")}
        if len(pools) > 1:
            its = ", ".join(f"{k} {ms(v['p50'])}" for k, v in pools.items())
            it_s = f"iteration p50 {its} ms"
        else:
            it_s = f"iteration p50 {ms(it['p50'])} ms (p99 {ms(it['p99'])})"
        rec = m.get("recomputed_prefixes")
        rec_s = f"; recomputed prefixes {rec:,} ({m.get('recomputed_tokens', 0):,} tokens)" if rec is not None else ""
        bd = m.get("ttft_breakdown_ms") or {}
        q = bd.get("queue_share")
        split = f"; TTFT {100 * q:.0f}% queue / {100 * bd['service_share']:.0f}% service" if q is not None else ""
        lines.append(f"{p['name']}: {it_s}{rec_s}{split}")
    conf = report.get("confidence")
    if conf:
        lines.append(f"Latency confidence: {conf['summary']}")
    return lines


def router_table(report: dict, wide: bool = False):
    """Cluster mode: one row per router (hit rate by location, TTFT, skew, speed)."""
    from sim.report.rows import router_rows

    w, topo = report["workload"], report.get("topology", {})
    title = (f"cluster mode - {w['name']}: {w['requests']:,} requests on {topo.get('gpus', 0):,} GPUs "
             f"({topo.get('racks')} racks), {w['block_tokens']}-token blocks (config {report['config_hash']})"
             f"{load_title(report)}")
    columns = ("router", "hit rate", "HBM", "peer HBM", "DRAM", "*EIC", "*remote EIC", "*SSD", "TTFT p50 ms",
               "TTFT p99 ms", "*net % TTFT", "GPU skew req/load", "*rack skew req/load", "*req/s (wall)")
    rows = [(
        r["router"], pct(r["hit_rate"]), pct(r["hbm_hit_rate"]), pct(r["peer_hbm_hit_rate"]),
        pct(r["dram_hit_rate"]), pct(r["local_eic_hit_rate"]), pct(r["remote_eic_hit_rate"]),
        pct(r["ssd_hit_rate"]), ms(r["ttft_p50_ms"]), ms(r["ttft_p99_ms"]), pct(r["ttft_network_share"]),
        f"{x(r['worker_req_skew'])} / {x(r['worker_load_skew'])}",
        f"{x(r['rack_req_skew'])} / {x(r['rack_load_skew'])}",
        "-" if r["sim_speed_req_s"] is None else f"{r['sim_speed_req_s']:,.0f}",
    ) for r in router_rows(report)]
    return _table(title, columns, rows, wide, left=("router",))


def pd_table(report: dict, wide: bool = False):
    """PD mode: one row per deployment (PD, colocated) on the same GPUs and trace."""
    w, lay = report["workload"], report["pd_layout"]
    title = (f"pd mode - {w['name']}: {w['requests']:,} requests; {lay['gpus']} x {lay['gpu']} "
             f"({lay['racks']} racks), {lay['model']} tp {lay['tp']}; SLO TTFT "
             f"{report['config']['slo']['ttft_ms']:g} ms, TPOT {report['config']['slo']['tpot_ms']:g} ms"
             f"{load_title(report)}")
    columns = ("deployment", "replicas", "*TTFT p50", "TTFT p99", "*TPOT p50", "TPOT p99", "*TTFT SLO",
               "*TPOT SLO", "both SLOs", "goodput req/s", "hit rate", "GPU busy", "*preempt", "*KV moved GiB",
               "*hidden")
    rows = []
    for p in report["policies"]:
        m = p["metrics"]
        kt = m.get("kv_transfer") or {}
        pools = m["pools"]
        reps = " + ".join(f"{v['replicas']}{k[0].upper()}" for k, v in pools.items()) if p["name"] == "pd" \
            else str(sum(v["replicas"] for v in pools.values()))
        busy = "/".join(pct(v) for v in m["gpu_utilization_share"].values())
        rows.append((p["name"], reps, ms(m["ttft_ms"]["p50"]), ms(m["ttft_ms"]["p99"]), ms(m["tpot_ms"]["p50"]),
                     ms(m["tpot_ms"]["p99"]), pct(m["slo"]["ttft_attainment"]), pct(m["slo"]["tpot_attainment"]),
                     pct(m["slo_attainment"]), f"{m['goodput_req_s']:.3f}", pct(m["hit_rate"]), busy,
                     f"{m['preemptions']['count']:,}", f"{(kt.get('bytes') or 0) / 1024**3:,.1f}",
                     pct(kt.get("hidden_share"))))
    return _table(title, columns, rows, wide, left=("deployment",))


def pd_ratio_table(res: dict, wide: bool = False):
    """`experiment pd-ratio`: one row per P:D ratio, the colocated baseline last, the best marked *."""
    w = res["workload"]
    title = (f"experiment pd-ratio - {w['name']}: {w['requests']:,} requests, {res['gpus']} GPUs; "
             f"SLO TTFT {res['slo']['ttft_ms']:g} ms, TPOT {res['slo']['tpot_ms']:g} ms")
    columns = ("P:D", "replicas", "goodput req/s", "both SLOs", "*TTFT SLO", "*TPOT SLO", "*TTFT p50", "TTFT p99",
               "*TPOT p50", "TPOT p99", "prefill busy", "decode busy", "preempt")
    rows = []
    for r in res["rows"] + ([res["colocated"]] if res.get("colocated") else []):
        reps = f"{r['prefill_replicas']}P+{r['decode_replicas']}D" if r["ratio"] != "colocated" \
            else f"{r['prefill_replicas']}"
        rows.append((r["ratio"] + (" *" if r["ratio"] == res.get("best_ratio") else ""), reps,
                     f"{r['goodput_req_s']:.3f}", pct(r["slo_attainment"]), pct(r["ttft_attainment"]),
                     pct(r["tpot_attainment"]), ms(r["ttft_p50_ms"]), ms(r["ttft_p99_ms"]), ms(r["tpot_p50_ms"]),
                     ms(r["tpot_p99_ms"]), pct(r["prefill_utilization_share"]), pct(r["decode_utilization_share"]),
                     f"{r['preemptions']:,}"))
    return _table(title, columns, rows, wide, left=("P:D",))


def oracle_table(report: dict, wide: bool = False):
    """`oracle`: the bounds per prompt-length bucket at the HBM capacity."""
    from sim.oracle.outputs import hit_rows

    w = report["workload"]
    title = (f"oracle - {w['name']}: {w['requests']:,} requests, {w['block_tokens']}-token blocks, "
             f"token-weighted hit rates at the HBM capacity")
    columns = ("bucket", "requests", "GiB", "*blocks", "content", "relaxed", "strict-prefix opt", "LRU",
               "bottleneck", "*proven")
    rows = []
    for r in hit_rows(report):
        if "capacity_blocks" not in r:
            rows.append((r["bucket"], "0", *["-"] * 8))
            continue
        rows.append((r["bucket"], f"{r['requests']:,}", f"{r['capacity_gib']:,.1f}", f"{r['capacity_blocks']:,}",
                     *[f"{100 * r[c]:.2f}%" for c in ("content_hit_rate", "relaxed_hit_rate",
                                                       "strict_prefix_opt_hit_rate", "lru_hit_rate")],
                     r["bottleneck"], "yes" if r["strict_prefix_proven_optimal"] else "no"))
    return _table(title, columns, rows, wide, left=("bucket", "bottleneck"))


def plan_table(title: str, rows: list[dict]):
    """`plan` and `estimate --target-tps`: cards and machines per bucket and bound."""
    from rich.table import Table

    t = Table(title=title)
    for col in ("bucket", "bound", "cards", "machines", "KV GiB", "hit rate", "per-card TPS", "total TPS",
                "cards w/o cache"):
        t.add_column(col, justify="left" if col in ("bucket", "bound") else "right")
    for r in rows:
        t.add_row(r["bucket"], r["bound"], f"{r['cards']:,}", f"{r['machines']:,}", f"{r['capacity_gib']:,.1f}",
                  f"{100 * r['hit_rate']:.2f}%", f"{r['effective_per_card_tps']:,.1f}", f"{r['total_tps']:,.0f}",
                  f"{r['cards_without_cache']:,}")
    return t


def estimate_table(tiers: list[dict]):
    """`estimate`: the estimated hit rate per memory tier."""
    from rich.table import Table

    t = Table(title="estimated token hit rate per tier")
    for col in ("tier", "capacity GiB", "capacity tokens", "optimum", "policy"):
        t.add_column(col, justify="left" if col == "tier" else "right")
    for r in tiers:
        t.add_row(r["tier"], f"{r['capacity_gib']:,.1f}", f"{r['capacity_tokens']:,}",
                  f"{100 * r['hit_rate_optimum']:.2f}%", f"{100 * r['hit_rate_policy']:.2f}%")
    return t


def calibrate_table(rows: list[dict]):
    """`calibrate`: the fitted parameters and their residuals against the oracle, per bucket."""
    from rich.table import Table

    t = Table(title="calibration residuals (hit-rate points)")
    for col in ("bucket", "curve", "sessions", "efficiency", "opt RMSE", "opt max", "LRU RMSE", "LRU max"):
        t.add_column(col, justify="left" if col in ("bucket", "curve") else "right")
    for r in rows:
        t.add_row(r["bucket"], r["curve"], f"{r['concurrent_sessions']:,.0f}", f"{r['policy_efficiency']:.3f}",
                  *[f"{100 * r[k]:.2f}" for k in ("optimum_rmse", "optimum_max_abs", "lru_rmse", "lru_max_abs")])
    return t


def calibration_tables(res, show: int = 50) -> list:
    """`calibrate timing`: per-point residuals (the `show` worst after the fit when there are more), the
    fitted parameters, and the median/max |error| per point kind and TP degree."""
    import numpy as np
    from rich.table import Table

    from sim.timing.calibrate import PARAMS

    meas, eb, ea = res.measured_s, res.err_before_pct, res.err_after_pct
    idx = list(range(len(res.points)))
    title = f"timing residuals ({len(idx)} points)"
    if len(idx) > show:
        idx = sorted(np.argsort(-np.abs(ea), kind="stable")[:show].tolist())
        title = f"timing residuals: the {show} worst of {len(res.points)} points after the fit"
    t = Table(title=title)
    for col in ("point", "source", "measured ms", "before ms", "after ms", "err before", "err after"):
        t.add_column(col, justify="left" if col in ("point", "source") else "right")
    for i in idx:
        p = res.points[i]
        t.add_row(p.describe(), p.where, f"{1e3 * meas[i]:,.4g}", f"{1e3 * res.before_s[i]:,.4g}",
                  f"{1e3 * res.after_s[i]:,.4g}", f"{eb[i]:+.1f}%", f"{ea[i]:+.1f}%")
    pt = Table(title="step-cost parameters")
    for col in ("key", "before", "after", ""):
        pt.add_column(col, justify="left" if col in ("key", "") else "right")
    for n in PARAMS:
        pt.add_row(n, f"{getattr(res.before, n):.4g}", f"{getattr(res.after, n):.4g}",
                   "fitted" if n in res.fitted else "kept")
    gt = Table(title="|error| by point kind and TP")
    for col in ("kind", "tp", "points", "median before", "max before", "median after", "max after"):
        gt.add_column(col, justify="left" if col == "kind" else "right")
    groups: dict[tuple[str, int], list[int]] = {}
    for i, p in enumerate(res.points):
        groups.setdefault((p.kind, p.dep.tp), []).append(i)
    for (kind, tp), ii in sorted(groups.items()):
        b, a = np.abs(eb[ii]), np.abs(ea[ii])
        gt.add_row(kind, str(tp), str(len(ii)), f"{np.median(b):.1f}%", f"{b.max():.1f}%",
                   f"{np.median(a):.1f}%", f"{a.max():.1f}%")
    return [t, pt, gt]


def measured_table(report: dict, wide: bool = False):
    """`run --compare-measured`: per run and metric, simulated / measured percentiles and the error."""
    from sim.report.measured import measured_rows

    cols = ["run", "metric", "p50 sim / meas ms", "p90 sim / meas ms", "p99 sim / meas ms", "|err| p50",
            "*|err| p90", "bias"]
    return _table(f"simulated vs measured ({report['measured']['requests']:,} measured requests; "
                  "|err| = |sim - meas| / meas, bias = median (sim - meas) / meas)",
                  cols, measured_rows(report), wide, left=("run", "metric"))
