"""The online learned policy's training window, re-checked once its first pass has run.

The up-front memory estimate (sim.modes.memory.run_estimate) only assumes the window (a horizon of
LEARNED_HORIZON_ROWS accesses), which a trace's can exceed. Once the policy's first pass has run the
window is exact (learned.policy.Learned.training_window_rows), so the replay checks the estimate again
with it in the assumed one's place before anything is replayed. A single-node, one-cluster or PD run does
so in the driver (sim.modes.runner); a partitioned run in each pod, wherever it runs (in this process,
a local pool or Ray: sim.modes.partition.run_pod), since a pod's first pass reads that pod's requests
and runs where the pod runs. Building the policy here runs its first pass in the scorer the replay's
tiers share (learned.policy.shared_scorer, keyed by the context): it runs once.
"""
from __future__ import annotations

from dataclasses import dataclass

from sim.config import Config
from sim.modes.memory import LEARNED_WINDOW, Estimate
from trace.workload import Workload

MODEL_FILE = ("give the learned policy a model file (--model FILE, from `python main.py learned train`: no training "
              "window)")


@dataclass(frozen=True)
class WindowCheck:
    """What a replay needs to re-check its up-front estimate with the exact window (picklable: a pod's
    task carries it to its worker)."""

    est: Estimate  # the up-front estimate, the window in it the assumed one
    what: str  # the replay, as the up-front check named it
    change: str  # the settings to change besides the model file
    part: str = LEARNED_WINDOW  # the part the window is counted under ...
    copies: int = 1  # ... this many times (a partitioned run: once per pod at once)
    limit: float | None = None  # the bound in bytes (a pod's: the one its driver read); None: limit_bytes()

    @classmethod
    def of(cls, est: Estimate, what: str, change: str, **kw) -> WindowCheck | None:
        """The re-check of `est`; None when it counts no training window (no online learned policy)."""
        c = cls(est, what, change, **kw)
        return c if c.part in est.parts else None


def recheck_learned(chk: WindowCheck | None, cfg: Config, w: Workload, ctx, whose: str = "the") -> None:
    """Build the learned policy on `ctx` (its first pass runs: the scorer the replay will share) and refuse
    in one line, before the replay, when the estimate with its exact window exceeds the bound. `whose`
    names the policy in the line (a pod's: "pod 3's")."""
    from sim.modes.common import policy_params
    from sim.modes.memory import HoldsTrainingWindow, check, with_exact_window
    from sim.policies import make_policy

    if chk is None:
        return
    pol = make_policy("learned", 1, ctx, **policy_params(cfg, w.block_tokens))
    if not isinstance(pol, HoldsTrainingWindow):
        raise TypeError(f"the learned policy ({type(pol).__name__}) does not state its training window")
    rows = pol.training_window_rows()
    check(with_exact_window(chk.est, rows, part=chk.part, copies=chk.copies),
          what=f"{chk.what} with {whose} online learned policy's training window of {rows:,} rows (exact after "
               "its first pass)",
          change=f"{MODEL_FILE}, {chk.change}", where="--policy learned", limit=chk.limit)


__all__ = ["WindowCheck", "recheck_learned"]
