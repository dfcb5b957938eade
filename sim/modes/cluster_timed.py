"""The timed cluster replay (``timing=True``): SimPy, callback-driven (no process per request); see
``sim.modes.cluster`` for a request's path."""
from __future__ import annotations

from collections.abc import Callable

import simpy

from sim.modes.cluster_io import ClusterIO
from sim.modes.cluster_prefetch import ClusterPrefetchHost
from sim.modes.cluster_setup import ClusterSetup, prefill_fn, progress_every
from sim.modes.common import positions_still_read, trim_tokens, worker_replicas
from sim.modes.result_rows import ResultRows
from sim.policies.base import REGISTRY
from sim.replica.engine import BatchingReplica
from sim.replica.request import Req
from sim.timing.event_loop import run_to_end, timer
from sim.timing.prefetch import SessionPrefetcher, prefetch_untimed
from trace.workload import Workload


def run_timed(cfg, w: Workload, rows, setup: ClusterSetup, cache, net, router, loads, prefill_free, clock, res,
              result_rows: ResultRows, progress, release: Callable[[int], None] | None = None) -> None:
    """`rows`: request i's blocks; `result_rows`: where each request's result row goes, complete when it is done;
    `release`: called after each store with the first access position a request still reads
    (sim.policies.base.AccessContext.accesses_done)."""
    env = simpy.Environment()
    node = setup.node
    bt, bb = node.block_tokens, node.block_bytes
    lanes = setup.layout.gpus_per_worker
    # per-request scalars through ndarray.item, not .tolist() copies (sim.modes.cluster_fast: ~170 B a request)
    arr_at = (w.arrival_ms / 1000.0).item
    off_at, inp_at, out_at, sess_at = w.block_offsets.item, w.input_tokens.item, w.output_tokens.item, w.session_id.item
    every = progress_every(len(w))
    n = len(w)
    # A request's state from its arrival to its last use, popped there: the run holds the requests in
    # flight, not n of each (issue #19's bounded memory).
    wk_of: dict[int, int] = {}  # until done
    npre_of: dict[int, int] = {}  # blocks found cached, until the store at the first token
    arrived = [0]  # the next request to arrive (`release`: common.positions_still_read)
    prefill = prefill_fn(cfg, setup)
    t_arrive: dict[int, float] = {}  # until it joins its replica
    t_first: dict[int, float] = {}  # until done
    cached_tok: dict[int, int] = {}  # until it joins its replica
    row_at = result_rows.at  # request i's row block (its row: i - block.lo)
    no_blocks: list[int] = []  # the replica's scheduler does not read blocks here (PoolAdmission)

    layout = setup.layout
    io = ClusterIO(env, net, block_bytes=bb, lanes=lanes, layers=node.spec.n_layers, policy=cfg.cache.load_policy,
                   overlap=cfg.cache.load_overlap, prefill_s=prefill)

    background = io.background

    pf = SessionPrefetcher(env, ClusterPrefetchHost(env, cache, net, lanes=lanes, background=background,
                                                    count_read=io.count_background), bb) \
        if REGISTRY[res.policy].prefetch else None

    choose, acquire, inc, start_load = router.choose, cache.acquire, loads.inc, io.start_load
    wpr = layout.workers_per_rack
    blk_of: dict = {}  # request i's blocks from its arrival until its first token (rows once)

    def arrive(i: int) -> None:
        now = env.now
        clock[0] = now
        if i + 1 < n:
            d = arr_at(i + 1) - now
            timer(env, d if d > 0.0 else 0.0).callbacks.append(lambda _e: arrive(i + 1))
        if progress and i % every == 0:
            progress(i)
        arrived[0] = i + 1
        lo = off_at(i)
        blk_of[i] = blocks = rows(i)
        s = sess_at(i)
        wk = choose(i, blocks, s)
        inc(wk)
        wk_of[i] = wk
        t_arrive[i] = now
        if pf is not None:  # before the lookup moves anything: which pending prefetched blocks are still in HBM
            c0 = cache.probe(wk, blocks)
            pf.arrived(s, wk, blocks, c0[0], sum(c0))
        cnt, crit, bg = acquire(wk, blocks, lo)
        n_in = inp_at(i)
        tok = trim_tokens(cnt, bt, n_in)
        b = row_at(i)
        j = i - b.lo
        b.worker[j] = wk
        b.hit_blocks[j] = cnt
        b.hit_tokens[j] = tok
        npre_of[i] = sum(cnt)
        if bg:
            background(bg)
        if not crit:
            cached_tok[i] = sum(tok)
            loaded(i)
            return
        # Load each lower part or recompute it (cache.load_policy); join the replica when the load is
        # in, or layer-wise as soon as the prefill would no longer stall on it (cache.load_overlap).
        ld = start_load(wk // wpr, tok, crit, n_in)
        choice = ld.choice
        cached_tok[i] = choice.tokens_used
        if choice.recomputed_tokens:
            b.recomputed_tokens[j] = choice.recomputed_tokens
        ready = ld.ready()
        if ready is None:
            loaded(i)
        else:
            ready.callbacks.append(lambda _e: loaded(i))

    def loaded(i: int) -> None:
        now = env.now
        wk = wk_of[i]
        t_arr = t_arrive.pop(i)
        b = row_at(i)
        b.net_s[i - b.lo] = now - t_arr
        cached = cached_tok.pop(i)
        n_in = inp_at(i)
        # The cost-aware router's queue estimate: when this worker's prefill queue would drain if
        # prefills ran back to back (its signal only; the replica decides the real timeline).
        prefill_free[wk] = max(now, prefill_free.get(wk, 0.0)) + prefill(n_in - cached, cached)
        r = Req(i, n_in, out_at(i), no_blocks, off_at(i), t_arr, sess_at(i))
        # At least one token is always computed: it yields the first output token's logits.
        r.cached = max(0, min(cached, n_in - 1))
        # the last thing the last callback of the event being processed does: an arrival's wake-up (the
        # sole callback), a load's ready event (loaded's is its last callback), so the replica's wake-up
        # may run at once (event_loop.succeed_last)
        workers.submit(wk, r, last=True)

    def first_token(eng: BatchingReplica, r: Req) -> None:
        i, now = r.i, env.now
        clock[0] = now
        wk = eng.idx
        lo = off_at(i)
        blocks = blk_of.pop(i)
        bg = cache.store(wk, blocks, lo, npre_of.pop(i))
        if release is not None:
            release(positions_still_read(npre_of, arrived[0], off_at))
        if bg:
            background(bg)
        if pf is not None:
            pf.turn_done(sess_at(i), i, wk, blocks, lo)
        t_first[i] = now
        b = row_at(i)
        j = i - b.lo
        b.queue_s[j] = r.t_pstart - r.t_ready
        b.prefill_s[j] = now - r.t_pstart
        b.ttft_s[j] = now - r.t_arr
        workers.start_decode(eng, r)

    def done(r: Req) -> None:
        i, now = r.i, env.now
        b = row_at(i)
        j = i - b.lo
        b.tpot_s[j] = (now - t_first.pop(i)) / (r.out - 1) if r.out > 1 else 0.0
        b.e2e_s[j] = b.busy_s[j] = now - r.t_arr
        loads.dec(wk_of.pop(i))
        result_rows.done(i)

    workers = worker_replicas(cfg, node, env, w, first_token=first_token, done=done)

    if n:
        env.timeout(arr_at(0)).callbacks.append(lambda _e: arrive(0))
    run_to_end(env)
    res.sim_time_s = float(env.now)
    res.decode_busy_s = {wk: workers.busy(wk)[2] for wk in workers.replicas}
    res.iteration_ms = workers.hist.summary_ms()
    res.iteration_hist = workers.hist
    res.preemptions = workers.preemptions()
    res.io = io.summary()
    if pf is not None:
        pf.finish()
        res.prefetch = pf.report()
    else:
        res.prefetch = prefetch_untimed(0, bb)
