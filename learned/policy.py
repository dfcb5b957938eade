"""The ``learned`` eviction policy: evict the block with the lowest predicted reuse value.

Each access ``pos`` gets one score, P(reuse within H accesses), from the
LightGBM model (``learned.train``) on its features (``learned.features``),
and the block's eviction priority becomes

    priority = pos + bonus x H x P(reuse within H)

i.e. its last access position pushed into the future by the reuse it is
expected to have. ``victim()`` evicts the lowest priority: a block the
model gives up on ages out like in LRU, from the moment of its access; a
block the model believes in stays up to ``bonus x H`` accesses longer. With
no model yet (online mode before its first training) every P is 0 and the
policy is exactly LRU. The priority of a block does not change until the
block is accessed again, so one min-heap with lazy invalidation (stale
entries skipped when they surface, rebuilt when they outnumber live ones)
gives O(log n) touch/insert/victim.

Inference never runs per eviction. Scores are computed ahead in chunks of
consecutive access positions, one LightGBM call per chunk (features of an
access depend only on the past, so scoring a chunk early changes nothing),
and shared by every tier of the run (each worker's HBM, DRAM, SSD: the
score is a property of the access, not of the tier).

Where the model comes from (params, from config ``policies.*``):

* ``learned_model`` (``policies.learned_model``, ``run --model FILE``): a model
  file from ``python main.py learned train``; scores use it throughout. The
  features are streamed (``learned.features.FeatureStream``): each chunk of
  whole requests is featurised from the carried per-block tracker, scored and
  dropped, so nothing but the priorities (8 bytes an access) follows the
  accesses, and no per-access array of the context is built (in either mode:
  the victim choice reads the positions the caches pass in).
* otherwise online: the model is retrained every ``retrain_every`` requests
  (``policies.learned_retrain_every``) on the accesses whose labels are
  settled by then, skipping a retraining point when fewer than
  ``retrain_min_accesses`` (default 20,000) block accesses passed since the
  previous one; chunks never straddle a retraining point, so every score
  comes from a model trained on the past of its access only. The features
  are streamed too (``learned.online``): a first pass counts reuse
  distances for every retraining's horizon, so the replay keeps only the
  rows a training still reads (about horizon + ``max_rows``) with their
  next-access distances, never the whole trace's rows or next uses.

Other params: ``bonus`` (default 1.0), ``model`` (a ``LearnedModel`` object,
for programmatic use), ``train_params`` (a ``TrainParams``). Without an
AccessContext the policy is LRU.
"""
from __future__ import annotations

import time
import weakref
from array import array
from heapq import heapify, heappop, heappush
from pathlib import Path

import numpy as np

from learned.features import FeatureStream, context_stream
from learned.online import OnlineStream
from learned.train import LearnedModel, TrainParams
from sim.errors import InputError
from sim.policies.base import AccessContext, Policy, register

CHUNK = 16384  # access positions scored per LightGBM call
RELEASE_STEP = 65536  # released positions dropped at once (Scorer.release)
DEFAULT_RETRAIN_EVERY = 2000  # requests
# ... and at least this many block accesses since the previous training, so that a stream
# of one-block requests (a bare key sequence) is not retrained every few thousand accesses.
DEFAULT_RETRAIN_MIN_ACCESSES = 20_000


class Scorer:
    """Eviction priorities of a workload's accesses, computed chunk by chunk on demand."""

    def __init__(
        self,
        ctx: AccessContext,
        model: LearnedModel | None = None,
        *,
        retrain_every: int = DEFAULT_RETRAIN_EVERY,
        retrain_min_accesses: int = DEFAULT_RETRAIN_MIN_ACCESSES,
        bonus: float = 1.0,
        params: TrainParams | None = None,
        chunk: int = CHUNK,
    ) -> None:
        # no reference to ctx is kept: the shared scorers are keyed by their context and dropped with it
        # (shared_scorer), which a strong reference from here would keep alive for the life of the process
        self.bonus = float(bonus)
        self.chunk = int(chunk)
        self.model = model
        self.features_s = 0.0
        # Features chunk by chunk from the carried tracker, each chunk dropped once scored (memory follows
        # the blocks, not the accesses; learned.features); online, the trainer keeps the rows a training
        # still reads (learned.online).
        self.trainer: OnlineStream | None = None
        if model is None:
            t0 = time.perf_counter()
            self.trainer = OnlineStream(lambda: context_stream(ctx), retrain_every, retrain_min_accesses, params)
            self.features_s = time.perf_counter() - t0  # the first pass (reuse distances for the horizons)
            self.stream: FeatureStream = self.trainer.fs
        else:
            self.stream = context_stream(ctx)
        self.n = self.stream.n
        ctx.on_release(self.release)  # held weakly: the scorer still lives no longer than its context's entry
        self.prio = array("d")  # priority of each scored position from `base` on (8 bytes each, not a float object)
        self.base = 0  # the first position `prio` holds: those below were released (accesses_done)
        self.scored = 0  # positions [0, scored) have a priority
        # Priorities of released positions that victims carry to another tier: a victim's last position below
        # `base` is put here as it leaves its tier and read as it arrives in the next (within one request's
        # moves; cleared at the next release)
        self.carry: dict[int, float] = {}
        self.done = False  # a replay released every position (release)
        self.predict_s = 0.0
        self.predict_calls = 0

    def ensure(self, pos: int) -> None:
        """Score every position up to `pos` (retraining first when a retraining point is passed)."""
        if pos >= self.n or pos < 0:
            raise ValueError(f"learned: access position {pos} outside the AccessContext (0..{self.n - 1})")
        while self.scored <= pos:
            self._score_chunk()

    def _score_chunk(self) -> None:
        """The next chunk of whole requests (at least ``chunk`` accesses; online, never past a retraining
        point, so every score comes from a model trained on the past of its access only)."""
        t0 = time.perf_counter()
        if self.trainer is None:
            fs = self.stream
            start = fs.pos
            X = fs.take(fs.chunk_end(self.chunk))
            trained = 0.0
        else:
            train0 = self.trainer.train_s
            start, X = self.trainer.next_chunk(self.chunk)
            self.model = self.trainer.model
            trained = self.trainer.train_s - train0
        t1 = time.perf_counter()
        self.features_s += t1 - t0 - trained
        pri = np.arange(start, start + len(X), dtype=np.float64)
        if self.model is not None:  # no model yet: LRU order
            p = self.model.predict(X)
            self.predict_s += time.perf_counter() - t1
            self.predict_calls += 1
            pri = pri + (self.bonus * self.model.horizon) * p
        self.prio.frombytes(np.ascontiguousarray(pri, dtype=np.float64).tobytes())
        self.scored = start + len(X)

    def value(self, pos: int) -> float:
        """The priority of scored position `pos` (a released one only while a victim carries it)."""
        i = pos - self.base
        if i >= 0:
            return self.prio[i]
        p = self.carry.get(pos)
        if p is None:
            raise RuntimeError(f"learned: access position {pos} was released (accesses_done) and no victim carries "
                               "it: a replay read a position it had declared done")
        return p

    def release(self, pos: int) -> None:
        """AccessContext.accesses_done: drop the priorities below `pos` (in steps of at least RELEASE_STEP
        positions, so the array's move is amortised) and the carried ones."""
        self.carry.clear()
        self.done = pos >= self.n  # the replay's last request: a later run on this context needs a scorer of its own
        k = min(pos, self.scored) - self.base
        if k >= RELEASE_STEP:
            del self.prio[:k]
            self.base += k

    def stats(self) -> dict:
        t = self.trainer
        return {
            "mode": "online" if t is not None else "model",
            "features_s": self.features_s,
            "predict_s": self.predict_s,
            "predict_calls": self.predict_calls,
            "scored": self.scored,
            "train_s": t.train_s if t else 0.0,
            "trainings": t.trainings if t else 0,
            "horizon": self.model.horizon if self.model is not None else None,
        }


# ---------------------------------------------------------------- sharing

_SCORERS: dict[tuple, tuple[weakref.ref, Scorer]] = {}
_MODELS: dict[tuple, LearnedModel] = {}


def load_model(path: str | Path) -> LearnedModel:
    """Load a model file once per (path, mtime, size); every tier of a run shares it."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError:
        raise InputError("model file not found (train one with `python main.py learned train`)",
                         where=str(path)) from None
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    m = _MODELS.get(key)
    if m is None:
        m = LearnedModel.load(p)
        _MODELS.clear()  # keep one: a run uses one model
        _MODELS[key] = m
    return m


def shared_scorer(ctx: AccessContext, model: LearnedModel | None, retrain_every: int, bonus: float,
                  params: TrainParams | None, retrain_min_accesses: int = DEFAULT_RETRAIN_MIN_ACCESSES) -> Scorer:
    """The Scorer of (ctx, model, settings), created once and shared by every tier using them."""
    key = (id(ctx), id(model), int(retrain_every), int(retrain_min_accesses), float(bonus), repr(params))
    hit = _SCORERS.get(key)
    # one whose replay released every position served its run (a tier created later in the same run, as the
    # cluster's are, still gets the scorer its run shares)
    if hit is not None and hit[0]() is ctx and not hit[1].done:
        return hit[1]
    sc = Scorer(ctx, model, retrain_every=retrain_every, retrain_min_accesses=retrain_min_accesses, bonus=bonus,
                params=params)
    _SCORERS[key] = (weakref.ref(ctx), sc)
    weakref.finalize(ctx, _SCORERS.pop, key, None)
    return sc


# ---------------------------------------------------------------- policy

@register
class Learned(Policy):
    name = "learned"
    keeps_positions = True

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        super().__init__(capacity, ctx, **params)
        model = params.get("model")
        path = params.get("learned_model") or ""
        if model is None and path:
            model = load_model(path)
        every = params.get("retrain_every", params.get("learned_retrain_every")) or DEFAULT_RETRAIN_EVERY
        if int(every) < 1:
            raise ValueError("learned: retrain_every must be >= 1 request")
        min_acc = int(params.get("retrain_min_accesses", DEFAULT_RETRAIN_MIN_ACCESSES))
        if min_acc < 0:
            raise ValueError("learned: retrain_min_accesses must be >= 0")
        bonus = float(params.get("bonus", 1.0))
        if bonus < 0:
            raise ValueError("learned: bonus must be >= 0")
        self.scorer: Scorer | None = None
        if ctx is not None and ctx.n_accesses():
            self.scorer = shared_scorer(ctx, model, int(every), bonus, params.get("train_params"), min_acc)
        self._scored = 0  # this policy's view of scorer.scored (refreshed when it falls behind)
        # Residents never exceed the capacity, so a heap longer than this is mostly stale entries.
        self._heap_limit = 2 * capacity + 1024
        self._pos: dict[int, int] = {}  # resident key -> position of its latest access
        self._heap: list[tuple[float, int, int]] = []  # (priority, pos, key), lazily invalidated
        # key -> (position, priority) a radix tree set for a node it may insert long after (keep_position); dropped
        # when the key leaves (victim), one per tree node at most
        self._kept: dict[int, tuple[int, float]] = {}
        self._clock = 0  # LRU order when there is no context
        self.evictions = 0

    def training_window_rows(self) -> int:
        """The most training rows the online trainer holds at once (exact, known after its first pass; 0
        with a model file or without a context): what the run's memory estimate re-checks before the replay
        (sim.modes.memory.HoldsTrainingWindow)."""
        t = self.scorer.trainer if self.scorer is not None else None
        return t.window_rows() if t is not None else 0

    def _set(self, key: int, pos: int) -> None:
        sc = self.scorer
        if sc is None:
            self._clock += 1
            pos = self._clock  # no context: positions are not meaningful, keep LRU order
            prio = float(pos)
        else:
            if pos >= self._scored:
                sc.ensure(pos)
                self._scored = sc.scored
            i = pos - sc.base
            if i >= 0:
                prio = sc.prio[i]
            else:  # released: what a tree kept for this node's position, else a victim's carry (Scorer.value)
                kept = self._kept.get(key)
                prio = kept[1] if kept is not None and kept[0] == pos else sc.value(pos)
        self._pos[key] = pos
        heap = self._heap
        heappush(heap, (prio, pos, key))
        if len(heap) > self._heap_limit:
            self._compact()

    touch = _set
    insert = _set

    def keep_position(self, key: int, pos: int) -> None:
        sc = self.scorer
        if sc is None:
            return
        if pos >= self._scored:
            sc.ensure(pos)
            self._scored = sc.scored
        i = pos - sc.base  # a request in flight sets it: not released yet (else Scorer.value says so)
        self._kept[key] = (pos, sc.prio[i] if i >= 0 else sc.value(pos))

    def _compact(self) -> None:
        live = {}
        for prio, pos, key in self._heap:
            if self._pos.get(key) == pos:
                live[key] = (prio, pos, key)
        self._heap = list(live.values())
        heapify(self._heap)

    def victim(self) -> int:
        cur, heap = self._pos, self._heap
        if not cur:
            raise IndexError(f"{self.name}: victim() on an empty policy")
        sc = self.scorer
        while True:
            prio, pos, key = heappop(heap)
            if cur.get(key) == pos:
                del cur[key]
                self._kept.pop(key, None)
                self.evictions += 1
                if sc is not None and pos < sc.base:
                    sc.carry[pos] = prio  # released: the victim carries it to its next tier
                return key

    def remove(self, key: int) -> None:
        self._pos.pop(key, None)

    def priority(self, key: int) -> float:
        """Current eviction priority of resident `key` (lower leaves first; NaN without a context). A scan of
        the heap: for inspection, not for the replay."""
        pos = self._pos[key]
        if self.scorer is None:
            return float("nan")
        return next(p for p, q, k in self._heap if k == key and q == pos)

    def __contains__(self, key: int) -> bool:
        return key in self._pos

    def __len__(self) -> int:
        return len(self._pos)
