"""The state of one request in a replica: prefill, (PD) KV transfer, decode.

Every mode's requests use it while they are inside a replica; the transfer
fields are PD's and stay at their defaults elsewhere. The single-node and
cluster modes set ``cached`` themselves (their prefix cache is not a radix
tree) and read ``t_ready`` (joined the prefill queue), ``t_pstart`` (first
chunk started) and ``t_pend`` (last chunk done).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import simpy

NAN = math.nan


class Req:
    """Mutable per-request state; the simulators copy the timestamps into arrays at the end.

    Times are SimPy seconds. ``t_kv`` is when the first token is out and
    the KV is where decode can use it (PD: the transfer arrived; colocated:
    prefill finished) - TTFT ends there.
    """

    __slots__ = (
        "i", "inp", "out", "blocks", "pos0", "sess",
        # prefill
        "pre", "route_hbm", "lower_upto", "n_dram", "n_eic", "hit_hbm", "hit_low", "cached", "recomputed", "todo",
        "done",
        "locked", "admitted",
        # transfer
        "dec", "dec_reserved", "sent_tokens", "flows", "xfer_s", "xfer_bytes", "kv_full", "t_full",
        "t_flow0", "prefill_done",
        # decode
        "ctx", "left", "mem", "in_tree", "preempted", "needs_mem", "extra", "swapped",
        # times
        "t_arr", "t_ready", "t_pstart", "t_pend", "t_grant", "t_kv", "t_join", "t_done",
    )

    def __init__(self, i: int, inp: int, out: int, blocks: list[int], pos0: int, t_arr: float,
                 sess: int = -1) -> None:
        self.i = i
        self.sess = sess
        self.inp = inp
        self.out = out
        self.blocks = blocks
        self.pos0 = pos0
        self.pre = -1
        self.route_hbm = 0  # HBM-matched blocks when the request was routed
        self.lower_upto = 0  # blocks cached up to here once the DRAM/EIC load is in
        self.n_dram = 0
        self.n_eic = 0
        self.hit_hbm = 0  # tokens served from HBM / from DRAM+EIC at admission
        self.hit_low = 0
        self.cached = 0  # tokens not computed
        self.recomputed = 0  # cached tokens recomputed rather than loaded (cache.load_policy; PD)
        self.todo = 0  # tokens still to prefill
        self.done = 0  # tokens prefilled so far
        self.locked = 0  # leading blocks referenced in the prefill tree
        self.admitted = False
        self.dec = -1
        self.dec_reserved = False
        self.sent_tokens = 0
        self.flows = 0  # transfer flows in flight
        self.xfer_s = 0.0  # summed duration of the transfer flows
        self.xfer_bytes = 0.0
        self.kv_full: simpy.Event | None = None  # pull_on_demand: event when the last layer group arrived
        self.t_full = NAN
        self.t_flow0 = NAN  # start of the first transfer flow
        self.prefill_done = False
        self.ctx = 0  # KV tokens at decode (prompt + generated)
        self.left = 0  # decode iterations still to run
        self.mem = 0  # tokens this request holds in the decode memory pool
        self.in_tree = False  # colocated: prompt blocks referenced in the tree
        self.preempted = 0
        self.needs_mem = False  # preempted: must get ctx tokens of memory back to rejoin
        self.extra = 0.0  # seconds added to the iteration it rejoins in (recompute / swap-in)
        self.swapped = False
        self.t_arr = t_arr
        self.t_ready = NAN
        self.t_pstart = NAN
        self.t_pend = NAN
        self.t_grant = NAN
        self.t_kv = NAN
        self.t_join = NAN
        self.t_done = NAN
