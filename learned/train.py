"""LightGBM training of the reuse model: offline from a trace, or online on the past.

The model is a binary classifier: P(block accessed again within ``horizon``
block accesses | features of this access) (see ``learned.labels`` and
``learned.features``). The policy turns it into an eviction priority.

* Offline (``train_offline``, ``python main.py learned train``): every access
  of a training trace is labelled (the trace is the past of the runs the
  model will serve) and the model is saved as a LightGBM text model file.
* Online (``learned.online.OnlineStream``): during a replay, every
  ``retrain_every`` requests the model is retrained on the accesses whose
  label is settled by then (as ``train_on_past`` on the whole matrix, the
  tests' reference in tests/learned/reference_online.py, defines it; the
  replay streams it), so it never sees the future of the replay.

Model file: LightGBM's own text format (loadable by LightGBM as is) with one
extra trailing line ``kvsim_learned={json}`` holding the horizon, the feature
names and how the model was trained.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from learned.features import FEATURES
from sim.errors import InputError

if TYPE_CHECKING:  # lightgbm is imported where a model is trained or loaded: it is slow to import
    import lightgbm as lgb

META_KEY = "kvsim_learned="
MIN_ROWS = 500  # fewer settled labels than this: not worth a model yet


@dataclass
class TrainParams:
    """LightGBM and labelling knobs (defaults: about 0.1 s per training of 50k rows)."""

    rounds: int = 30  # boosting rounds (trees)
    num_leaves: int = 15
    learning_rate: float = 0.1
    min_data_in_leaf: int = 50
    max_bin: int = 63  # feature histogram bins (LightGBM's 255 costs more and gained nothing here)
    max_rows: int = 50_000  # train on at most this many of the most recent settled rows (online)
    horizon: int | None = None  # label horizon in block accesses (None: from reuse distances)
    horizon_quantile: float = 0.9
    horizon_factor: float = 1.5
    # One thread: measured faster and steadier than two on a shared 2-core machine
    # (OpenMP spin-waits badly when the other core is busy).
    threads: int = 1
    seed: int = 0

    def lgb_params(self) -> dict:
        return {
            "objective": "binary",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "max_bin": self.max_bin,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }


@dataclass
class LearnedModel:
    """A trained booster plus what the policy needs to use it."""

    booster: lgb.Booster
    horizon: int
    meta: dict = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(reuse within horizon) for feature rows X (float64)."""
        if len(X) == 0:
            return np.zeros(0)
        # Dense rows give a dense array (the stubs also allow sparse and list results).
        return np.asarray(self.booster.predict(X, num_threads=1))

    def save(self, path: str | Path) -> Path:
        from sim.io_safe import atomic_write_text

        meta = {**self.meta, "horizon": self.horizon, "features": list(FEATURES)}
        text = self.booster.model_to_string()
        # Atomic: a failed or interrupted save never leaves a truncated model that loads.
        return atomic_write_text(path, text.rstrip("\n") + "\n" + META_KEY + json.dumps(meta, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        """Read a model written by ``save``; InputError naming the file if it is not one."""
        import lightgbm as lgb

        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise InputError("model file not found (train one with `python main.py learned train`)", where=where)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read model file: {e}", where=where) from None
        meta_line = next((ln for ln in reversed(text.splitlines()) if ln.startswith(META_KEY)), None)
        if meta_line is None:
            raise InputError(
                f"no `{META_KEY}` line: not a model written by `python main.py learned train`", where=where
            )
        try:
            meta = json.loads(meta_line[len(META_KEY):])
            horizon = int(meta["horizon"])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"bad `{META_KEY}` line: {e}", where=where) from None
        if meta.get("features") != list(FEATURES):
            raise InputError(
                f"model features {meta.get('features')} differ from this version's {list(FEATURES)}; retrain it",
                where=where,
            )
        try:
            booster = lgb.Booster(model_str=text)
        except Exception as e:  # LightGBM raises its own error type with a C message
            raise InputError(f"LightGBM cannot parse the model: {e}", where=where) from None
        if booster.num_feature() != len(FEATURES):
            raise InputError(f"model has {booster.num_feature()} features, expected {len(FEATURES)}", where=where)
        return cls(booster=booster, horizon=horizon, meta=meta)


def fit(X: np.ndarray, y: np.ndarray, horizon: int, params: TrainParams, **meta) -> LearnedModel:
    """Train the classifier on rows X with 0/1 labels y."""
    import lightgbm as lgb

    t0 = time.perf_counter()
    ds = lgb.Dataset(X, y, feature_name=list(FEATURES), free_raw_data=True,
                     params={"max_bin": params.max_bin, "verbose": -1})
    booster = lgb.train(params.lgb_params(), ds, num_boost_round=params.rounds)
    train_s = time.perf_counter() - t0
    info = {
        "rows": int(len(y)),
        "positive_rate": float(y.mean()) if len(y) else 0.0,
        "train_s": train_s,
        "params": asdict(params),
        **meta,
    }
    return LearnedModel(booster=booster, horizon=int(horizon), meta=info)


def fit_settled(X: np.ndarray, y: np.ndarray, horizon: int, params: TrainParams, **meta) -> LearnedModel | None:
    """``fit`` on settled rows, or None when they are too few or all of one class (no model is better)."""
    if len(y) < MIN_ROWS or y.min() == y.max():
        return None
    return fit(X, y, horizon, params, **meta)


def auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (rank statistic, ties averaged); None if one class only."""
    y = np.asarray(y) > 0.5
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s))
    # average ranks over ties
    bounds = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(s)]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


class _Window:
    """The rows a training reads - positions [lo, hi), the latest ``max_rows`` whose label is settled -
    and their labels, filled while the stream passes: position p's label is 1 when the access q whose
    previous access of the block is p comes within ``horizon`` (next_use[p] = q, as the tests' reference
    ``reuse_labels`` has it)."""

    def __init__(self, horizon: int, upto: int, max_rows: int) -> None:
        self.horizon = horizon
        self.hi = max(0, upto - horizon)
        self.lo = max(0, self.hi - max_rows)
        self.X = np.zeros((self.hi - self.lo, len(FEATURES)), dtype=np.float32)
        self.y = np.zeros(self.hi - self.lo, dtype=np.float32)

    def feed(self, pos: int, X: np.ndarray, gaps: np.ndarray) -> None:
        """A chunk of rows from position `pos` with their reuse distances (NaN: first access)."""
        a, b = max(self.lo, pos), min(self.hi, pos + len(X))
        if a < b:
            self.X[a - self.lo:b - self.lo] = X[a - pos:b - pos]
        _label(self.y, self.lo, self.hi, pos, gaps, self.horizon)


def reused(lo: int, hi: int, pos: int, gaps: np.ndarray, horizon: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """The previous accesses p in [lo, hi) that the chunk at position `pos` reuses within `horizon`, and
    their reuse distances: access q's previous access of its block is q - gaps[q] (NaN: a first access)."""
    q = np.flatnonzero(gaps <= horizon)  # NaN compares False
    g = gaps[q]
    prev = pos + q - g.astype(np.int64)
    keep = (prev >= lo) & (prev < hi)
    return prev[keep], g[keep]


def _label(y: np.ndarray, lo: int, hi: int, pos: int, gaps: np.ndarray, horizon: int) -> None:
    """Set y[p - lo] = 1 for the previous accesses p in [lo, hi) reused within `horizon` by this chunk."""
    prev, _ = reused(lo, hi, pos, gaps, horizon)
    y[prev - lo] = 1.0


def _fit_window(win: _Window | None, params: TrainParams, **meta) -> LearnedModel | None:
    return None if win is None else fit_settled(win.X, win.y, win.horizon, params, **meta)


def train_offline(workload, params: TrainParams | None = None, *, validation: float = 0.2,
                  chunk: int = 1 << 18) -> tuple[LearnedModel, dict]:
    """Train on the accesses of `workload` (a re-blocked trace.Workload) labelled within it.

    The last ``validation`` fraction of requests is held out first to report
    a time-split AUC (model trained on the earlier part only), then the
    saved model is trained on the whole workload. Returns (model, summary).

    Two passes of streamed features (``learned.features.FeatureStream``), so memory follows the blocks
    plus the training rows (``max_rows``) and, for the AUC, a score and a label per held-out access -
    never the whole trace's rows: the first pass counts reuse distances (the horizons), the second keeps
    the rows of each training window, labels them from the reuse distances of later accesses, trains the
    validation model when the stream reaches the cut and scores the held-out accesses as they pass.
    The same model, horizon and AUC as training on the whole trace's matrix (``train_on_past``, the tests'
    reference in tests/learned/reference_online.py).
    """
    from learned.features import FeatureStream
    from learned.labels import GapCounts, horizon_from_counts

    params = params or TrainParams()
    t0 = time.perf_counter()
    n = int(workload.total_blocks)
    n_req = len(workload)
    validate = 0 < validation < 1 and n_req > 1
    cut_req = int(n_req * (1 - validation)) if validate else n_req
    cut = int(workload.block_offsets[cut_req])

    def horizon(counts: GapCounts) -> int | None:
        return params.horizon or horizon_from_counts(counts, quantile=params.horizon_quantile,
                                                     factor=params.horizon_factor)

    # pass 1: reuse distances completed before the cut and before the end
    before_cut, after_cut = GapCounts(), GapCounts()
    fs = FeatureStream(workload)
    for _pos, _ in fs.chunks_until(cut_req, chunk):
        before_cut.add(fs.reuse_gaps())
    for _pos, _ in fs.chunks_until(n_req, chunk):
        after_cut.add(fs.reuse_gaps())
    h_cut = horizon(before_cut) if validate else None
    after_cut.merge(before_cut)
    h_all = horizon(after_cut)
    feat_s = time.perf_counter() - t0

    # pass 2: the training windows, the validation model at the cut, the held-out scores
    final = _Window(h_all, n, params.max_rows) if h_all is not None else None
    early = _Window(h_cut, cut, params.max_rows) if h_cut is not None else None
    held_p = np.zeros(n - cut)
    held_y = np.zeros(n - cut, dtype=np.float32)
    early_model: LearnedModel | None = None
    fs = FeatureStream(workload)
    for pos, X in fs.chunks_until(cut_req, chunk):
        gaps = fs.reuse_gaps()
        for win in (final, early):
            if win is not None:
                win.feed(pos, X, gaps)
    early_model = _fit_window(early, params)
    for pos, X in fs.chunks_until(n_req, chunk):
        gaps = fs.reuse_gaps()
        if final is not None:
            final.feed(pos, X, gaps)
        if early_model is not None:
            held_p[pos - cut:pos - cut + len(X)] = early_model.predict(X)
            _label(held_y, cut, n, pos, gaps, early_model.horizon)
    summary: dict = {"requests": n_req, "accesses": n, "block_tokens": workload.block_tokens,
                     "features_s": feat_s}
    if early_model is not None:
        summary["validation_auc"] = auc(held_y, held_p)
        summary["validation_rows"] = int(n - cut)
    del held_p, held_y
    # the final window ends `horizon` before the end: only accesses whose horizon ends inside the trace
    # are labelled (the last ones might be reused after the trace ends, so their "not reused" is not known)
    model = _fit_window(final, params, trained_on=workload.name, block_tokens=workload.block_tokens)
    if model is None:
        raise InputError(
            f"too little reuse to learn from: {n} block accesses, need at least {MIN_ROWS} labelled "
            "accesses with both reused and not-reused blocks",
            where=workload.name,
        )
    summary.update(
        horizon=model.horizon, rows=model.meta["rows"], positive_rate=model.meta["positive_rate"],
        train_s=model.meta["train_s"], total_s=time.perf_counter() - t0,
    )
    model.meta["summary"] = {k: v for k, v in summary.items() if k != "features_s"}
    return model, summary


def train_from_config(cfg, out: str | Path, params: TrainParams | None = None, *, workload=None) -> dict:
    """`python main.py learned train`: the configured workload (trace or synthetic) -> model file.

    The workload is re-blocked to ``cache.block_tokens`` like a run would,
    so the model's distances are in the blocks the run will use.
    """
    from sim.modes.common import simulated_workload
    from trace.source import workload_from_config

    load_stats = None
    if workload is None:
        try:
            workload, load_stats = workload_from_config(cfg)
        except ModuleNotFoundError as e:
            if e.name != "trace.synthetic":
                raise
            raise InputError("no trace given and the synthetic generator is not available", where="--trace") from None
    if len(workload) == 0:
        raise InputError("the workload has no requests", where=cfg.trace.path or "synthetic")
    w = simulated_workload(cfg, workload)
    params = params or TrainParams(seed=cfg.seed)
    model, summary = train_offline(w, params)
    path = model.save(out)
    summary["out"] = str(path)
    summary["workload"] = w.name
    if load_stats is not None:
        summary["load"] = load_stats.to_dict()
    return summary
