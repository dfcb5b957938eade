"""The arrays of the compiled timed single-node replay (sim.engine.timed_node, timed_replica): their columns.

State (a sim.engine.timed_state.TimedState): ``E`` the event tables (sim.engine.timed_events), ``L`` the links
(sim.engine.timed_links: link w < n_workers is worker w's PCIe in, n_workers + w its PCIe out, 2 n_workers the
NVMe), ``WK`` the replicas, ``RQ`` the requests in flight (a slot each from arrival to done; the replicas' queues
are linked lists through them), ``ROWS`` a ring of result rows the driver empties into the run's row blocks,
``X`` counters, ``C`` / ``CF`` constants, ``STEP`` (sim.engine.timed_step's step array), ``HIST``
(timed_step.hist_arrays), ``W`` (arrival s, block offsets, input tokens, output tokens, session index),
``CACHE`` ((M, R, load, P, state) as sim.engine.timed_ops takes them), ``OCC`` (occupancy times, occupancy).
"""
from __future__ import annotations

import numpy as np

NAN = np.nan

# C: int constants
C_NW, C_MAX_SEQS, C_BUDGET, C_POOL, C_OVERLAP_NONE, C_FASTER, C_SWAP, C_LAYERS, C_BT, C_N, C_EVERY, C_GROUP = range(12)
C_SIZE = 12
# CF: float constants
F_DRAM_LAT, F_SSD_LAT, F_BB, F_KVB, F_SWAP_BS = range(5)
F_SIZE = 5
# X: counters and driver state
(X_AI, X_D0, X_ARR_DONE, X_STOP, X_FLUSHED, X_REC_PREFIXES, X_REC_TOKENS, X_OCC_K, X_NRQ_FREE, X_GROW,
 X_ARR_WAITS, X_OCC_AT_START) = range(12)
X_SIZE = 12
# run's answers
DONE, PAUSE, GROW = 0, 1, 2
GROW_EVENTS, GROW_JOBS, GROW_REQUESTS, GROW_ROWS = 1, 2, 4, 8
# The most events one request makes in one callback: at arrival two load parts (their events and latency timers),
# an all-of, the first-of and its timer, two write-backs' wake-ups and the re-timed classes', its replica's start
# and wake-up (15); at its first token two write-backs and a wake-up (7). One callback handles at most a group of
# arrivals or a batch of first tokens (max_num_seqs), so `short` keeps that much room free before each event.
PER_REQUEST_EVENTS = 16
MARGIN = 64

# RQ = (RI int64[slots, RI_SIZE], RF float64[slots, RF_SIZE], free stack int64[slots])
(I_I, I_INP, I_OUT, I_POS0, I_WK, I_NPRE, I_CTX, I_LEFT, I_MEM, I_CACHED, I_TODO, I_DONE, I_PREEMPTED,
 I_NEEDS_MEM, I_USED, I_PREV, I_NEXT, I_LD_D, I_LD_S, I_THD_D, I_THD_S) = range(21)
RI_SIZE = 21
R_ARR, R_READY, R_PSTART, R_KV, R_EXTRA = range(5)
RF_SIZE = 5

# WK = (WI int64[workers, WI_SIZE], WF float64[workers, WF_SIZE], WB int64[workers, max_seqs + 1, 3],
#       LINES float64[max_seqs + 1, 3]: decode lines by batch (a, b, known))
(W_PC, W_WAKE, W_K, W_INCOMING, W_USED, W_PEAK, W_STARTED, W_LOAD_TOKENS, W_OUTSTANDING, W_BLEN, W_SB, W_SK,
 W_SKK, W_ITERS, W_STRETCHES, W_DEC_TOK, W_PRE_TOK, W_PREEMPTS, W_RECOMP_TOK, W_MAX_BATCH) = range(20)
# the replica's lists of request slots: (head, tail, length) from these columns
W_WAIT, W_ACT, W_DQ, W_RQ, W_RUN = 20, 23, 26, 29, 32
WI_SIZE = 35
WF_EXTRA, WF_DEBT, WF_T0, WF_T, WF_A, WF_B, WF_TOOK, WF_BUSY, WF_PBUSY, WF_DBUSY, WF_SWAP = range(11)
WF_SIZE = 11
PC_START, PC_DEBT, PC_IDLE, PC_ITER, PC_STRETCH, PC_TAIL = range(6)

# ROWS = (worker int64[cap], hit_blocks int64[cap, 3], hit_tokens int64[cap, 3], latencies float64[cap, 6]
#         (queue, load, prefill, ttft, tpot, e2e), recomputed_tokens int64[cap], done int64[cap]); request i at i % cap
L_QUEUE, L_LOAD, L_PREFILL, L_TTFT, L_TPOT, L_E2E = range(6)
