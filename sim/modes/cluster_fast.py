"""The hit-rate-only cluster replay (``timing=False``): no SimPy; requests in arrival order, router ->
lookup -> store at once; load is tracked with estimated service times."""
from __future__ import annotations

import heapq
from collections.abc import Callable

from sim.modes.cluster_prefetch import prefetch_instant
from sim.modes.cluster_result import RowWriter
from sim.modes.cluster_setup import ClusterSetup, prefill_fn, progress_every
from sim.modes.common import service_times, trim_tokens
from sim.modes.result_rows import ResultRows
from sim.policies.base import REGISTRY
from sim.timing.prefetch import InstantPrefetch, prefetch_untimed
from trace.workload import Workload


def run_fast(cfg, w: Workload, rows, setup: ClusterSetup, cache, net, router, loads, prefill_free, clock, res,
             result_rows: ResultRows, progress, release: Callable[[int], None] | None = None) -> None:
    """`rows`: request i's blocks; `result_rows`: where each request's result row goes; `release`: called with
    the first position of the next request after each store (sim.policies.base.AccessContext.accesses_done)."""
    # Per-request scalars through ndarray.item (a Python int/float, ~50 ns more a read than a list's) rather
    # than .tolist() copies: five lists of n Python objects would hold ~170 B a request for the whole run.
    arr_at = (w.arrival_ms / 1000.0).item
    off_at, inp_at, sess_at = w.block_offsets.item, w.input_tokens.item, w.session_id.item
    service_at = service_times(cfg, w).item
    bt, bb = setup.node.block_tokens, setup.node.block_bytes
    lanes = setup.layout.gpus_per_worker
    prefill = prefill_fn(cfg, setup)
    out = RowWriter(result_rows)
    departures: list[tuple[float, int, int]] = []  # (estimated finish, seq, worker): the load signal
    every = progress_every(len(w))
    account = net.account
    pf = InstantPrefetch() if REGISTRY[res.policy].prefetch else None
    prefetches: list[tuple[float, int, int, int]] = []  # (time, session, req, worker)
    prefetched = 0

    def account_moves(moves) -> None:
        for (src, dst), nb in moves.items():
            account(src, dst, nb * bb, lanes)

    choose, acquire, store = router.choose, cache.acquire, cache.store
    for i in range(len(w)):
        t = arr_at(i)
        clock[0] = t
        while departures and departures[0][0] <= t:
            loads.dec(heapq.heappop(departures)[2])
        while prefetches and prefetches[0][0] <= t:
            _, s, r, pw = heapq.heappop(prefetches)
            if pf is not None and pf.still_latest(s, r):
                prefetched += prefetch_instant(cache, pw, rows(r), off_at(r), account_moves)
        lo = off_at(i)
        blocks = rows(i)
        s = sess_at(i)
        wk = choose(i, blocks, s)
        c, crit, bg = acquire(wk, blocks, lo)
        npre = sum(c)
        bg2 = store(wk, blocks, lo, npre)
        if release is not None:
            release(lo + len(blocks))
        for moves in (crit, bg, bg2):
            for (src, dst), nb in moves.items():
                account(src, dst, nb * bb, lanes)
        n_in = inp_at(i)
        tok = trim_tokens(c, bt, n_in)
        svc = service_at(i)
        out.add(wk, c, tok, svc)
        cached = sum(tok)
        start = max(t, prefill_free.get(wk, 0.0))
        prefill_free[wk] = start + prefill(n_in - cached, cached)
        loads.inc(wk)
        heapq.heappush(departures, (t + svc, i, wk))
        if pf is not None and s >= 0:
            when = pf.observe(s, i, t)
            if when is not None:
                heapq.heappush(prefetches, (when, s, i, wk))
        if progress and i % every == 0:
            progress(i)
    out.flush()
    res.sim_time_s = arr_at(len(w) - 1) if len(w) else 0.0
    res.prefetch = prefetch_untimed(prefetched, bb)

