"""The online learned policy as it was computed before it was streamed (learned.online): the whole
feature matrix (``access_features``), the context's per-access next uses and requests, and a retraining
on ``train_on_past`` (``reuse_labels`` + the latest ``max_rows`` rows, horizon from
``horizon_from_past``) at each retraining point, chunks of positions never straddling one. Kept as the
reference the streamed form equals bit for bit (tests/learned/test_online_stream.py)."""
from __future__ import annotations

import numpy as np

from learned.features import access_features
from learned.train import LearnedModel, TrainParams, train_on_past
from sim.policies.base import AccessContext


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
