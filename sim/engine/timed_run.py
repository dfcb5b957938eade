"""Driving the compiled timed single-node replay (sim.engine.timed_node): build its state, run it in stretches,
hand its result rows over, grow its tables, read back its figures.

``refusal(cfg)`` says why a timed single-node run on the compiled cache cannot take this path (it then runs
the SimPy event model of sim.modes.single ``_run_timed``, which covers every setting); ``run(...)`` replays
the workload and fills the RunResult as ``_run_timed`` does, with the same numbers.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import simpy

from sim.engine import timed_events, timed_links
from sim.engine import timed_layout as lay
from sim.engine import timed_node as tn
from sim.engine.timed_ops import request_state
from sim.engine.timed_state import TimedState, make_state
from sim.engine.timed_step import hist_arrays, hist_into, step_array
from sim.modes.common import WorkerParams
from sim.modes.result_rows import ResultRows
from sim.replica.histogram import IterationHistogram
from sim.timing.node_io import NodeIO
from sim.timing.step_cost import StepModel

PAUSE_EVERY = 8192  # arrivals between two visits to the driver (rows handed over, progress)
FIRST_ROWS = 1 << 16  # the ring of result rows (grows when the requests in flight span more)
FIRST_REQUESTS = 4096  # request slots (grow with the requests in flight)
FIRST_EVENTS = 4096  # event slots and queue entries (grow with the events pending)
FIRST_JOBS = 64  # transfers a link class holds (grows with the transfers in flight)


def refusal(cfg) -> str | None:
    """Why a timed single-node run cannot use the compiled event model (None: it can)."""
    if cfg.hardware.host_bridge_gb_s > 0:
        return "a host bridge (two-hop transfers)"
    if cfg.cache.write_policy == "write_through" and not cfg.cache.async_backup:
        return "synchronous write-through (the first token waits for its write-back)"
    if not cfg.pd.coalesce_decode:
        return "pd.coalesce_decode = false (an event per decode iteration)"
    return None


def _group(arr_s: np.ndarray) -> int:
    """The most requests arriving at one instant (the arrivals process handles them in one step)."""
    if len(arr_s) == 0:
        return 1
    cut = np.flatnonzero(np.diff(arr_s) != 0)
    edges = np.concatenate(([0], cut + 1, [len(arr_s)]))
    return int(np.diff(edges).max())


def _links(io: NodeIO) -> list:
    """The node's links in the compiled replay's order (sim.engine.timed_node): PCIe in, PCIe out, NVMe."""
    return [*io.pcie_in, *io.pcie_out, io.nvme]


def _link_params(io: NodeIO) -> np.ndarray:
    """Each link's (read bytes/s, write bytes/s, write-back share, contention)."""
    return np.array([(p.read_bytes_s, p.write_bytes_s, p.share, 1.0 if p.contention else 0.0) for p in _links(io)])


class _State:
    """The arrays of one replay (sim.engine.timed_node's ST, rebuilt when a table grows)."""

    def __init__(self, cfg, w, setup, cache, R, sess_idx: np.ndarray, load: np.ndarray, P: tuple,
                 every: int) -> None:
        n = len(w)
        nw = setup.n_workers
        wp = WorkerParams.of(cfg, setup, w)  # what sim.modes.common.worker_replicas builds its Workers with
        self.io = io = NodeIO(simpy.Environment(), cfg, nw, setup.gpus_per_worker, setup.block_bytes,
                              setup.spec.n_layers)
        step = StepModel.from_config(cfg)
        self.every = every
        C = np.zeros(lay.C_SIZE, dtype=np.int64)
        C[lay.C_NW], C[lay.C_MAX_SEQS], C[lay.C_BUDGET] = nw, wp.max_seqs, wp.token_budget
        C[lay.C_POOL] = wp.pool_tokens
        C[lay.C_OVERLAP_NONE] = io.overlap == "none"
        C[lay.C_FASTER] = io.policy == "faster"
        C[lay.C_SWAP] = wp.preemption == "swap"
        C[lay.C_LAYERS], C[lay.C_BT], C[lay.C_N], C[lay.C_EVERY] = io.layers, setup.block_tokens, n, self.every
        arr_s = w.arrival_ms / 1000.0
        C[lay.C_GROUP] = _group(arr_s)
        CF = np.zeros(lay.F_SIZE)
        CF[lay.F_DRAM_LAT], CF[lay.F_SSD_LAT], CF[lay.F_BB] = io.dram_lat, io.ssd_lat, setup.block_bytes
        CF[lay.F_KVB], CF[lay.F_SWAP_BS] = wp.kv_bytes_per_token, wp.swap_bytes_s
        self.E = timed_events.events(FIRST_EVENTS, FIRST_EVENTS)
        self.L = timed_links.links(_link_params(io), FIRST_JOBS)
        WI = np.zeros((nw, lay.WI_SIZE), dtype=np.int64)
        WI[:, lay.W_WAKE] = -1
        for lst in (lay.W_WAIT, lay.W_ACT, lay.W_DQ, lay.W_RQ, lay.W_RUN):
            WI[:, lst] = WI[:, lst + 1] = -1
        self.WK = (WI, np.zeros((nw, lay.WF_SIZE)), np.zeros((nw, wp.max_seqs + 1, 3), dtype=np.int64),
                   np.zeros((wp.max_seqs + 1, 3)))
        self.X = np.zeros(lay.X_SIZE, dtype=np.int64)
        self.RQ = self._requests(FIRST_REQUESTS)
        self.X[lay.X_NRQ_FREE] = FIRST_REQUESTS
        self.ROWS = self._rows(max(FIRST_ROWS, 2 * int(C[lay.C_GROUP]) + 2))
        m = n // self.every + 2
        self.hist = hist_arrays(IterationHistogram())
        self.occ = (np.zeros(m), np.zeros((m, 3), dtype=np.int64))
        self.C, self.CF = C, CF
        self.S = step_array(step)
        i64 = np.int64  # no copy of what is int64 already (a 10M-request run: 80 MB an array)
        self.W = (arr_s, np.asarray(w.block_offsets, dtype=i64), np.asarray(w.input_tokens, dtype=i64),
                  np.asarray(w.output_tokens, dtype=i64), np.asarray(sess_idx, dtype=i64))
        self.cache = (cache.M, R, load, P, request_state(n))

    @staticmethod
    def _requests(k: int) -> tuple:
        return (np.zeros((k, lay.RI_SIZE), dtype=np.int64), np.zeros((k, lay.RF_SIZE)),
                np.arange(k - 1, -1, -1, dtype=np.int64))

    @staticmethod
    def _rows(k: int) -> tuple:
        return (np.zeros(k, dtype=np.int64), np.zeros((k, 3), dtype=np.int64), np.zeros((k, 3), dtype=np.int64),
                np.full((k, 6), np.nan), np.zeros(k, dtype=np.int64), np.zeros(k, dtype=np.int64))

    def st(self) -> TimedState:
        return make_state(self.E, self.L, self.WK, self.RQ, self.ROWS, self.X, self.C, self.CF, self.S, self.hist,
                          self.W, self.cache, self.occ)

    def grow(self, need: int) -> None:
        X = self.X
        if need & lay.GROW_EVENTS:
            self.E = timed_events.grown(self.E, 2 * len(self.E[timed_events.Q_T]),
                                        2 * len(self.E[timed_events.EV_GEN]))
        if need & lay.GROW_JOBS:
            self.L = timed_links.grown(self.L, 2 * self.L[timed_links.HV].shape[1])
        if need & lay.GROW_REQUESTS:
            RI, RF, free = self.RQ
            old, k = len(RI), 2 * len(RI)
            nri, nrf, nfree = self._requests(k)
            nri[:old], nrf[:old] = RI, RF
            f = int(X[lay.X_NRQ_FREE])
            nfree[:f] = free[:f]
            nfree[f:f + k - old] = np.arange(k - 1, old - 1, -1)
            X[lay.X_NRQ_FREE] = f + k - old
            self.RQ = (nri, nrf, nfree)
        if need & lay.GROW_ROWS:
            # to what the requests in flight and the next pause span, in whole FIRST_ROWS steps (not doubled:
            # the run's estimate counts the rows its requests in flight span, sim.modes.memory.run_estimate)
            ring = self.ROWS
            cap = len(ring[0])
            want = int(X[lay.X_AI]) + int(self.C[lay.C_GROUP]) + 1 + PAUSE_EVERY - int(X[lay.X_FLUSHED])
            k = max(cap + FIRST_ROWS, -(-want // FIRST_ROWS) * FIRST_ROWS)
            new = self._rows(k)
            i = np.arange(int(X[lay.X_FLUSHED]), int(X[lay.X_D0]))
            for a, b in zip(ring, new, strict=True):
                b[i % k] = a[i % cap]
            self.ROWS = new

    def hand_over(self, rows: ResultRows) -> None:
        """The complete rows from the oldest not handed over on, into `rows` (a block at a time)."""
        X = self.X
        rw, rhb, rht, lat, rrec, rdone = self.ROWS
        cap = len(rw)
        lo, hi = int(X[lay.X_FLUSHED]), int(X[lay.X_D0])
        if hi <= lo:
            return
        pos = np.arange(lo, hi) % cap
        open_ = np.flatnonzero(rdone[pos] == 0)
        end = lo + (int(open_[0]) if len(open_) else hi - lo)
        i = lo
        while i < end:
            b = rows.at(i)
            k0 = i - b.lo
            cnt = min(end, b.lo + b.n) - i
            p = np.arange(i, i + cnt) % cap
            b.worker[k0:k0 + cnt] = rw[p]
            b.hit_blocks[k0:k0 + cnt] = rhb[p]
            b.hit_tokens[k0:k0 + cnt] = rht[p]
            for col, name in enumerate(("queue_s", "load_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s")):
                getattr(b, name)[k0:k0 + cnt] = lat[p, col]
            b.recomputed_tokens[k0:k0 + cnt] = rrec[p]
            rdone[p] = 0
            rows.done(i, cnt)
            i += cnt
        X[lay.X_FLUSHED] = end


def run(cfg, w, setup, cache, R, sess_idx: np.ndarray, load: np.ndarray, P: tuple, res, rows: ResultRows,
        progress: Callable[[int], None] | None, every: int) -> None:
    """Replay `w` timed on the compiled cache (sim.modes.single ``_run_timed``'s ``fast`` arguments) and fill
    `res` as it does: sim_time_s, busy_s, io, iteration_ms, preemptions, the cache's occupancy (a sample every
    `every` arrivals)."""
    n = len(w)
    s = _State(cfg, w, setup, cache, R, sess_idx, load, P, every)
    X = s.X
    X[lay.X_STOP] = PAUSE_EVERY if PAUSE_EVERY < n else n + 1
    st = s.st()
    tn.start(st)
    while True:
        status = tn.run(st)
        s.hand_over(rows)
        if status == lay.GROW:
            s.grow(int(tn.short(st)))  # what handing the rows over did not free
            st = s.st()
        if status == lay.DONE:
            break
        if status == lay.PAUSE:
            ai = int(X[lay.X_AI])
            X[lay.X_STOP] = ai + PAUSE_EVERY if ai + PAUSE_EVERY < n else n + 1
            if progress:
                progress(ai - 1)
    if int(X[lay.X_FLUSHED]) != n:
        raise RuntimeError(f"compiled timed replay: {n - int(X[lay.X_FLUSHED])} requests never finished")
    _results(s, res, cache)


def _results(s: _State, res, cache) -> None:
    E, L = s.E, s.L
    WI, WF = s.WK[0], s.WK[1]
    res.sim_time_s = float(E[timed_events.G_F][0])
    # the replay's byte counts, busy seconds and recomputes into the Python links, whose NodeIO reports them
    io, lf, by = s.io, L[timed_links.LF], L[timed_links.LB]
    for k, p in enumerate(_links(io)):
        for d, col in (("read", timed_links.READ), ("write", timed_links.WRITE), ("prefetch", timed_links.PREFETCH)):
            p.bytes[d] = float(by[k, col])
        p.read.busy_time = float(lf[3 * k + timed_links.READ, timed_links.BUSY])
        p.write.busy_time = float(lf[3 * k + timed_links.WRITE, timed_links.BUSY])
    io.recomputed_prefixes, io.recomputed_tokens = int(s.X[lay.X_REC_PREFIXES]), int(s.X[lay.X_REC_TOKENS])
    res.busy_s = {
        "decode": [float(x) for x in WF[:, lay.WF_DBUSY]],
        "prefill": [float(x) for x in WF[:, lay.WF_PBUSY]],
        **io.busy_s(),
    }
    res.io = io.summary()
    h = IterationHistogram()
    counts, tot, acc, _edges, _log_lo = s.hist
    hist_into(h, counts, int(tot[0]), float(acc[0]))
    res.iteration_ms = h.summary_ms()
    res.preemptions = int(WI[:, lay.W_PREEMPTS].sum())
    k = int(s.X[lay.X_OCC_K])
    occ_t, occ = s.occ[0][:k].tolist(), s.occ[1][:k].tolist()
    # samples taken before the arrivals first waited: SimPy's env.now is then its initial int 0 (in the report)
    occ_t[:int(s.X[lay.X_OCC_AT_START])] = [0] * int(s.X[lay.X_OCC_AT_START])
    for name, col in (("hbm", 0), ("dram", 1), ("ssd", 2)):
        cache.occupancy[name] = [(t, row[col]) for t, row in zip(occ_t, occ, strict=True)]
