"""What preempting a running request costs (``compute.preemption``), by name.

A replica preempts the most recently joined request when the next
iteration's KV does not fit (vLLM's policy). Each entry returns
(seconds blocking the GPU now, seconds added to the iteration the request
rejoins in):

* ``recompute``: the KV is dropped; rejoining prefills the whole context
  again (one iteration's worth of the step cost of that prefill).
* ``swap``: the KV goes to host DRAM and comes back; the host says how long
  each way takes over its links (``swap_s``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sim.replica.engine import BatchingReplica
from sim.replica.request import Req


class PreemptionHost(Protocol):
    kv_bytes_per_token: float  # one model replica

    def swap_s(self, eng: BatchingReplica, nbytes: float) -> tuple[float, float]:
        """Seconds to move nbytes of eng's KV to host memory, and back."""
        ...


def recompute(host: PreemptionHost, eng: BatchingReplica, r: Req) -> tuple[float, float]:
    eng.stats.recompute_tokens += r.ctx
    return 0.0, eng.step.iteration_s([(r.ctx, 0)], 0, 0.0)


def swap(host: PreemptionHost, eng: BatchingReplica, r: Req) -> tuple[float, float]:
    nbytes = r.ctx * host.kv_bytes_per_token
    out, back = host.swap_s(eng, nbytes)
    eng.stats.swap_bytes += 2 * nbytes
    r.swapped = True
    return out, back


PREEMPTION: dict[str, Callable[[PreemptionHost, BatchingReplica, Req], tuple[float, float]]] = {
    "recompute": recompute,
    "swap": swap,
}

__all__ = ["PREEMPTION", "PreemptionHost", "recompute", "swap"]
