"""A multi-turn agentic workload with regular think times, written as a kvsim .npz trace.

`python -m experiments.agentic_trace --out agentic.npz [options]`

The built-in synthetic generator draws exponential think times (a session's
last gap says little about its next one). Agent loops are more regular: a
tool call or a scripted step takes about the same time every turn. Here
every session (``--sessions``, starts spread uniformly over
``--start-spread-s``) runs ``--turns`` turns; turn k+1 arrives a lognormal
think time after turn k (mean ``--think-s``, log-space sigma ``--sigma``:
0.1 = a spread of about 10%); each turn's prompt is the previous prompt +
its output + ``--new-tokens`` new tokens, behind a ``--system-tokens``
system prompt shared by every session. Block ids are per session (the
shared prompt's are common), 16-token blocks. Same seed, same trace.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trace.convert import write_workload
from trace.workload import Workload

BLOCK_TOKENS = 16


def agentic(sessions: int, turns: int, think_s: float, sigma: float, new_tokens: int, output_tokens: int,
            system_tokens: int, start_spread_s: float, seed: int = 0) -> Workload:
    """The workload described in the module docstring."""
    rng = np.random.default_rng(seed)
    mu = np.log(think_s) - sigma * sigma / 2  # lognormal with mean think_s
    starts = np.sort(rng.uniform(0.0, start_spread_s, sessions))
    sys_blocks = system_tokens // BLOCK_TOKENS
    rows: list[tuple[float, int, int, int, list[int]]] = []  # (arrival s, session, turn, input tokens, blocks)
    for s in range(sessions):
        t = float(starts[s])
        ctx = system_tokens
        for k in range(turns):
            ctx += new_tokens
            n_blocks = ctx // BLOCK_TOKENS
            own = [1_000_000 * (s + 1) + j for j in range(n_blocks - sys_blocks)]
            rows.append((t, s, k, ctx, list(range(sys_blocks)) + own))
            ctx += output_tokens
            t += float(rng.lognormal(mu, sigma))
    rows.sort(key=lambda r: (r[0], r[1]))
    w = Workload.from_requests([r[4] for r in rows], arrival_ms=np.array([r[0] * 1000 for r in rows]),
                               input_tokens=np.array([r[3] for r in rows], dtype=np.int64),
                               output_tokens=np.full(len(rows), output_tokens, dtype=np.int64),
                               session_id=np.array([r[1] for r in rows], dtype=np.int64),
                               block_tokens=BLOCK_TOKENS, name="agentic")
    w.turn = np.array([r[2] for r in rows], dtype=np.int64)
    return w


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.agentic_trace", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output .npz")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--think-s", type=float, default=20.0, help="mean think time between turns, s")
    ap.add_argument("--sigma", type=float, default=0.1, help="log-space sigma of the think time")
    ap.add_argument("--new-tokens", type=int, default=512, help="new tokens per turn")
    ap.add_argument("--output-tokens", type=int, default=128)
    ap.add_argument("--system-tokens", type=int, default=1024)
    ap.add_argument("--start-spread-s", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    w = agentic(a.sessions, a.turns, a.think_s, a.sigma, a.new_tokens, a.output_tokens, a.system_tokens,
                a.start_spread_s, a.seed)
    print(write_workload(w, Path(a.out), "npz"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
