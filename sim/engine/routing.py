"""The single-node routers (sim.routing.blind, sim.routing.cache_aware), compiled, for the engine's replays.

A router has a compiled twin when its class sets ``compiled_code``; the
codes below are read from those classes and ``ROUTER_KERNELS`` (name ->
code) from the registry, so names and codes live only with the routers.
Router state lives in two small arrays so both replays (the compiled
hit-rate-only loop and the SimPy one, through ``CompiledRouter``) share it:
``ri`` = [code, round-robin next], ``rp`` = [load penalty (prefix_aware),
blocks per request (cache_load_balanced), overload (session_affinity)];
``draws`` holds the random router's choices, drawn up front from the same
numpy generator and seed as ``RandomRouter`` (one draw per request, so the
sequence is identical); ``home`` is session_affinity's worker per session
(dense session index, -1 none).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from sim.engine.node_ops import hbm_prefix_rec
from sim.engine.slots import I64
from sim.engine.unowned import unowned
from sim.routing.blind import LeastLoaded, RandomRouter, RoundRobin, SessionAffinity
from sim.routing.cache_aware import CacheLoadBalanced, PrefixAware
from sim.routing.registry import scope

RANDOM = RandomRouter.compiled_code
ROUND_ROBIN = RoundRobin.compiled_code
LEAST_LOADED = LeastLoaded.compiled_code
SESSION_AFFINITY = SessionAffinity.compiled_code
PREFIX_AWARE = PrefixAware.compiled_code
CACHE_LOAD_BALANCED = CacheLoadBalanced.compiled_code

# Only a class that sets compiled_code itself has a twin (a subclass may choose differently).
ROUTER_KERNELS: dict[str, int] = {
    name: vars(cls)["compiled_code"] for name, cls in scope("node").items() if "compiled_code" in vars(cls)
}


def router_state(name: str, router, n_requests: int, n_sessions: int, width: int = 0) -> tuple:
    """(ri, rp, draws, home, slots) for the Python router object `router` (registered as `name`).

    `width`: the most blocks a request has; with it the cache-aware routers keep the HBM slots of the
    chosen worker's cached prefix (``slots[ri[3], :ri[2]]``) for the replay's lookup."""
    code = ROUTER_KERNELS[name]
    ri = np.array([code, 0, 0, 0], dtype=np.int64)
    rp = np.array([
        float(getattr(router, "penalty", 0.0)),
        float(getattr(router, "per_request", 0.0)),
        float(getattr(router, "overload", 0.0)),
    ])
    if code == RANDOM:
        draws = router.s.rng.integers(router.s.n_workers, size=n_requests).astype(np.int64)
    else:
        draws = np.zeros(1, dtype=np.int64)
    home = np.full(max(1, n_sessions), -1, dtype=np.int64)
    slots = np.zeros((2, width if code in (PREFIX_AWARE, CACHE_LOAD_BALANCED) else 0), dtype=np.int64)
    return ri, rp, draws, home, slots


@njit(cache=True)
def _argmin(load):
    best = 0
    for w in range(1, len(load)):
        if load[w] < load[best]:
            best = w
    return best


@njit(cache=True)
def route(M, R, load, i, blocks, sess):
    """Worker for request i (its `blocks`, dense session index `sess` or -1). Sets ri[2] to how many
    leading blocks the chosen worker's HBM holds when the router found out (else 0)."""
    ri, rp, draws, home, sb = R
    M = unowned(M)  # sim.engine.unowned: no atomic reference counts in the prefix scans
    code = ri[0]
    nw = len(load)
    ri[2] = 0
    if code == RANDOM:
        return draws[i]
    if code == ROUND_ROBIN:
        w = ri[1]
        ri[1] = (w + 1) % nw
        return w
    if code == LEAST_LOADED:
        return _argmin(load)
    if code == SESSION_AFFINITY:
        if sess >= 0:
            w = home[sess]
            if w >= 0:
                mean = 0.0
                for k in range(nw):
                    mean += load[k]
                mean /= nw
                if load[w] <= rp[2] * max(1.0, mean):
                    return w
        w = _argmin(load)
        if sess >= 0:
            home[sess] = w
        return w
    if code == PREFIX_AWARE:
        if len(blocks) == 0:
            return _argmin(load)
        best = best_p = 0
        best_row = row = I64(0)
        best_score = 0.0
        for w in range(nw):
            p = hbm_prefix_rec(M, w, blocks, sb, row)
            score = p - rp[0] * load[w]
            if w == 0 or score > best_score:
                best, best_score, best_p, best_row = w, score, p, row
                row ^= 1  # the next worker writes the other row: the best's slots stay
        ri[2], ri[3] = (best_p if sb.shape[1] >= len(blocks) else 0), best_row
        return best
    # CACHE_LOAD_BALANCED
    n = len(blocks)
    best = best_p = 0
    best_row = row = I64(0)
    best_cost = 0.0
    for w in range(nw):
        p = hbm_prefix_rec(M, w, blocks, sb, row)
        cost = (n - p) + rp[1] * load[w]
        if w == 0 or cost < best_cost:
            best, best_cost, best_p, best_row = w, cost, p, row
            row ^= 1
    ri[2], ri[3] = (best_p if sb.shape[1] >= len(blocks) else 0), best_row
    return best


class CompiledRouter:
    """A router's ``choose`` backed by ``route`` (for the SimPy replay)."""

    def __init__(self, M: np.ndarray, R: tuple, load: np.ndarray, session_index: np.ndarray) -> None:
        self.M, self.R, self.load, self.sess = M, R, load, session_index

    def choose(self, req: int, blocks: np.ndarray, session: int) -> int:
        return int(route(self.M, self.R, self.load, req, blocks, self.sess[req]))


def session_index(session_id: np.ndarray) -> np.ndarray:
    """Dense session numbers in id order (-1 stays -1), so per-session state fits in arrays."""
    out = np.full(len(session_id), -1, dtype=np.int64)
    known = session_id >= 0
    if known.any():
        _, inv = np.unique(session_id[known], return_inverse=True)
        out[known] = inv
    return out
