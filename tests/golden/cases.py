"""Golden cases: CLI runs whose reports are pinned field by field.

Each case is argv for `python main.py` with two placeholders: ``{out}`` (a
scratch directory) and ``{mooncake}`` (the real trace in ../shared). A case
names the files under ``{out}`` it compares, or ``stdout`` for a command that
prints JSON. Regenerate with ``python tests/golden/regen.py`` only when a
change is meant to alter results, and say so in the commit.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MOONCAKE = ROOT.parent / "shared" / "traces" / "mooncake_conversation.jsonl"
SMALL = "tests/data/mooncake_small.jsonl"
POLICIES = "lru,fifo,lfu,arc,s3fifo,selective_write,session_prefetch,belady"
SMOKE_CLUSTER = ["--set", "cluster.racks=2", "--set", "cluster.gpus_per_rack=16"]
ROUTERS = "prefix_aware,session_affinity,round_robin,least_loaded,random,cache_load_balanced"

# Keys never compared: wall-clock measurements, and the run's start time, git commit and kvsim version
# (they differ run to run or commit to commit, never with the results).
WALL_KEYS = frozenset({"wall_s", "sim_speed_req_s", "timings_s", "lp_s", "started_utc", "git_commit", "kvsim_version"})


def _run(mode: str, trace: str, *extra: str) -> list[str]:
    return ["run", "--mode", mode, "--trace", trace, "--no-plot", "--quiet",
            "--report-json", "{out}/report.json", "--report-csv", "{out}/report.csv", *extra]


CASES: dict[str, dict] = {
    # the main job's scenario (built-in synthetic workload), every policy, timed
    "main_job": {"argv": ["run", "--compare", "--no-plot", "--quiet", "--report-json", "{out}/report.json",
                          "--report-csv", "{out}/report.csv"], "files": ["report.json", "report.csv"]},
    "single_timed_small": {"argv": _run("single", SMALL, "--policy", POLICIES), "files": ["report.json", "report.csv"]},
    "single_hro_small": {"argv": _run("single", SMALL, "--policy", POLICIES, "--hit-rate-only"),
                         "files": ["report.json", "report.csv"]},
    "single_python_small": {"argv": _run("single", SMALL, "--policy", "lru,arc,s3fifo",
                                         "--set", "cache.engine=python"), "files": ["report.json", "report.csv"]},
    "single_routers_small": {"argv": _run("single", SMALL, "--policy", "lru", "--router", "prefix_aware",
                                          "--set", "hardware.gpus_per_node=4"), "files": ["report.json"]},
    "single_azure_hro": {"argv": _run("single", "tests/data/azure_conv_small.csv", "--policy", "lru,arc",
                                      "--hit-rate-only"), "files": ["report.json"]},
    "single_bailian": {"argv": _run("single", "tests/data/bailian_small.jsonl", "--policy", "lru,s3fifo"),
                       "files": ["report.json"]},
    "single_burstgpt_hro": {"argv": _run("single", "tests/data/burstgpt_small.csv", "--policy", "lru",
                                         "--hit-rate-only"), "files": ["report.json"]},
    "single_splitwise_hro": {"argv": _run("single", "tests/data/splitwise_small.csv", "--policy", "lru",
                                          "--hit-rate-only"), "files": ["report.json"]},
    "cluster_small": {"argv": _run("cluster", SMALL, "--router", ROUTERS, *SMOKE_CLUSTER),
                      "files": ["report.json", "report.csv"]},
    "cluster_python_small": {"argv": _run("cluster", SMALL, "--router", "prefix_aware,round_robin",
                                          "--set", "cache.engine=python", *SMOKE_CLUSTER),
                             "files": ["report.json", "report.csv"]},
    "cluster_hro_small": {"argv": _run("cluster", SMALL, "--router", ROUTERS, "--hit-rate-only", *SMOKE_CLUSTER),
                          "files": ["report.json"]},
    "pd_small": {"argv": _run("pd", SMALL), "files": ["report.json"]},
    "pd_pull_small": {"argv": _run("pd", SMALL, "--set", "pd.transfer=pull_on_demand", "--set",
                                   "compute.preemption=swap", "--router", "least_loaded"), "files": ["report.json"]},
    "oracle_small": {"argv": ["oracle", "--trace", SMALL, "--model", "llama-3-70b", "--kv-budget-gb", "2",
                              "--output-dir", "{out}/oracle", "--quiet"], "files": "oracle"},
    "calc_kv": {"argv": ["calc", "kv", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--tp", "8",
                         "--contexts", "1K,8K,128K", "--json"], "files": "stdout"},
    "calc_hit_rate": {"argv": ["calc", "hit-rate", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--gpus", "8",
                               "--arrival-rate", "2", "--turns", "5", "--interval-s", "60", "--json"],
                      "files": "stdout"},
    "calc_reuse": {"argv": ["calc", "reuse", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--gpus", "8",
                            "--prefix-tokens", "8192", "--json"], "files": "stdout"},
    "trace_stats": {"argv": ["trace", "stats", "--trace", SMALL, "--json"], "files": "stdout"},
    # the first 2,000 Mooncake requests (skipped where ../shared is absent)
    "mooncake_single_timed": {"argv": _run("single", "{mooncake}", "--limit", "2000", "--policy", POLICIES),
                              "files": ["report.json", "report.csv"], "needs_mooncake": True},
    "mooncake_single_hro": {"argv": _run("single", "{mooncake}", "--limit", "2000", "--policy", POLICIES,
                                         "--hit-rate-only"), "files": ["report.json"], "needs_mooncake": True},
    "mooncake_cluster": {"argv": _run("cluster", "{mooncake}", "--limit", "2000", "--router", ROUTERS,
                                      *SMOKE_CLUSTER), "files": ["report.json", "report.csv"],
                         "needs_mooncake": True},
    "mooncake_pd": {"argv": _run("pd", "{mooncake}", "--limit", "2000"), "files": ["report.json"],
                    "needs_mooncake": True},
    "mooncake_oracle": {"argv": ["oracle", "--trace", "{mooncake}", "--limit", "2000", "--model", "llama-3-70b",
                                 "--kv-budget-gb", "160", "--output-dir", "{out}/oracle", "--quiet"],
                        "files": "oracle", "needs_mooncake": True},
}


def argv_for(case: dict, out: Path) -> list[str]:
    return [a.replace("{out}", str(out)).replace("{mooncake}", "../shared/traces/mooncake_conversation.jsonl")
            for a in case["argv"]]
