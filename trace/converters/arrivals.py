"""When each converted request arrives: the dataset's own times, or a seeded session process.

Dataset times are used when no ``--session-rate`` is given and every converted
conversation has a start time (a record-level ``timestamp`` or timestamps on
its messages); a turn whose user message has a time arrives then (never
before the previous turn of its session). Otherwise sessions start as a
Poisson process of ``--session-rate`` sessions/s (the first at 0), and turn
k+1 arrives after turn k's reply (``output_tokens / reply_tokens_s``) plus a
think time drawn from a lognormal with mean ``--think-time-s`` and log-space
spread sigma = THINK_SIGMA (median = mean * exp(-sigma^2 / 2), about 0.61 x
the mean). Session gaps and think times come from two streams of one seed,
so the session starts do not move when turn counts change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_SESSION_RATE = 1.0  # sessions per second
DEFAULT_THINK_TIME_S = 30.0  # mean think time between a reply and the next user message
DEFAULT_REPLY_TOKENS_S = 50.0  # assumed decode speed, to place the end of a reply
THINK_SIGMA = 1.0


@dataclass(frozen=True)
class ArrivalModel:
    session_rate: float = DEFAULT_SESSION_RATE
    think_time_s: float = DEFAULT_THINK_TIME_S
    reply_tokens_s: float = DEFAULT_REPLY_TOKENS_S
    seed: int = 0
    use_dataset_times: bool = True  # False when --session-rate was given

    def describe(self, source: str) -> dict:
        d: dict = {"source": source, "reply_tokens_s": self.reply_tokens_s, "seed": self.seed,
                   "think_time_s": self.think_time_s,
                   "think_time_distribution": f"lognormal, mean {self.think_time_s:g} s, sigma {THINK_SIGMA:g}"}
        if source == "poisson":
            d["session_rate_sessions_s"] = self.session_rate
        return d


def assign_arrivals(
    turn_counts: list[int],
    outputs: np.ndarray,
    dataset_start_s: list[float | None],
    dataset_turn_s: list[float | None],
    model: ArrivalModel,
) -> tuple[np.ndarray, str]:
    """Arrival ms of every request (sessions in order, turns in order) and the source used ("dataset"/"poisson").

    `outputs` and `dataset_turn_s` are per request; `turn_counts` and
    `dataset_start_s` per session.
    """
    n_sess = len(turn_counts)
    use_data = model.use_dataset_times and n_sess > 0 and all(s is not None for s in dataset_start_s)
    root = np.random.SeedSequence(model.seed)
    gap_rng, think_rng = (np.random.default_rng(s) for s in root.spawn(2))
    if use_data:
        t0 = min(s for s in dataset_start_s if s is not None)
        starts = np.array([s - t0 for s in dataset_start_s if s is not None], dtype=np.float64)
    else:
        t0 = 0.0
        gaps = gap_rng.exponential(1.0 / model.session_rate, size=n_sess)
        starts = np.zeros(n_sess)
        if n_sess > 1:
            np.cumsum(gaps[:-1], out=starts[1:])
    n_req = len(outputs)
    mu = math.log(model.think_time_s) - THINK_SIGMA**2 / 2 if model.think_time_s > 0 else 0.0
    think = (think_rng.lognormal(mu, THINK_SIGMA, size=n_req) if model.think_time_s > 0
             else np.zeros(n_req))
    reply = np.asarray(outputs, dtype=np.float64) / model.reply_tokens_s
    arrival = np.empty(n_req, dtype=np.float64)
    i = 0
    for s in range(n_sess):
        prev: float | None = None
        for _ in range(turn_counts[s]):
            own = dataset_turn_s[i] if use_data else None
            if own is not None:
                t = own - t0 if prev is None else max(prev, own - t0)
            elif prev is None:
                t = float(starts[s])
            else:
                t = prev + reply[i - 1] + think[i]
            arrival[i] = prev = t
            i += 1
    return arrival * 1000.0, "dataset" if use_data else "poisson"
