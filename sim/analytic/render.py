"""Tables (rich) and the sensitivity PNG (matplotlib) of the analytic calculators."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def render_hit_rate(r: dict[str, Any]) -> list:
    """Rich tables: the estimate, the target suggestion and the sensitivity curve (those present)."""
    from rich.table import Table

    inp = r["inputs"]
    t = Table(title=f"Analytic hit rate: {r['model']} on {r['gpus']} x {r['gpu']} "
                    f"(tp {r['tp']}{' auto' if r['tp_auto'] else ''} x pp {r['pp']}, {r['replicas']} replicas, "
                    f"KV {r['kv_dtype']})")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("how", style="dim")
    rows = [
        ("conversations / s", f"{inp['arrival_rate']:g}", "input"),
        ("turns x interval", f"{inp['turns']:g} x {inp['interval_s']:g} s", "input"),
        ("tokens / turn (new, response, system)",
         f"{inp['prompt_tokens']:,}, {inp['response_tokens']:,}, {inp['system_prompt_tokens']:,}", "input"),
        ("KV bytes / token (model, per GPU)",
         f"{r['kv_bytes_per_token']:,.0f}, {r['kv_bytes_per_token_per_gpu']:,.0f}", "layers x KV heads x dim x dtype"),
        ("weights / GPU", f"{r['weights_gib_per_gpu']:,.2f} GiB",
         f"x overhead {inp['weight_overhead']:g}, + reserve {inp['reserve_gb']:g} GiB"),
        ("KV memory / GPU (total)", f"{r['kv_budget_gib_per_gpu']:,.2f} GiB ({r['kv_budget_gib_total']:,.1f} GiB)",
         "given" if inp["kv_budget_gb"] is not None else f"{r['gpu_memory_gib']:g} GiB - weights x overhead - reserve"),
        ("cacheable tokens", f"{r['cacheable_tokens']:,}", "replicas x KV memory / bytes per token"),
        ("max concurrency", f"{r['max_concurrency']:,}", f"requests of {r['mean_request_tokens']:,.0f} tokens"),
        ("active conversations", f"{r['active_conversations']:,.1f}", "rate x turns x interval (Little)"),
        ("tokens / active conversation", f"{r['tokens_per_conversation']:,.0f}", "mean cached context"),
        ("tokens needed", f"{r['tokens_needed']:,.0f}", "active x tokens each"),
        ("coverage", _pct(r["coverage"]), "min(1, cacheable / needed)"),
        ("reusable share (tokens; turns)", f"{_pct(r['reuse_share'])}; {_pct(r['turn_reuse_share'])}",
         "prompt tokens in an earlier turn; 1 - 1/turns"),
        ("system-prompt share", _pct(r["system_share"]), ""),
        ("hit rate", f"[bold]{_pct(r['hit_rate'])}[/]", "system + reusable x coverage"),
        ("hit rate under LRU", _pct(r["lru_hit_rate"]), "exponential think times (Che's approximation)"),
        ("hit rate, unlimited memory", _pct(r["max_hit_rate"]), ""),
    ]
    for row in rows:
        t.add_row(*row)
    out: list[Table | str] = [t]
    for w in r.get("warnings", []):
        out.append(f"[yellow]warning: {w}[/]")
    tg = r.get("target")
    if tg:
        mem = tg["memory"]
        tt = Table(title=f"Target hit rate {_pct(tg['target_hit_rate'])}: {tg['message']}")
        tt.add_column("lever")
        tt.add_column("change")
        tt.add_column("reaches", justify="center")
        tt.add_column("hit rate", justify="right")
        if mem.get("reachable"):
            tt.add_row("KV memory needed", f"{mem['kv_gib_per_gpu']:,.2f} GiB/GPU ({mem['kv_gib_total']:,.1f} GiB)",
                       "", "")
            lru = mem.get("kv_gib_per_gpu_lru")
            tt.add_row("  under LRU", "not reachable" if lru is None else f"{lru:,.2f} GiB/GPU", "", "")
        for o in tg["options"]:
            hr = o.get("hit_rate")
            change = o["change"]
            if o["lever"] == "memory" and o.get("gpu_presets"):
                change += " (" + ", ".join(p["gpu"] for p in o["gpu_presets"]) + ")"
            tt.add_row(o["lever"], change, "yes" if o["reaches"] else "no", "" if hr is None else _pct(hr))
        out.append(tt)
    sens = r.get("sensitivity")
    if sens:
        st = Table(title=f"Sensitivity to {sens['param']} (current {sens['current']:g})")
        st.add_column(sens["param"], justify="right")
        st.add_column("hit rate", justify="right")
        st.add_column("coverage", justify="right")
        st.add_column("hit rate (LRU)", justify="right")
        for row in sens["rows"]:
            st.add_row(f"{row[sens['param']]:,.4g}", _pct(row["hit_rate"]), _pct(row["coverage"]),
                       _pct(row["lru_hit_rate"]))
        out.append(st)
    return out


def sensitivity_figure(r: dict[str, Any]):
    """Hit rate vs the varied input, the current point marked; the title names model, GPU, deployment, workload."""
    import matplotlib

    matplotlib.use("Agg")  # headless, before pyplot
    import matplotlib.pyplot as plt

    from sim.report import style

    sens = r["sensitivity"]
    p = sens["param"]
    xs = [row[p] for row in sens["rows"]]
    st = style.series_styles(["hit rate (Little's law)", "under LRU", "current"])
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(xs, [100 * row["hit_rate"] for row in sens["rows"]], ms=3, label="hit rate (Little's law)",
            **st["hit rate (Little's law)"].line_kw())
    ax.plot(xs, [100 * row["lru_hit_rate"] for row in sens["rows"]], ms=3, label="under LRU",
            **st["under LRU"].line_kw())
    ax.axvline(sens["current"], color=style.REF_COLOR, ls="--", lw=1)
    ax.plot([sens["current"]], [100 * sens["current_hit_rate"]], "o", color=st["current"].color, label="current")
    if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(p)
    style.percent_axis(ax, "analytic hit rate")
    ax.set_ylim(0, 100)
    ax.set_title(f"{sensitivity_title(r)}\nhit rate vs {p}", fontsize=10)
    style.legend_outside(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def sensitivity_title(r: dict[str, Any]) -> str:
    """Model on GPU, the deployment (GPUs, TP/PP, replicas) and the analytic workload."""
    inp = r.get("inputs") or {}
    par = f"TP{r.get('tp')}" + (f" PP{r.get('pp')}" if r.get("pp") not in (None, 1) else "")
    work = ", ".join(f"{k.replace('_', ' ')} {inp[k]:g}" for k in ("arrival_rate", "turns", "interval_s")
                     if isinstance(inp.get(k), (int, float)))
    return (f"{r['model']} on {r['gpu']} · {r['gpus']} GPUs, {par}, {r.get('replicas')} replicas · "
            f"analytic multi-turn workload ({work or 'inputs as given'})")


def plot_sensitivity(r: dict[str, Any], path: str | Path) -> Path:
    """PNG (or the suffix's type) of the sensitivity curve, written atomically."""
    import matplotlib.pyplot as plt

    from sim.io_safe import atomic_write
    from sim.report import style

    fig = sensitivity_figure(r)
    out = Path(path)
    try:  # format given: the temporary name has no .png suffix to infer it from
        atomic_write(out, lambda tmp: style.save_figure(fig, tmp, fmt=out.suffix.lstrip(".") or "png"))
    finally:
        plt.close(fig)
    return out


def render_reuse(r: dict[str, Any]):
    from rich.table import Table

    t = Table(title=f"Reuse vs recompute: {r['model']} on {r['gpus']} x {r['gpu']} (tp {r['tp']}, "
                    f"GEMM efficiency {r['gemm_efficiency']:g}, KV {r['kv_dtype']})")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    rows = [
        ("prefix", f"{r['prefix_tokens']:,} tokens"),
        ("prefix KV (replica)", f"{r['kv_gib_replica']:,.3f} GiB"),
        ("recompute (prefill) time", f"{r['recompute_ms']:,.1f} ms"),
        ("break-even load bandwidth / GPU", f"[bold]{r['breakeven_gb_s']:,.2f} GB/s[/]"),
        ("break-even load bandwidth / replica", f"{r['breakeven_gb_s_replica']:,.2f} GB/s"),
    ]
    if "link_gb_s" in r:
        rows += [
            (f"load time at {r['link_gb_s']:g} GB/s / GPU", f"{r['load_ms']:,.1f} ms"),
            ("loading pays", f"{'yes' if r['loading_pays'] else 'no'} ({r['speedup']:.2f}x vs recompute)"),
        ]
    for row in rows:
        t.add_row(*row)
    return t


__all__ = ["plot_sensitivity", "render_hit_rate", "render_reuse"]


def render_latency(r: dict[str, Any]) -> list:
    """The `calc latency` tables: times by term, then the step-cost figures used."""
    from rich.table import Table

    b = r["batch"]
    t = Table(title=f"Step latency: {r['model']} on {r['gpu']} (tp {r['tp']}, pp {r['pp']}, {r['dtype']} weights, "
                    f"KV {r['kv_dtype']})")
    t.add_column("ms")
    cols = [(f"prefill {r['prompt_tokens']:,} tokens" + (f" after {r['cached_tokens']:,} cached" if r["cached_tokens"]
                                                         else ""), r["prefill"])]
    if "prefill_batch" in r:
        cols.append((f"prefill {b} such prompts, one iteration", r["prefill_batch"]))
    cols.append((f"decode step, batch {b} x context {r['context']:,}", r["decode"]))
    for name, _ in cols:
        t.add_column(name, justify="right")
    for key in ("linear_ms", "attention_ms", "communication_ms", "overhead_ms", "total_ms"):
        label = key.removesuffix("_ms")
        cells = [f"{c[key]:,.3f}" for _, c in cols]
        t.add_row(f"[bold]{label}[/]" if key == "total_ms" else label,
                  *([f"[bold]{c}[/]" for c in cells] if key == "total_ms" else cells))
    p = Table(title="step-cost figures (config compute:)" + (f", calibration {r['calibration']!r}"
                                                              if r["calibration"] else ", shipped defaults"))
    p.add_column("key")
    p.add_column("value", justify="right")
    for k, v in r["params"].items():
        p.add_row(k, f"{v:g}")
    p.add_row("decode tokens/s (batch)", f"{r['decode']['tokens_per_s']:,.1f}")
    return [t, p]
