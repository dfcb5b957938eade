"""The learned policy as it was computed on the whole trace before it was streamed: the whole feature
matrix (``access_features``), the labels from the context's per-access next uses (``reuse_labels``,
horizon from ``horizon_from_past``), a training on the latest ``max_rows`` settled rows (``train_on_past``)
and the online mode retraining on it at each retraining point, chunks of positions never straddling one
(``reference_online``). Production streams all of it (``learned.features.FeatureStream``,
``learned.labels.GapCounts``, ``learned.train.train_offline``, ``learned.online.OnlineStream``); these
whole-trace forms are the definition the streamed code equals bit for bit
(tests/learned/test_online_stream.py, test_feature_stream.py, test_learned.py), moved here from
``learned.features``, ``learned.labels`` and ``learned.train`` when no production code called them any more."""
from __future__ import annotations

import numpy as np

from learned.features import N_FEATURES, context_stream
from learned.labels import MIN_HORIZON
from learned.train import LearnedModel, TrainParams, fit_settled
from sim.policies.base import NEVER, AccessContext


def access_features(ctx: AccessContext) -> np.ndarray:
    """float32 matrix (accesses x ``N_FEATURES``), one row per access, columns ``FEATURES``: every chunk
    of the context's workload, stacked (whole-trace memory: small workloads and tests)."""
    fs = context_stream(ctx)
    out = np.empty((fs.n, N_FEATURES), dtype=np.float32)  # filled chunk by chunk: 44 bytes an access
    for pos, X in fs.chunks(1 << 18):
        out[pos:pos + len(X)] = X
    return out


def next_use_distance(ctx: AccessContext) -> np.ndarray:
    """Block accesses until the next access of the same block (inf if none), float64."""
    n = len(ctx.next_use)
    d = (ctx.next_use - np.arange(n, dtype=np.int64)).astype(np.float64)
    d[ctx.next_use == NEVER] = np.inf
    return d


def reuse_labels(ctx: AccessContext, horizon: int, upto: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(positions, labels) settled before access ``upto`` (default: the whole workload).

    positions: every ``pos`` with ``pos + horizon < upto``; labels: 1.0 if the
    block was accessed again within ``horizon`` accesses, else 0.0 (float32).
    With ``upto=None`` every access is labelled (offline training on a trace
    that is wholly in the past of the run it will serve).
    """
    if horizon < 1:
        raise ValueError("horizon must be >= 1")
    n = len(ctx.next_use)
    if upto is None:
        last = n
    else:
        last = max(0, min(n, int(upto) - int(horizon)))
    pos = np.arange(last, dtype=np.int64)
    nu = ctx.next_use[:last]
    y = (nu != NEVER) & (nu - pos <= horizon)
    return pos, y.astype(np.float32)


def horizon_from_past(
    ctx: AccessContext, upto: int | None = None, *, quantile: float = 0.9, factor: float = 1.5
) -> int | None:
    """``factor`` x the ``quantile`` of reuse distances completed before ``upto``.

    Only reuses whose second access is before ``upto`` count (they are
    observed). None when none has been observed yet.
    """
    if not 0.0 < quantile <= 1.0 or factor <= 0:
        raise ValueError("quantile must be in (0, 1] and factor > 0")
    n = len(ctx.next_use)
    upto = n if upto is None else min(n, int(upto))
    nu = ctx.next_use[:upto]
    done = nu < upto  # NEVER is larger than any position
    if not done.any():
        return None
    d = nu[done] - np.flatnonzero(done)
    return max(MIN_HORIZON, int(round(factor * float(np.quantile(d, quantile)))))


def _recent(pos: np.ndarray, y: np.ndarray, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    if len(pos) > max_rows:
        return pos[-max_rows:], y[-max_rows:]
    return pos, y


def train_on_past(
    ctx: AccessContext, X: np.ndarray, upto: int, params: TrainParams, **meta
) -> LearnedModel | None:
    """Train on the accesses before ``upto`` whose labels are settled; None if too few.

    ``X`` is ``access_features(ctx)``.
    """
    horizon = params.horizon or horizon_from_past(
        ctx, upto, quantile=params.horizon_quantile, factor=params.horizon_factor
    )
    if horizon is None:
        return None
    pos, y = reuse_labels(ctx, horizon, upto)
    pos, y = _recent(pos, y, params.max_rows)
    return fit_settled(X[pos], y, horizon, params, **meta)


class ReferenceTrainer:
    """The former ``learned.train.OnlineTrainer``: retrain on what the replay has seen so far."""

    def __init__(self, ctx: AccessContext, X: np.ndarray, retrain_every: int, params: TrainParams | None = None):
        self.ctx, self.X, self.every = ctx, X, int(retrain_every)
        self.params = params or TrainParams()
        self.model: LearnedModel | None = None
        self.log: list[dict] = []

    def boundary(self, request: int) -> int:
        return (request // self.every + 1) * self.every

    def retrain(self, upto: int, request: int) -> LearnedModel | None:
        m = train_on_past(self.ctx, self.X, upto, self.params, trained_upto=int(upto))
        if m is not None:
            self.model = m
            self.log.append({"request": int(request), "rows": m.meta["rows"], "horizon": m.horizon})
        return self.model


def reference_online(ctx: AccessContext, retrain_every: int, retrain_min_accesses: int, bonus: float = 1.0,
                     params: TrainParams | None = None, chunk: int = 16384) -> tuple[np.ndarray, list[dict], list]:
    """(every access's priority, the trainings log, every model trained) of the former online Scorer."""
    X = access_features(ctx)
    n = len(ctx.next_use)
    tr = ReferenceTrainer(ctx, X, retrain_every, params)
    n_req = int(ctx.request[-1]) + 1 if n else 0
    starts = np.searchsorted(ctx.request, np.arange(n_req + 1))

    def pos_of(r: int) -> int:
        return int(starts[r]) if r < len(starts) - 1 else n

    models: list = []
    model = None
    nxt, last, scored = pos_of(tr.every), 0, 0
    prio = np.zeros(n)
    while scored < n:
        start = scored
        if start >= nxt:
            req = int(ctx.request[start])
            if start - last >= retrain_min_accesses:
                before = len(tr.log)
                model = tr.retrain(start, req)
                if len(tr.log) > before:
                    models.append(model)
                last = start
            nxt = pos_of(tr.boundary(req))
        hi = min(start + chunk, nxt if start < nxt else n, n)
        pri = np.arange(start, hi, dtype=np.float64)
        if model is not None:
            pri = pri + (bonus * model.horizon) * model.predict(X[start:hi])
        prio[start:hi] = pri
        scored = hi
    return prio, tr.log, models
