"""The files openanolis kvcache-calculator users look for, written beside kvsim's own.

Column names are openanolis's (these files are for its users; docs/REPORT_SCHEMA.md,
"openanolis-compatible files"). Values differ from openanolis in one way: hit
rates and gains are fractions 0-1 (openanolis prints "12.34%"), so they can be
compared with kvsim's own files digit for digit. "(GB)" columns are openanolis
GB (10^9 bytes); kvsim's own files keep GiB.

* ``summary.csv`` (oracle): hit_summary.csv's HBM hit rates, each extra tier's
  strict-prefix and LRU hit rates, and the strict-prefix / LRU planning columns
  (when the config gives baseline and target TPS), one row per pool.
* ``heuristic_summary.csv`` / ``heuristic_tier_summary.csv`` (estimate).
* ``heuristic_report.en.md`` / ``heuristic_report.zh.md``: assumptions,
  formulas, parameters and uncertainty bounds of the estimate.
* ``calibration_trials.csv`` (calibrate): every grid point searched.
"""
from __future__ import annotations

from typing import Any

from sim.oracle.anolis import GB, GIB, UNITS_NOTE
from sim.oracle.bounds import BOUND_LABELS
from sim.oracle.outputs import hit_rows, tier_rows

NECK = {"capacity": "Capacity", "policy": "Policy", "none": "None"}
EPS = 1e-9


def _flag(v: bool | None) -> str:
    return "" if v is None else ("Yes" if v else "No")


def _gb(gib: float) -> float:
    return round(gib * GIB / GB, 2)


def _plan_cols(prefix: str, plan: dict | None) -> dict[str, Any]:
    if not plan:
        return {}
    return {f"HBM {prefix} TPS Gain": round(plan["current_tps_gain"], 6),
            f"HBM {prefix} Current Cluster Capacity TPS": round(plan["current_cluster_tps"], 6),
            f"HBM {prefix} Min Cards for Target Total TPS": plan["cards"],
            f"HBM {prefix} Min Machines for Target Total TPS": plan["machines"]}


def summary_columns(tier_labels: list[str], actual: bool, planning: bool) -> list[str]:
    cols = ["Bucket", "Machines", "Cards", "Cards per Machine", "Spec", "HBM KVCache Total (GB)",
            "Content Upper Bound Hit Rate"]
    cols += ["Actual Hit Rate"] if actual else []
    cols += ["HBM Relaxed Upper Bound Hit Rate", "HBM LRU Hit Rate", "HBM Strict-Prefix Hit Rate",
             "HBM Strict-Prefix Proof Source", "HBM Strict-Prefix Reaches Content Upper Bound",
             "HBM LRU Reaches Strict-Prefix", "HBM Current Bottleneck"]
    for t in tier_labels:
        cols += [f"{t} Strict-Prefix Hit Rate", f"{t} LRU Hit Rate"]
    if planning:
        cols += ["Target Total TPS", "Baseline TPS per Card (No Hit)", "Prefill Savings Alpha"]
        for p in ("Strict-Prefix", "LRU"):
            cols += [f"HBM {p} TPS Gain", f"HBM {p} Current Cluster Capacity TPS",
                     f"HBM {p} Min Cards for Target Total TPS", f"HBM {p} Min Machines for Target Total TPS"]
    return cols + ["Request Count", "Input Lower Tokens", "Input Upper Tokens"]


def summary_rows(report: dict, pools_meta: dict[str, dict], plans: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """(rows, columns) of summary.csv. pools_meta[label]: machines/cards/spec/bounds/actual;
    plans[label]: {"target_tps", "baseline", "alpha", "strict_prefix": {...}, "lru": {...}}."""
    sp, lru = BOUND_LABELS["strict_prefix"], BOUND_LABELS["lru"]
    tiers: dict[str, dict[str, dict]] = {}
    labels: list[str] = []
    for r in tier_rows(report):
        if r["tier"] == "HBM":
            continue
        tiers.setdefault(r["bucket"], {})[r["tier"]] = r
        if r["tier"] not in labels:
            labels.append(r["tier"])
    actual = any(m.get("actual_hit_rate") is not None for m in pools_meta.values())
    rows = []
    for h in hit_rows(report):
        b = h["bucket"]
        m = pools_meta.get(b, {})
        row: dict[str, Any] = {"Bucket": b, "Machines": m.get("machines"), "Cards": m.get("cards"),
                               "Cards per Machine": m.get("cards_per_machine"), "Spec": m.get("spec"),
                               "Request Count": h["requests"], "Input Lower Tokens": m.get("lo"),
                               "Input Upper Tokens": m.get("hi")}
        if "capacity_blocks" in h:
            row.update({
                "HBM KVCache Total (GB)": _gb(h["capacity_gib"]),
                "Content Upper Bound Hit Rate": h["content_hit_rate"],
                "Actual Hit Rate": m.get("actual_hit_rate"),
                "HBM Relaxed Upper Bound Hit Rate": h["relaxed_hit_rate"],
                "HBM LRU Hit Rate": h[f"{lru}_hit_rate"],
                "HBM Strict-Prefix Hit Rate": h[f"{sp}_hit_rate"],
                "HBM Strict-Prefix Proof Source":
                    f"{h['method']} ({'proven optimal' if h['strict_prefix_proven_optimal'] else 'bound'})",
                "HBM Strict-Prefix Reaches Content Upper Bound":
                    _flag(h[f"{sp}_hit_rate"] >= h["content_hit_rate"] - EPS),
                "HBM LRU Reaches Strict-Prefix": _flag(h[f"{lru}_hit_rate"] >= h[f"{sp}_hit_rate"] - EPS),
                "HBM Current Bottleneck": NECK[h["bottleneck"]],
            })
            for t, tr in tiers.get(b, {}).items():
                row[f"{t} Strict-Prefix Hit Rate"] = tr[f"{sp}_hit_rate"]
                row[f"{t} LRU Hit Rate"] = tr[f"{lru}_hit_rate"]
        p = plans.get(b)
        if p:
            row.update({"Target Total TPS": p["target_tps"], "Baseline TPS per Card (No Hit)": p["baseline"],
                        "Prefill Savings Alpha": p["alpha"]})
            row.update(_plan_cols("Strict-Prefix", p.get("strict_prefix")))
            row.update(_plan_cols("LRU", p.get("lru")))
        rows.append(row)
    return rows, summary_columns(labels, actual, bool(plans))


def plan_extra(row: dict, cards_now: int, hit_rate_now: float, baseline: float, alpha: float) -> dict:
    """A kvsim PlanRow dict plus openanolis's current-deployment figures (TPS gain x, cluster TPS)."""
    gain = 1.0 / (1.0 - alpha * hit_rate_now)
    return {**row, "current_tps_gain": gain, "current_cluster_tps": cards_now * baseline * gain}


# ----------------------------------------------------------------- heuristic

H_COLUMNS = ["Scenario", "Machines", "Cards", "Cards per Machine", "Spec", "Target Total TPS",
             "Baseline TPS per Card (No Hit)", "HBM KVCache Total (GB)", "Curve Mode", "Zipf s", "Power-Law Beta",
             "LRU-like Efficiency", "Content Upper Bound Hit Rate", "HBM Strict-Prefix Hit Rate (Estimate)",
             "HBM LRU-like Hit Rate (Estimate)", "HBM Strict-Prefix Reaches Content Upper Bound",
             "HBM LRU-like Reaches Strict-Prefix", "HBM Current Bottleneck", "HBM Strict-Prefix TPS Gain",
             "HBM LRU-like TPS Gain", "HBM Strict-Prefix Min Cards for Target Total TPS",
             "HBM Strict-Prefix Min Machines for Target Total TPS", "HBM LRU-like Min Cards for Target Total TPS",
             "HBM LRU-like Min Machines for Target Total TPS"]
HT_COLUMNS = ["Scenario", "Capacity Tier", "Machines", "Cards", "Cards per Machine", "Spec", "KVCache Total (GB)",
              "Content Upper Bound Hit Rate", "Strict-Prefix Hit Rate (Estimate)", "LRU-like Hit Rate (Estimate)",
              "Strict-Prefix Reaches Content Upper Bound", "LRU-like Reaches Strict-Prefix", "Current Bottleneck",
              "Strict-Prefix Gain vs Previous Tier", "LRU-like Gain vs Previous Tier", "Strict-Prefix TPS Gain",
              "LRU-like TPS Gain"]


def _neck(content: float, opt: float, pol: float, tol: float = 0.005) -> str:
    cap, pg = content - opt, opt - pol
    if cap <= tol and pg <= tol:
        return "None"
    return "Capacity" if cap >= pg else "Policy"


def heuristic_rows(results: list[dict], alpha: float) -> tuple[list[dict], list[dict]]:
    """(heuristic_summary rows, heuristic_tier_summary rows) from estimate() results with "scenario" meta."""
    summ, tiers = [], []
    for res in results:
        m, p, content = res["scenario"], res["params"], res["derived"]["content_hit_rate"]
        head = {"Scenario": m["label"], "Machines": m["machines"], "Cards": m["cards"],
                "Cards per Machine": m["cards_per_machine"], "Spec": m["spec"]}
        prev = None
        for t in res["tiers"]:
            opt, pol = t["hit_rate_optimum"], t["hit_rate_policy"]
            tiers.append({**head, "Capacity Tier": t["tier"], "KVCache Total (GB)": _gb(t["capacity_gib"]),
                          "Content Upper Bound Hit Rate": content, "Strict-Prefix Hit Rate (Estimate)": opt,
                          "LRU-like Hit Rate (Estimate)": pol,
                          "Strict-Prefix Reaches Content Upper Bound": _flag(opt >= content - EPS),
                          "LRU-like Reaches Strict-Prefix": _flag(pol >= opt - EPS),
                          "Current Bottleneck": _neck(content, opt, pol),
                          "Strict-Prefix Gain vs Previous Tier": None if prev is None else opt - prev[0],
                          "LRU-like Gain vs Previous Tier": None if prev is None else pol - prev[1],
                          "Strict-Prefix TPS Gain": 1 / (1 - alpha * opt), "LRU-like TPS Gain": 1 / (1 - alpha * pol)})
            prev = (opt, pol)
        hbm = res["tiers"][0]
        opt, pol = hbm["hit_rate_optimum"], hbm["hit_rate_policy"]
        row = {**head, "HBM KVCache Total (GB)": _gb(hbm["capacity_gib"]), "Curve Mode": p["curve"],
               "Zipf s": p["zipf_s"], "Power-Law Beta": p["power_beta"], "LRU-like Efficiency": p["policy_efficiency"],
               "Content Upper Bound Hit Rate": content, "HBM Strict-Prefix Hit Rate (Estimate)": opt,
               "HBM LRU-like Hit Rate (Estimate)": pol,
               "HBM Strict-Prefix Reaches Content Upper Bound": _flag(opt >= content - EPS),
               "HBM LRU-like Reaches Strict-Prefix": _flag(pol >= opt - EPS),
               "HBM Current Bottleneck": _neck(content, opt, pol),
               "HBM Strict-Prefix TPS Gain": 1 / (1 - alpha * opt), "HBM LRU-like TPS Gain": 1 / (1 - alpha * pol)}
        for plan in res["planning"]:
            name = "Strict-Prefix" if plan["bound"] == BOUND_LABELS["strict_prefix"] else "LRU-like"
            row.update({"Target Total TPS": plan["target_tps"], "Baseline TPS per Card (No Hit)":
                        plan["baseline_per_card_tps"], f"HBM {name} Min Cards for Target Total TPS": plan["cards"],
                        f"HBM {name} Min Machines for Target Total TPS": plan["machines"]})
        summ.append(row)
    return summ, tiers


_REPORT = {
    "en": {
        "title": "Heuristic KV-cache hit-rate estimate", "assume": "Assumptions", "formulas": "Formulas",
        "params": "Parameters", "results": "Results (HBM and extra tiers)", "bounds": "Uncertainty bounds",
        "assumptions": [
            "Every request starts with the shared prefix P (system prompt, tools), then the session's private "
            "history, then n new tokens.",
            "The shared prefix is the hottest data and is kept first; the remaining capacity holds private "
            "contexts of (Hbar + n) tokens per session.",
            "A practical policy keeps a share `policy_efficiency` (lru_like) of the optimal private reuse.",
            "Prompt KV only (no output-token KV); capacity from the deployment, GB = 10^9 bytes, GiB = 2^30.",
        ],
        "bound_lines": [
            "Upper bound: the content hit rate (unlimited capacity) - no capacity or policy can exceed it.",
            "Lower bound: the shared-prefix share P x kept / input (all private reuse lost).",
            "The estimate is a model, not a measurement: calibrate it on a trace (`python main.py calibrate "
            "--trace T`) and read the residuals before relying on it; a large content gap means the workload "
            "description (P, n, turns, sessions) is off, not the curve.",
        ],
        "cols": ["scenario", "tier", "GB", "content", "strict-prefix (est.)", "LRU-like (est.)"],
    },
    "zh": {
        "title": "启发式 KV 缓存命中率估算", "assume": "假设", "formulas": "公式", "params": "参数",
        "results": "结果（HBM 及扩展层级）", "bounds": "不确定性边界",
        "assumptions": [
            "每个请求以共享前缀 P（系统提示词、工具描述）开头，随后是会话私有历史，再加 n 个新 token。",
            "共享前缀最热，优先保留；剩余容量存放每个会话 (Hbar + n) 个 token 的私有上下文。",
            "实际策略只能保留最优私有复用中 `policy_efficiency`（lru_like）的比例。",
            "只计输入 KV（不计输出 token 的 KV）；容量来自部署，GB = 10^9 字节，GiB = 2^30 字节。",
        ],
        "bound_lines": [
            "上界：内容上界（容量无限时的命中率），任何容量或策略都不能超过。",
            "下界：共享前缀部分 P x 保留比例 / 输入长度（私有复用全部丢失）。",
            "估算是模型而非测量：依赖前请用轨迹校准（`python main.py calibrate --trace T`）并查看残差；"
            "内容上界差距大说明工作负载描述（P、n、轮数、会话数）有误，而不是曲线参数。",
        ],
        "cols": ["场景", "层级", "GB", "内容上界", "严格前缀（估算）", "类 LRU（估算）"],
    },
}
FORMULAS = [
    "H_t = min((t - 1) x n, W)   (history at turn t; W = private window, 0 = none)",
    "input = P + Hbar + n;  content = (P + Hbar) / input",
    "kept_shared = min(1, K / P);  f = curve((K - P) / (Hbar + n))",
    "linear: f = min(1, (K - P) / (S x ctx));  power_law_fit: f = min(1, ((K - P) / (S x ctx))^beta);  "
    "zipf_harmonic: f = H(k, s) / H(population, s)",
    "optimum = (P x kept_shared + Hbar x f) / input;  policy = (P x kept_shared + eff x Hbar x f) / input",
    "TPS gain = 1 / (1 - alpha x hit rate)",
]


def heuristic_report(results: list[dict], lang: str, alpha: float, notes: list[str]) -> str:
    tx = _REPORT[lang]
    lines = [f"# {tx['title']}", "", f"## {tx['assume']}", ""] + [f"- {s}" for s in tx["assumptions"]]
    lines += ["", f"## {tx['formulas']}", "", "```text", *FORMULAS, "```", "", f"## {tx['params']}", ""]
    for res in results:
        p = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in res["params"].items())
        lines.append(f"- {res['scenario']['label']}: {p}; prefill_savings_alpha={alpha:g}")
    lines += ["", f"## {tx['results']}", "", "| " + " | ".join(tx["cols"]) + " |", "|" + "---|" * len(tx["cols"])]
    for res in results:
        c = res["derived"]["content_hit_rate"]
        for t in res["tiers"]:
            lines.append(f"| {res['scenario']['label']} | {t['tier']} | {_gb(t['capacity_gib']):,.2f} | "
                         f"{100 * c:.2f}% | {100 * t['hit_rate_optimum']:.2f}% | {100 * t['hit_rate_policy']:.2f}% |")
    lines += ["", f"## {tx['bounds']}", ""]
    for res in results:
        d, p = res["derived"], res["params"]
        hbm = res["tiers"][0]
        kept = 1.0 if p["shared_prefix_tokens"] <= 0 else min(1.0, hbm["capacity_tokens"] / p["shared_prefix_tokens"])
        low = p["shared_prefix_tokens"] * kept / d["input_tokens_mean"]
        lines.append(f"- {res['scenario']['label']} (HBM): [{100 * low:.2f}%, {100 * d['content_hit_rate']:.2f}%]")
    lines += [f"- {s}" for s in tx["bound_lines"]] + [f"- {UNITS_NOTE}"] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


TRIAL_COLUMNS = ["bucket", "stage", "shared_prefix_share", "curve", "concurrent_sessions", "power_beta", "zipf_s",
                 "population", "policy_efficiency", "rmse_strict", "rmse_lru_like", "best"]
