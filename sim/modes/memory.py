"""The up-front memory estimate of a run, checked against a bound before any work starts.

A run too big for the machine is refused with one line naming the estimate and what to change, instead
of being killed by the kernel hours in. The bound is ``KVSIM_MEMORY_LIMIT_GIB`` (a property of the
machine, not of the simulation: it is not a config key and not in the config hash), default
``DEFAULT_SHARE`` of the machine's RAM (or of the cgroup limit when lower).

The model counts what grows with the run (measured on this code, see README "Scale"):
the workload (per request, per block it introduces in ``trace.prefix`` form, or per block access
when something expands the CSR), the replay's per-request arrays, the engine's slots (per cache slot,
bounded by the distinct blocks), the compiled cluster cache's record per distinct block, the
per-access arrays of the policies that read them (Belady, the Python engines), and for PD mode
(pd_estimate) the larger deployment's Python cache blocks and the block lists of the requests in flight.
It is an estimate (about +-30 %), meant to refuse runs that cannot fit, not to plan to the megabyte.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sim.errors import InputError

GiB = 1024**3
DEFAULT_SHARE = 0.8
ENV = "KVSIM_MEMORY_LIMIT_GIB"

BASE_B = 400 * 1024**2  # interpreter, numpy, numba, SimPy and the compiled engine
WORKLOAD_PER_REQ_B = 80  # arrival, tokens, session, turn, offsets + parent, shared, own offsets
ID_B = 8  # one block id
GEN_PER_REQ_B = 140  # synthetic generation: per-arrival draws, session assignment (transient; 10M: 2.29 GiB peak)
# Per-request results (bench_scale.py): single_timed at 10M requests peaked at 2.95 GiB = 0.4 base + 0.67 workload +
# ~200 B a request, ~65 of them Python lists of the tokens and cached blocks since read through ndarray.item / held
# for the requests in flight only (1M: 0.47 -> 0.43 GiB peak,
# 10M: 2.95 -> 2.33). Hit-rate-only runs hold no latency columns
# (sim.modes.common.nan_rows; single at 2M requests: 0.84 -> 0.66 GiB peak when they went). The cluster replays hold
# the result arrays (120 B a request, +48 of latencies timed) and the state of the requests in flight only: rows go
# into the arrays a chunk at a time (RowWriter), the workload's scalars are read through ndarray.item. At 1,600 racks:
# hit-rate-only 1M 1.16 GiB peak (1.76 with a Python row and five Python lists per request; one pair, 5,069 -> 5,695
# CPU req/s for the last step), timed 200k 0.47 GiB (0.59); peaks vary ~0.15 GiB run to run, so the figures below keep
# a margin over those drops.
# PD (sim.modes.pd): a request's sim.replica.request.Req lives while it is in flight; when it finishes, the
# fields the report reads go into a row of columns (sim.modes.pd.finished: 21 fields, 168 B) and the Req is
# dropped. Then the report's per-request arrays (sim.report.pd) and the allocator's slack: the peak RSS grew
# ~360 B a request from 50k to 100k synthetic requests (bench_pd.py --requests; 1,100 B when every Req was kept,
# 768 B of them the object and its numbers), the caches long full; counted with a margin.
RUN_PER_REQ_B = {"single": 116, "single_timed": 240, "cluster": 240, "cluster_timed": 300, "pd_timed": 500}
# The hit-rate-only single-node replay's departure and prefetch heaps grow as they fill instead of a slot per
# request (48 B a request less: "single" was 164; 3M requests 0.92 -> 0.74 GiB peak, bench_scale.py).
# A single-node or cluster run above report.exact_quantiles_max_requests streams its per-request rows a block of
# sim.modes.result_rows.ROW_BLOCK requests at a time. The hit-rate-only replay then holds one block instead of a
# row a request (result_rows.row_bytes: single-node 64 B, the worker, blocks and tokens served per tier and the
# recomputed count; cluster 120 B, six locations and the busy seconds; at 3M synthetic single-node requests the
# peak stays the generator's, 0.74 GiB either way). The timed replay holds the blocks its requests in flight
# span (single-node 300k: 0.27 -> 0.23 GiB peak): the blocks between its oldest request in flight and its newest
# arrival. The estimate takes that span (runner._in_flight_span, span_in_flight below) as the most arrivals
# within one request's time in system: TIME_IN_SYSTEM_MARGIN x its uncontended service time
# (sim.modes.common.service_times: a full decode batch iterates slower than one request alone), plus its wait in
# a fluid queue at the busiest pool's offered load without cache hits (fluid_wait_s, runner.busiest_cold_load:
# the queue of a trace's bursts, and the backlog an overloaded run builds), and the partial blocks at both ends.
# The whole run's backlog share 1 - 1/load at the load with an unbounded cache's hits, in place of the fluid wait,
# fell 45% short on the Mooncake trace compressed 2x (2,286 rows estimated, 4,150 held): its bursts queue more than
# its mean load says, and a small cache hits far less than an unbounded one. Now covered at cold loads up to 1.13
# and up to 4% short when overloaded (cold load 1.4-5.6; tests/modes/test_result_rows.py). A timed replay
# releasing the learned priorities holds them from the same request on. Measured (bench_scale.py --exact-max 0,
# synthetic multi_turn): single-node timed 100k and 400k requests held at most 2 blocks, peak RSS 0.21 and 0.24
# GiB; cluster (16 racks) timed 100k, 2 blocks.
TIME_IN_SYSTEM_MARGIN = 4.0
ESTIMATE_CHUNK = 1 << 20  # requests a step of span_in_flight and fluid_wait_s (their temporaries stay ~10 MB)

# a partitioned run's merged per-request arrays (sim.modes.partition_merge.ARRAYS): hits in blocks and
# tokens per location (6 each), worker, 7 latencies (one shared view when NaN in every pod), recomputed
MERGED_PER_REQ_B = (2 * 6 + 9) * 8
# ... merged into totals when no row is needed (partition_merge.Reduce): the cover count (4; TTFT went into the
# saturation check's stream, sim.report.saturation.SaturationStream, pod by pod: 12 -> 4)
REDUCED_PER_REQ_B = 4
PER_ACCESS_B = 40  # expanded ids + next_use/depth + their sort and the engine's copy
# the oracle family (oracle, plan, calibrate, audit): the expanded ids, sim.oracle.access's six per-access
# arrays, their sort and the bounds' passes (measured: 20k / 80k synthetic requests of ~238 blocks,
# 0.93 / 2.89 GB peak: ~137 bytes per access)
ORACLE_PER_ACCESS_B = 160
SLOT_B = 96  # one single-node engine slot: its fields and hash-table entries
# one resident block of PD's Python caches (sim.modes.pd): a radix-tree Node, its dict and leaf-heap entries,
# its key's int; or a DRAM/EIC tier's policy entry and dict entry. tracemalloc at 5k requests: 260 B a slot on
# average, dicts grown by doubling on top
PD_SLOT_B = 400
# one block id in a Python list: the pointer and its int object. PD holds each request's list (its radix
# tree's keys) from its arrival until it finishes (sim.modes.pd.simulator)
PY_BLOCK_B = 8 + 32
# one resident block of the Python cluster cache (dict entries, holder lists); the compiled one keeps a
# 6-word int32 slot (pool grown by half: up to 1.5x) and its index entries (load <= 0.5, doubling: 2-4x)
CLUSTER_SLOT_B = 224
CLUSTER_COMPILED_SLOT_B = 6 * 4 * 3 // 2 + 16 * 3
# compiled cluster cache: record per distinct block (5 int32 words: holder and EIC-copy list anchors, SSD
# slot or flag)
CLUSTER_BLOCK_B = 5 * 4
RENUMBER_B = 40  # renumbering stored ids to first-use order (transient; none for dense ids: trace.prefix)
# Belady's next-use steps of a distinct workload (trace.next_use): the latest request per distinct block
# while they are built, then per request its start, its steps' range and ~3 steps of 2 words
NEXT_USE_BLOCK_B = 4
NEXT_USE_PER_REQ_B = 64
# the learned policy (learned/): with a model file its features are streamed from a per-block tracker
# (learned.tracker: 36 bytes per distinct block with int32 indexes, plus the pair sets of blocks with a
# second session or follower). Measured with benchmarks/bench_learned_scale.py on multi_turn synthetic
# traffic (sessions = requests / 10): 55.9-56.1 bytes per distinct block at 50k, 200k and 400k requests,
# 52.0 at 1M, with dense and with hashed ids alike. Stored ids not already numbered 0, 1, 2... are
# renumbered once (PrefixBlocks.densified) and the stream holds that copy (ID_B per own block; the
# renumbering's table is freed before the tracker is allocated, so no RENUMBER_B); the known sessions'
# indexes are 4 bytes a request. One priority per scored access stays (8 bytes). Online (no model file:
# learned.online) the same tracker and priorities, one tracker at a time (the first pass's is dropped
# before the replay's), plus the training window: the rows a retraining still reads, each its 11 float32
# features and its next-access distance (52 bytes), in arrays grown by doubling (LEARNED_ROW_B counts the
# slack). How many rows that is depends on the trace's label horizon (rows ~ horizon + max_rows + one
# retraining interval), known only after the first pass: measured 256k rows at 20k multi_turn requests,
# 261k at 50k, 260k at 200k (horizon ~210k accesses), 113k on the Mooncake conversation trace (horizon 62k):
# at 200k requests (48.0M accesses) a replay peaked at 1.03 GiB (estimate 1.33; the whole-trace path 4.47). The
# estimate assumes a horizon of LEARNED_HORIZON_ROWS accesses (~5x the measured ones), bounded by the accesses;
# a trace's horizon can be longer, so once the policy's first pass has run the run re-checks the estimate
# with the exact window in its place (with_exact_window; sim.modes.learned_window) before the replay starts
# (a partitioned run: in each pod, once its first pass has run there).
# The hit-rate-only replays on the Python caches (single node; cluster, pods included) say after each request
# that its accesses are done (sim.policies.base.AccessContext.accesses_done), and the learned scorer then holds
# its priorities for a window of positions, not per access: at most learned.policy's RELEASE_STEP + CHUNK
# positions, plus a request on either side (tests/learned/test_learned_release.py keeps this equal to them).
LEARNED_RELEASED_POSITIONS = 65_536 + 16_384
# The PD deployments release them too (behind their oldest request not done); a radix tree keeps the priority of
# the position it set on a node it may insert into the policy long after (Policy.keep_position): a dict entry of
# (position, priority) a tree node, measured 198 bytes each (tracemalloc, 200k fresh entries)
LEARNED_KEPT_B = 200
LEARNED_BLOCK_B = 56
LEARNED_PER_REQ_B = 4
LEARNED_MODEL_PER_ACCESS_B = 8
LEARNED_ROW_B = 104
LEARNED_HORIZON_ROWS = 1 << 20
# learned.train.TrainParams.max_rows and learned.policy.DEFAULT_RETRAIN_EVERY (requests), the defaults a run
# uses (not imported: learned imports the modes; tests/learned/test_learned_memory.py checks they agree)
LEARNED_MAX_ROWS = 50_000
LEARNED_RETRAIN_EVERY = 2000
# the oracle's Belady method on the parent form (sim.oracle.compact): per distinct block the heap index,
# LRU's two links and flag, and the next-use build's latest request
ORACLE_COMPACT_BLOCK_B = 8 + 17 + 4
# ... with --scope session (trace.reparent.scoped), per distinct block of the global form: the key table
# (16 bytes a slot at load <= 0.5, old and new table together while it doubles) over the session form's
# blocks, which repeat prompts shared across sessions (1.36x as many on the multi-turn generator), and
# the compact arrays over them. Measured +89 bytes per global block at 200k requests; 1.4x margin.
ORACLE_SESSION_SCOPE_B = 128


@dataclass
class Estimate:
    """Bytes by part; ``total`` adds them up."""

    parts: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, nbytes: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + float(nbytes)

    @property
    def total(self) -> float:
        return BASE_B + sum(self.parts.values())

    def summary(self) -> str:
        big = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{k} {v / GiB:.1f}" for k, v in big)


def machine_bytes() -> int:
    """RAM of this machine (or its cgroup limit when lower); 0 when unknown."""
    total = 0
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                txt = f.read().strip()
        except OSError:
            continue
        if txt.isdigit() and 0 < int(txt) < (total or int(txt) + 1):
            total = int(txt)
    return total


def limit_bytes() -> float:
    """The bound: ``KVSIM_MEMORY_LIMIT_GIB`` or DEFAULT_SHARE of the machine; inf when unknown."""
    raw = os.environ.get(ENV, "").strip()
    if raw:
        try:
            v = float(raw)
        except ValueError:
            raise InputError(f"{ENV}={raw!r} is not a number of GiB", where=ENV) from None
        if v <= 0:
            raise InputError(f"{ENV} must be positive", where=ENV)
        return v * GiB
    m = machine_bytes()
    return DEFAULT_SHARE * m if m else float("inf")


def refusal(est: Estimate, *, what: str, change: str, lim: float) -> str:
    """The one line a run over the bound is refused with: the estimate, its biggest parts, what to change."""
    return (f"{what} needs an estimated {est.total / GiB:.1f} GiB of memory (GiB: {est.summary()}), over the "
            f"{lim / GiB:.1f} GiB limit; {change}, or raise {ENV}")


def check(est: Estimate, *, what: str, change: str, where: str, limit: float | None = None) -> None:
    """Refuse with one line when `est` exceeds the bound (`limit` bytes when given: a pod's worker checks
    against the bound its driver read, sim.modes.learned_window; else ``limit_bytes()``)."""
    lim = limit_bytes() if limit is None else limit
    if est.total > lim:
        raise InputError(refusal(est, what=what, change=change, lim=lim), where=where)


@dataclass(frozen=True)
class Need:
    """A run's estimate with what it is, the setting to change and where that setting lives: what `check`
    refuses with (a sweep's driver checks its points' needs before any runs: experiments.memory_fit)."""

    est: Estimate
    what: str
    change: str
    where: str

    def check(self) -> None:
        check(self.est, what=self.what, change=self.change, where=self.where)


def synthetic_estimate(scfg) -> Estimate:
    """Generating the built-in synthetic workload (before it exists) with dense block ids: nothing is
    stored per block (trace.prefix), so it follows the requests only."""
    n = int(scfg.requests)
    e = Estimate()
    e.add("workload", n * WORKLOAD_PER_REQ_B)
    e.add("generation", n * GEN_PER_REQ_B)
    return e


@dataclass(frozen=True)
class WorkloadSize:
    """What an estimate reads of a workload, so that a part of one (a pod) is estimated before it exists."""

    requests: int
    nbytes: int
    accesses: int  # block accesses (the CSR's length)
    own_blocks: int  # blocks of the parent form's own slices (the CSR's length when not compact)
    compact: bool
    renumber: bool  # its stored ids need renumbering to 0, 1, 2... (not dense, not already in that order)

    @classmethod
    def of(cls, w) -> WorkloadSize:
        from trace.prefix import numbered_in_order

        pb = w.prefix_blocks()
        renumber = not pb.dense and not numbered_in_order(pb.ids_stored())
        return cls(len(w), w.nbytes(), w.total_blocks, pb.n_own(), w.compact, renumber)


def _per_own_block(w, nbytes: int) -> int:
    """`nbytes` per own block of `w`'s parent form, plus renumbering its ids when they are stored and not
    already 0, 1, 2... (a loaded trace in distinct form usually is: trace.reparent)."""
    s = w if isinstance(w, WorkloadSize) else WorkloadSize.of(w)
    return s.own_blocks * (nbytes + (RENUMBER_B if s.renumber else 0))


def oracle_estimate(w, compact: bool = False, sampled: int | None = None, buckets: int = 0,
                    session_scope: bool = False) -> Estimate:
    """The oracle's bounds over workload `w`: per-access arrays (it follows accesses), or with `compact`
    the Belady method on the parent form (sim.oracle.compact: per distinct block and per request), or
    with `sampled` per-access arrays of that many requests (audit's samples; `buckets` pools besides
    the whole trace, whose rows are expanded). `buckets`: the pools that are neither empty nor the whole
    trace; `session_scope`: the parent form re-keyed per session (``--scope session``)."""
    e = Estimate()
    e.add("workload", w.nbytes())
    if sampled is not None:
        per_req = w.total_blocks / max(1, len(w))
        e.add("per-access arrays", min(len(w), sampled) * (1 + buckets) * per_req * ORACLE_PER_ACCESS_B)
        if buckets:
            e.add("bucket rows", w.total_blocks * ID_B)
    elif compact:
        e.add("per-block arrays", _per_own_block(w, ORACLE_COMPACT_BLOCK_B))
        e.add("next-use steps", len(w) * NEXT_USE_PER_REQ_B)
        if buckets:  # the buckets' pools (Workload.select: parent form), held together; bounded one at a time
            e.add("bucket pools", w.nbytes())
        if session_scope:
            e.add("session scope", _per_own_block(w, ORACLE_SESSION_SCOPE_B))
    else:
        e.add("per-access arrays", w.total_blocks * ORACLE_PER_ACCESS_B)
    return e


def learned_window_rows(s: WorkloadSize) -> int:
    """Rows the online learned policy's training window is assumed to hold (see LEARNED_HORIZON_ROWS):
    the assumed horizon, ``max_rows`` and one retraining interval of accesses, at most every access."""
    per_req = s.accesses / max(1, s.requests)
    rows = LEARNED_HORIZON_ROWS + LEARNED_MAX_ROWS + int(LEARNED_RETRAIN_EVERY * per_req)
    return min(s.accesses, rows)


LEARNED_WINDOW = "learned training window"  # the part the exact window replaces
AT_ONCE = "pods at once: "  # a partitioned run's parts of its largest pod, once per pod at once


def one_pod_b(est: Estimate, at_once: int) -> float:
    """One pod's worker in a partitioned run's estimate (sim.modes.runner._partition_estimate): the largest
    pod's parts counted once, in a process of its own. A pod's task asks Ray for this much memory."""
    pod = sum(b for k, b in est.parts.items() if k.startswith(AT_ONCE) and k != AT_ONCE + "base")
    return pod / max(1, at_once) + BASE_B


@runtime_checkable
class HoldsTrainingWindow(Protocol):
    """A policy that holds training rows, their most at once known once it is built (the online learned
    policy, after its first pass: learned.policy.Learned)."""

    def training_window_rows(self) -> int: ...


def with_exact_window(est: Estimate, rows: int, *, part: str = LEARNED_WINDOW, copies: int = 1) -> Estimate:
    """`est` with its assumed learned training window (``learned_window_rows``) replaced by the exact one:
    `rows`, the most rows the online learned policy holds at once, at LEARNED_ROW_B a row, `copies` times,
    under `part` (a partitioned run counts its largest pod's window once per pod at once, under AT_ONCE +
    LEARNED_WINDOW: a pod's exact window stands for each of them). Every other part is kept as the
    estimate counted it."""
    if part not in est.parts:
        raise ValueError(f"the estimate counts no {part}")
    parts = dict(est.parts)
    parts[part] = float(copies * rows * LEARNED_ROW_B)
    return Estimate(parts)


def span_in_flight(arrival_s, time_in_system_s, block_offsets) -> tuple[int, int]:
    """The most arrivals within one request's time in system, and the most block accesses they have: max over
    i of #{j >= i: arrival_j <= arrival_i + time_in_system_i} and of those requests' accesses (`arrival_s`
    ascending, `block_offsets` the workload's, n + 1 of them). A timed run holds its row blocks (and, releasing
    them, its learned priorities) from its oldest request in flight on, so this bounds what it holds. Computed
    a million requests at a time (no array a request)."""
    import numpy as np

    n = len(arrival_s)
    most = (0, 0)
    for lo in range(0, n, ESTIMATE_CHUNK):
        hi = min(n, lo + ESTIMATE_CHUNK)
        end = np.searchsorted(arrival_s, arrival_s[lo:hi] + time_in_system_s[lo:hi], side="right")
        most = (max(most[0], int((end - np.arange(lo, hi)).max())),
                max(most[1], int((block_offsets[end] - block_offsets[lo:hi]).max())))
    return most


def fluid_wait_s(arrival_s, work_s):
    """The wait each arrival sees in a fluid FIFO queue that drains one second of work a second (Lindley's
    recursion W_i = max(0, W_{i-1} + work_{i-1} - (arrival_i - arrival_{i-1})), W_0 = 0, as S_i - min_{k<=i} S_k
    over the running sum S of work minus gaps). With each request's work its share of the pool's busy time (the
    offered load's), the queue builds up in a trace's bursts even when the whole trace's load is under 1, and
    grows by load - 1 seconds a second when it is over. A float64 array a request, computed a million at a time."""
    import numpy as np

    n = len(arrival_s)
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    total, low, prev_t, prev_x = 0.0, 0.0, float(arrival_s[0]), 0.0
    for lo in range(0, n, ESTIMATE_CHUNK):
        hi = min(n, lo + ESTIMATE_CHUNK)
        t = np.asarray(arrival_s[lo:hi], dtype=np.float64)
        x = np.asarray(work_s[lo:hi], dtype=np.float64)
        u = np.empty(hi - lo)
        u[0] = prev_x - (t[0] - prev_t)
        u[1:] = x[:-1] - np.diff(t)
        run = total + np.cumsum(u)
        mins = np.minimum(np.minimum.accumulate(run), low)
        out[lo:hi] = run - mins
        total, low, prev_t, prev_x = float(run[-1]), float(mins[-1]), float(t[-1]), float(x[-1])
    return out


def run_estimate(w, *, mode: str, timing: bool, per_access: bool, slots: int, cluster_compiled: bool = False,
                 runs: int = 1, next_use_steps: bool = False, learned: str | None = None,
                 learned_widest: int | None = None, streamed_rows: bool = False,
                 rows_span: int | None = None, learned_span: int = 0) -> Estimate:
    """A replay of workload `w` (a trace.Workload, already re-blocked): `per_access` when the policy or
    engine reads per-access arrays (or the CSR gets expanded); `slots`: the cache slots the engine
    may fill (capacity, bounded by the distinct blocks); `next_use_steps`: Belady reads its steps;
    `learned`: "model" (a model file) or "online" when the learned policy runs (both stream their
    features; online adds its training window); `learned_widest`: the most blocks of one request when the
    replay releases the learned priorities behind its requests (LEARNED_RELEASED_POSITIONS; None: it keeps one
    per access), `learned_span`: the accesses of the requests in flight it holds them for (a timed replay
    releases behind the oldest between arrival and first token: span_in_flight; 0 hit-rate-only);
    `streamed_rows`: the run streams its per-request rows (sim.modes.result_rows; counted for a hit-rate-only run
    as one block, for a timed one as the blocks `rows_span` requests cover, TIME_IN_SYSTEM_MARGIN; without a span,
    every row).
    `w` may be a WorkloadSize (a pod's share, sim.modes.partition.pod_sizes)."""
    s = w if isinstance(w, WorkloadSize) else WorkloadSize.of(w)
    n = s.requests
    e = Estimate()
    e.add("workload", s.nbytes)
    per_req = RUN_PER_REQ_B[mode + ("_timed" if timing else "")]
    if streamed_rows and (not timing or rows_span is not None):
        from sim.modes.pd.finished import PD_COLUMNS
        from sim.modes.result_rows import CLUSTER_COLUMNS, COLUMNS, ROW_BLOCK, row_bytes

        row = row_bytes({"single": COLUMNS, "cluster": CLUSTER_COLUMNS, "pd": PD_COLUMNS}[mode], timing)
        # hit-rate-only: one block; timed: the blocks its requests in flight span, partial blocks at both ends
        held = min(n, ROW_BLOCK if rows_span is None or not timing else rows_span + 2 * ROW_BLOCK)
        # a single-node run's rows are freed before the next policy's run
        e.add("per-request results", n * (per_req - row) * (1 if mode == "single" else runs) + held * row)
    else:
        e.add("per-request results", n * per_req * runs)
    if per_access and s.compact:
        e.add("per-access arrays", s.accesses * (PER_ACCESS_B + ID_B))
    elif per_access:
        e.add("per-access arrays", s.accesses * PER_ACCESS_B)
    if learned in ("model", "online"):
        e.add("learned tracker", s.own_blocks * (LEARNED_BLOCK_B + (ID_B if s.renumber else 0))
              + n * LEARNED_PER_REQ_B)
        held = s.accesses if learned_widest is None else \
            LEARNED_RELEASED_POSITIONS + learned_span + 2 * learned_widest
        e.add("learned priorities", min(s.accesses, held) * LEARNED_MODEL_PER_ACCESS_B)
    if learned == "online":
        e.add(LEARNED_WINDOW, learned_window_rows(s) * LEARNED_ROW_B)
    if next_use_steps:
        e.add("next-use steps", _per_own_block(s, NEXT_USE_BLOCK_B) + n * NEXT_USE_PER_REQ_B)
    if cluster_compiled:
        e.add("cluster block records", _per_own_block(s, CLUSTER_BLOCK_B))
    per_slot = ((CLUSTER_COMPILED_SLOT_B if cluster_compiled else CLUSTER_SLOT_B) if mode == "cluster"
                else PD_SLOT_B if mode == "pd" else SLOT_B)
    e.add("cache slots", slots * per_slot)
    return e


def lists_in_flight_b(w, in_flight: int) -> float:
    """The Python block lists of `in_flight` requests of workload `w` (a WorkloadSize or Workload) at its mean
    blocks a request: what a timed replay on the Python caches holds between a request's arrival and its
    store (sim.modes.common.block_lists)."""
    s = w if isinstance(w, WorkloadSize) else WorkloadSize.of(w)
    return min(in_flight, s.requests) * (s.accesses / max(1, s.requests)) * PY_BLOCK_B


def pd_estimate(w, *, slots: dict[str, int], in_flight: int, per_access: bool, learned: str | None = None,
                input_nbytes: int = 0, rows_span: int | None = None, learned_widest: int | None = None,
                learned_span: int = 0, tree_slots: dict[str, int] | None = None) -> tuple[str, Estimate]:
    """``run --mode pd`` of workload `w` (prepared: re-blocked, only the requests a replica holds): the
    deployments in `slots` (kind -> the blocks its Python caches can hold, PDSetup.cache_slots) run one
    after the other, each freed before the next starts, so the peak is the larger one's. Each holds a
    Req per request, its caches, the block lists of `in_flight` requests (bounded by the caller) and,
    when `per_access` (a policy reading sim.policies.base.AccessContext's per-access arrays: Belady, the
    selective write), those arrays. `input_nbytes`: the workload as given when prepare made a copy. `rows_span`:
    a deployment that streams its rows holds the blocks that many requests span (run_estimate; None: it keeps
    every row). `learned_widest`, `learned_span`: as run_estimate (the deployments release the learned priorities
    behind their oldest request not done); then each radix tree slot (`tree_slots`, by kind) may keep a
    position's priority (LEARNED_KEPT_B). Returns (the deployment at the peak, its estimate)."""
    s = w if isinstance(w, WorkloadSize) else WorkloadSize.of(w)
    best: tuple[str, Estimate] | None = None
    for kind, n_slots in slots.items():
        e = run_estimate(s, mode="pd", timing=True, per_access=per_access, slots=n_slots, learned=learned,
                         streamed_rows=rows_span is not None, rows_span=rows_span, learned_widest=learned_widest,
                         learned_span=learned_span)
        if learned and learned_widest is not None and tree_slots:
            e.add("learned kept positions", tree_slots[kind] * LEARNED_KEPT_B)
        if input_nbytes:
            e.add("workload", input_nbytes)
        e.add("block lists in flight", lists_in_flight_b(s, in_flight))
        if best is None or e.total > best[1].total:
            best = (kind, e)
    if best is None:
        raise ValueError("pd_estimate needs at least one deployment")
    return best
