"""`run --mode pd`: the PD deployment and the colocated one on the same GPUs and trace, as one report.

The metrics of each deployment are defined in ``sim.report.pd``.
"""
from __future__ import annotations

import time
from typing import Any

from sim.config import Config
from sim.errors import InputError
from sim.modes.pd.setup import prepare
from sim.modes.pd.simulator import simulate
from sim.report.pd import comparison, deployment_metrics
from sim.report.requests import pd_requests
from sim.report.schema import build_report
from sim.timing.confidence import confidence


def run_pd_mode(cfg: Config, workload, policies: list[str], *, timing: bool = True, load_stats=None,
                progress=None, baseline: bool = True, requests: list | None = None) -> dict:
    """`run --mode pd`: the PD deployment and (by default) the colocated one on the same GPUs and trace."""
    if not timing:
        raise InputError("--hit-rate-only does not apply to --mode pd: it is a timing simulation "
                         "(use --mode single for hit rates only)", where="--hit-rate-only")
    if len(policies) != 1:
        raise InputError(f"--mode pd compares PD with colocated for one eviction policy; got {len(policies)} "
                         f"({', '.join(policies)})", where="--policy")
    policy = policies[0]
    t0 = time.perf_counter()
    prep = prepare(cfg, workload, policy)
    rejected = len(prep.rejected)
    res = simulate("pd", cfg, prep, policy, progress=progress)
    m_pd = deployment_metrics(res, cfg, rejected)
    if requests is not None:
        requests.append(pd_requests(res, cfg, workload, prep.rejected, policy))
    runs = [("pd", m_pd)]
    extra: dict[str, Any] = {"pd_layout": prep.setup.layout(), "eviction_policy": policy,
                             "rejected": prep.rejected_info(), "confidence": confidence(cfg)}
    sim_time = res.sim_time_s
    if baseline:
        col = simulate("colocated", cfg, prep, policy, progress=progress)
        m_col = deployment_metrics(col, cfg, rejected)
        if requests is not None:
            requests.append(pd_requests(col, cfg, workload, prep.rejected, policy))
        runs.append(("colocated", m_col))
        extra["colocated"] = m_col
        extra["comparison"] = comparison(m_pd, m_col)
        sim_time = max(sim_time, col.sim_time_s)
    return build_report("pd", cfg, workload, runs, wall_s=time.perf_counter() - t0, sim_time_s=sim_time,
                        load_stats=load_stats.to_dict() if load_stats else None, extra=extra)

