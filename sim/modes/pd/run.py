"""`run --mode pd`: the PD deployment and the colocated one on the same GPUs and trace, as one report.

The metrics of each deployment are defined in ``sim.report.pd``.
"""
from __future__ import annotations

import gc
import time
from typing import Any

from sim.config import Config
from sim.errors import InputError
from sim.modes.load import finish, pd_pools, pre_run, saturation_of
from sim.modes.pd.setup import prepare
from sim.modes.pd.simulator import simulate
from sim.modes.result_rows import streams
from sim.report.pd import PDTotals, comparison, deployment_metrics
from sim.report.request_stream import RequestSink
from sim.report.schema import build_report
from sim.timing.confidence import confidence


def run_pd_mode(cfg: Config, workload, policies: list[str], *, timing: bool = True, load_stats=None,
                progress=None, baseline: bool = True, requests: RequestSink | None = None, check=None) -> dict:
    """`run --mode pd`: the PD deployment and (by default) the colocated one on the same GPUs and trace.
    `check(cfg, workload, prep, offered, policy, baseline, requests)` runs once the workload is prepared, before
    either deployment (sim.modes.runner._check_pd: the memory bound)."""
    if not timing:
        raise InputError("--hit-rate-only does not apply to --mode pd: it is a timing simulation "
                         "(use --mode single for hit rates only)", where="--hit-rate-only")
    if len(policies) != 1:
        raise InputError(f"--mode pd compares PD with colocated for one eviction policy; got {len(policies)} "
                         f"({', '.join(policies)}); run one pd run per policy, or compare policies with "
                         "--mode single or cluster", where="--compare/--policy")
    policy = policies[0]
    t0 = time.perf_counter()
    prep, lay, offered = prepared_run(cfg, workload, policy)
    if check is not None:
        check(cfg, workload, prep, offered, policy, baseline, requests)
    # one deployment at a time: each result (its requests, trees and tiers) is dropped once its metrics and
    # per-request rows are out, so the run's peak is the larger deployment's, not both (sim.modes.memory)
    m_pd, sim_time = _deployment("pd", cfg, prep, policy, lay["prefill_replicas"], progress, requests, workload)
    runs = [("pd", m_pd)]
    extra: dict[str, Any] = {"pd_layout": prep.setup.layout(), "eviction_policy": policy,
                             "rejected": prep.rejected_info(), "confidence": confidence(cfg)}
    if baseline:
        gc.collect()  # the PD deployment's objects form cycles (replicas <-> hooks, SimPy processes): free them now
        m_col, col_time = _deployment("colocated", cfg, prep, policy, lay["replicas"], progress, requests, workload)
        runs.append(("colocated", m_col))
        extra["colocated"] = m_col
        extra["comparison"] = comparison(m_pd, m_col)
        sim_time = max(sim_time, col_time)
    extra["load"] = finish(offered, m_pd, ["prefill", "decode"])
    return build_report("pd", cfg, workload, runs, wall_s=time.perf_counter() - t0, sim_time_s=sim_time,
                        load_stats=load_stats.to_dict() if load_stats else None, extra=extra)


def prepared_run(cfg: Config, workload, policy: str) -> tuple[Any, dict, dict]:
    """What a PD run derives before simulating: (sim.modes.pd.setup.prepare's workload and sizes, the
    layout, the offered load block of sim.modes.load.pre_run); its memory estimate reads all three."""
    prep = prepare(cfg, workload, policy)
    lay = prep.setup.layout()
    offered = pre_run(cfg, workload, pd_pools(lay["prefill_replicas"], lay["decode_replicas"],
                                              lay["kv_tokens_per_replica"]))
    return prep, lay, offered


def _deployment(kind: str, cfg: Config, prep, policy: str, workers: int, progress, requests: RequestSink | None,
                workload) -> tuple[dict, float]:
    """Simulate one deployment: (its metrics, simulated seconds); its per-request rows go to `requests` as
    its blocks complete (the whole deployment at once up to report.exact_quantiles_max_requests)."""
    n = len(prep.workload)
    totals = PDTotals(cfg, prep.workload, prep.setup.block_tokens, kind, streamed=streams(cfg, n, requests),
                      requests=requests, workload=workload, rejected=prep.rejected, policy=policy)
    res = simulate(kind, cfg, prep, policy, progress=progress, totals=totals)
    m = deployment_metrics(res, cfg, len(prep.rejected))
    assert totals.saturation is not None  # fed by the first block (every run has one)
    m["saturation"] = saturation_of(totals.saturation, m, workers)
    return m, res.sim_time_s
