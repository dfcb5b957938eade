"""Where a run's requests come from: a trace file or the synthetic generator."""
from __future__ import annotations

from sim.config import Config
from trace.workload import LoadStats, Workload


def workload_from_config(cfg: Config) -> tuple[Workload, LoadStats | None]:
    """The trace at ``trace.path`` (first ``trace.limit`` requests), or a synthetic workload."""
    limit = cfg.trace.limit or None
    if cfg.trace.path:
        from trace.formats import load_trace

        w, stats = load_trace(cfg.trace.path, cfg.trace.format, strict=cfg.trace.strict, limit=limit)
        return w.compacted(), stats
    from sim.modes.memory import check, synthetic_estimate
    from trace.synthetic import generate

    check(synthetic_estimate(cfg.synthetic), what=f"generating {cfg.synthetic.requests:,} synthetic requests",
          change="lower synthetic.requests", where="synthetic.requests")
    w = generate(cfg.synthetic, cfg.seed)
    return w.head(limit), None
