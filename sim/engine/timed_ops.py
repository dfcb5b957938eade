"""The timed single-node replay's cache calls per request, compiled (sim.modes.single ``_run_timed``).

A timed request touches the cache twice: at arrival (route, look up, fetch) and at its first token
(store). Each is one call here instead of four or five Python-to-numba crossings, with the hit-rate-only
replay's shortcuts (sim.engine.replay): fetch reuses the slots lookup found (``rec``, trusted only while
``_still_at`` holds), and store puts a request's own blocks without looking when they are provably new.

The block list is built (``fill``) into a reusable buffer at each call from the parent form, so nothing
is held per request between arrival and first token.

Fresh stores, exactly. In a distinct workload (trace.prefix) a request's own ids occur only in its own
list and its descendants' (later turns that extend it). The hit-rate-only replay stores at arrival, so
own blocks are new at their store. Timed, a later turn can reach its first token first and store this
request's own blocks itself. ``state`` tracks that per request: STORED once it stored; TAINTED when a
descendant stored before it. A store walks up the parent chain marking ancestors that have not stored as
TAINTED, stopping at one already STORED or TAINTED (its ancestors were handled then), so each request is
marked at most once (amortised O(1)). An untainted request's own blocks (from ``shared[i]`` on) were
never inserted anywhere: only stores insert new ids (fetch and prefetch move blocks that are cached), so
no tier or ghost list holds them.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.node_ops import fetch_rec, store_fresh
from sim.engine.replay import hit_tokens, routed_lookup
from sim.engine.routing import route
from sim.engine.unowned import unowned
from trace.prefix import fill

STORED = 1
TAINTED = 2


@njit(cache=True)
def arrive(M_owned, R, load, i, sess, P, pos0, out, row, bt, input_tokens):
    """Request i arrives: route it, count it on its worker's load, look up and fetch its cached prefix.

    Writes ``out = (worker, hit_blocks, hit_tokens)`` at `row` (request i's row in its block of result rows,
    sim.modes.result_rows; hit tokens trimmed to the
    `input_tokens`, sim.engine.replay.hit_tokens) and returns (worker, cached blocks, tokens in HBM, in DRAM,
    in SSD, dram_to_hbm, ssd_to_hbm, hbm_to_dram, dram_to_ssd). ``P`` as sim.engine.replay (``pbuf``
    unused)."""
    M = unowned(M_owned)
    parent, shared, own_off, own_ids, buf, _pbuf, rec, distinct = P
    blocks = buf[:fill(parent, shared, own_off, own_ids, i, buf)]
    wk = route(M, R, load, i, blocks, sess)
    load[wk] += 1
    nh, nd, ns = routed_lookup(M, R, wk, blocks, rec)
    d2h, s2h, h2d, d2s = fetch_rec(M, wk, blocks, pos0, nh + nd + ns, np.bool_(True), rec, distinct)
    worker, hit_blocks, hit_tok = out
    worker[row] = wk
    hit_blocks[row, 0], hit_blocks[row, 1], hit_blocks[row, 2] = nh, nd, ns
    th, td, ts = hit_tokens(nh, nd, ns, bt, input_tokens)
    hit_tok[row, 0], hit_tok[row, 1], hit_tok[row, 2] = th, td, ts
    return wk, nh + nd + ns, th, td, ts, d2h, s2h, h2d, d2s


@njit(cache=True)
def first_token(M_owned, wk, i, P, pos0, start, state):
    """Request i's first token: write its blocks[start:] into wk's HBM (node_ops.store), its own
    blocks without looking when no later turn stored first (module doc). Returns the traffic."""
    M = unowned(M_owned)
    parent, shared, own_off, own_ids, buf, _pbuf, _rec, distinct = P
    n = fill(parent, shared, own_off, own_ids, i, buf)
    tainted = mark_stored(parent, state, i)
    return store_fresh(M, wk, buf[:n], pos0, start, shared[i] if distinct and not tainted else n)


@njit(cache=True)
def mark_stored(parent, state, i):
    """Request i stores now: mark it STORED and its ancestors that have not stored TAINTED (module doc).
    Returns whether a descendant stored before it."""
    tainted = state[i] == TAINTED
    state[i] = STORED
    a = parent[i]
    while a >= 0 and state[a] == 0:
        state[a] = TAINTED
        a = parent[a]
    return tainted


def request_state(n: int) -> np.ndarray:
    """Per request: 0, STORED or TAINTED (module doc); one byte each."""
    return np.zeros(max(1, n), dtype=np.uint8)
