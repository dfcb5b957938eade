"""Fit a workload model to a hashed trace (``python main.py trace fit``).

What is learned, from the block ids and arrivals only (see README "Fit and scale"):

* **Prefix match.** Replaying the trace through an unlimited prefix cache,
  request i shares its first ``m_i`` blocks with earlier requests; its
  *attach* block is block ``m_i - 1`` and its *source* the latest earlier
  request holding that block.
* **Sessions.** With session ids in the trace they are used (parent = the
  session's previous request). Without, they are inferred from prefix
  chains: request i continues its source's session when it shares more than
  that session's shared root (``m_i > root depth``), i.e. it reuses the
  session's own context; otherwise it starts a new session whose root depth
  is ``m_i``. A session whose first request shares nothing (``m_i = 0``)
  takes as root depth the leading run of its blocks that later requests
  branch off (a block followed by two or more distinct blocks in the trace),
  so the session that introduces a shared prefix does not swallow every
  later session on it. Sharing more than a session's root with it (a
  shared document read in a new conversation, an edited history) cannot be
  told apart from a branch of that session; it is counted as a branch.
* **Roots** (shared prefixes: system prompts, documents) are the distinct
  attach blocks of session starts, each with its depth in blocks, its parent
  root (the deepest other root on its path) and its popularity (sessions
  starting from it). Every session is then assigned the deepest root on its
  first request's path, the session that introduced the root included.
* **Turns.** A continuing turn keeps ``m_i`` blocks of its parent's
  ``full = floor(input / block_tokens)`` full blocks: all of them
  (``extend_share``) or a fraction ``m_i / full`` (a branch: an edited or
  trimmed history); it then adds ``input_i - m_i * block_tokens`` new tokens.
  The first turn adds ``input - depth * block_tokens`` tokens after its root.
  Think time is the gap between a turn's arrival and its parent's.
* **Arrivals.** Session starts per ``bin_s`` bin relative to the mean
  (``rate_profile``), the coefficient of variation of the gaps between
  session starts after dividing out the local rate (``gap_cv``), and the
  warm-up (p99 session span) the generator runs before time 0 so its output
  starts in steady state, as a window cut from a running service does.

All distributions are empirical quantile tables (trace.fitmodel).
"""
from __future__ import annotations

import numpy as np

from trace.fitmodel import FIT_VERSION, quantile_table
from trace.workload import Workload

NO_PREFIX_MESSAGE = ("no prefix structure observed: no session starts with a block shared with an earlier request, "
                     "so no shared roots are modelled")


def _match_and_source(w: Workload) -> tuple[list[int], list[int]]:
    """Per request: blocks shared with earlier requests (leading run) and the latest request holding the last one."""
    ids = w.block_ids.tolist()
    offs = w.block_offsets.tolist()
    last: dict[int, int] = {}
    n = len(w)
    m = [0] * n
    src = [-1] * n
    for i in range(n):
        a, b = offs[i], offs[i + 1]
        j = a
        while j < b and ids[j] in last:
            j += 1
        m[i] = j - a
        if j > a:
            src[i] = last[ids[j - 1]]
        for k in range(a, b):
            last[ids[k]] = i
    return m, src


def _branching_blocks(w: Workload) -> set[int]:
    """Blocks followed by two or more distinct blocks somewhere in the trace (a prefix shared, then diverging)."""
    ids = w.block_ids
    if len(ids) < 2:
        return set()
    inner = np.ones(len(ids) - 1, dtype=bool)
    ends = w.block_offsets[1:-1] - 1  # the last block of a request has no child in it
    inner[ends[(ends >= 0) & (ends < len(inner))]] = False
    pairs = np.unique(np.stack([ids[:-1][inner], ids[1:][inner]]), axis=1)
    parents, counts = np.unique(pairs[0], return_counts=True)
    return set(parents[counts >= 2].tolist())


def _sessions(w: Workload, m: list[int], src: list[int]) -> tuple[list[int], list[int], list[int], list[int], bool]:
    """(session per request, parent request per request (-1 = first turn), first request per session,
    shared depth of each session's first request in blocks, inferred)."""
    n = len(w)
    sess = [0] * n
    parent = [-1] * n
    firsts: list[int] = []
    given = w.session_id.tolist()
    if n and min(given) >= 0:
        last_of: dict[int, int] = {}
        remap: dict[int, int] = {}
        for i, s in enumerate(given):
            if s in remap:
                sess[i] = remap[s]
                parent[i] = last_of[s]
            else:
                remap[s] = sess[i] = len(firsts)
                firsts.append(i)
            last_of[s] = i
        return sess, parent, firsts, [m[f] for f in firsts], False
    branching = _branching_blocks(w)
    ids = w.block_ids.tolist()
    offs = w.block_offsets.tolist()
    root_depth: list[int] = []
    for i in range(n):
        s = src[i]
        if s >= 0 and m[i] > root_depth[sess[s]]:
            sess[i] = sess[s]
            parent[i] = s
        else:
            sess[i] = len(firsts)
            firsts.append(i)
            d = m[i]
            if d == 0:  # nothing seen yet: its shared part is the leading run of blocks that branch later
                a, b = offs[i], offs[i + 1] - 1  # the last block has no child in this request
                while a + d < b and ids[a + d] in branching:
                    d += 1
            root_depth.append(d)
    return sess, parent, firsts, root_depth, True


def _roots(w: Workload, depth0: list[int], firsts: list[int]) -> tuple[list[dict], list[int], list[int]]:
    """Roots (id, depth, parent, sessions) and per session its root index (-1 none) and root depth."""
    ids = w.block_ids.tolist()
    offs = w.block_offsets.tolist()
    node_depth: dict[int, int] = {}  # attach block id -> depth in blocks
    for f, d in zip(firsts, depth0, strict=True):
        if d >= 1:
            node_depth.setdefault(ids[offs[f] + d - 1], d)
    s_root: list[int] = []
    for f in firsts:  # deepest root block on the first request's path
        a, b = offs[f], offs[f + 1]
        best = -1
        for k in range(a, b):
            nd = node_depth.get(ids[k])
            if nd is not None and nd == k - a + 1:
                best = ids[k]
        s_root.append(best)
    used = sorted({r for r in s_root if r >= 0}, key=lambda r: (node_depth[r], r))
    index = {r: k for k, r in enumerate(used)}
    path_of: dict[int, list[int]] = {}
    for f, r in zip(firsts, s_root, strict=True):
        if r >= 0 and r not in path_of:
            path_of[r] = ids[offs[f] : offs[f] + node_depth[r]]
    counts = np.bincount([index[r] for r in s_root if r >= 0], minlength=len(used)).tolist()
    roots = []
    for k, r in enumerate(used):
        parent = None
        for b in path_of[r][:-1]:
            if b in index:
                parent = index[b]
        roots.append({"id": k, "depth_blocks": int(node_depth[r]), "parent": parent, "sessions": int(counts[k])})
    s_idx = [index[r] if r >= 0 else -1 for r in s_root]
    s_depth = [node_depth[r] if r >= 0 else 0 for r in s_root]
    return roots, s_idx, s_depth


def _arrivals(t_s: np.ndarray, starts_s: np.ndarray, spans_s: np.ndarray, duration_s: float) -> dict:
    n_bins = max(1, min(200, int(duration_s // 60) or 1))
    bin_s = duration_s / n_bins if duration_s > 0 else 1.0
    t0 = float(t_s.min()) if len(t_s) else 0.0
    b = np.minimum(((starts_s - t0) / bin_s).astype(np.int64), n_bins - 1)
    per_bin = np.bincount(b, minlength=n_bins).astype(np.float64)
    profile = per_bin / per_bin.mean() if per_bin.sum() else np.ones(n_bins)
    rate = len(starts_s) / duration_s if duration_s > 0 else float(len(starts_s))
    # Gaps in "operational time": divided by the local rate, so a daily swing is not counted as burstiness.
    local = np.maximum(profile[b] * rate, 1e-12)
    gaps = np.diff(np.sort(starts_s)) * local[1:] if len(starts_s) > 2 else np.ones(2)
    cv = float(gaps.std() / gaps.mean()) if gaps.mean() > 0 else 1.0
    rb = np.minimum(((t_s - t0) / bin_s).astype(np.int64), n_bins - 1)
    req_bin = np.bincount(rb, minlength=n_bins).astype(np.float64)
    return {
        "session_rate_per_s": round(float(rate), 6),
        "request_rate_req_s": round(float(len(t_s) / duration_s), 6) if duration_s > 0 else None,
        "bin_s": round(float(bin_s), 3),
        "rate_profile": [round(float(x), 4) for x in profile],
        "gap_cv": round(cv, 4),
        "request_dispersion_index": round(float(req_bin.var() / req_bin.mean()), 3) if req_bin.mean() else None,
        "warmup_s": round(float(np.percentile(spans_s, 99)) if len(spans_s) else 0.0, 3),
    }


def fit_workload(w: Workload) -> dict:
    """The fit model of `w` as a plain dict (written by trace.fitmodel.save_fit)."""
    B = int(w.block_tokens)
    n = len(w)
    m, src = _match_and_source(w)
    sess, parent, firsts, depth0, inferred = _sessions(w, m, src)
    roots, s_root, s_depth = _roots(w, depth0, firsts)
    inp = w.input_tokens
    t_s = w.arrival_ms / 1000.0
    S = len(firsts)
    turns = np.bincount(np.asarray(sess, dtype=np.int64), minlength=S) if n else np.zeros(0, np.int64)
    first_idx = np.asarray(firsts, dtype=np.int64)
    first_new = inp[first_idx] - np.asarray(s_depth, dtype=np.int64) * B
    par = np.asarray(parent, dtype=np.int64)
    cont = np.flatnonzero(par >= 0)
    pc = par[cont]
    mc = np.asarray(m, dtype=np.int64)[cont]
    if len(cont) and not inferred:  # a given session's turn may share less, or more, than its previous turn
        mc = np.minimum(mc, inp[pc] // B)
    full_parent = np.maximum(inp[pc] // B, 1)
    extend = mc >= inp[pc] // B
    keep = mc[~extend] / full_parent[~extend]
    new_tok = inp[cont] - mc * B
    think = t_s[cont] - t_s[pc]
    last_t = np.full(S, -np.inf)
    if n:
        np.maximum.at(last_t, np.asarray(sess, dtype=np.int64), t_s)
    spans = last_t - t_s[first_idx] if S else np.zeros(0)
    duration = float(t_s.max() - t_s.min()) if n else 0.0
    observed = bool(roots)
    private = int(sum(1 for r in s_root if r < 0))
    notes = []
    if w.synthetic_blocks:
        notes.append("the trace's block ids were synthesized from token counts (no real hashes)")
    ps = {
        "observed": observed,
        "message": ("shared roots found at session starts" if observed else NO_PREFIX_MESSAGE)
        + (f"; {notes[0]}" if notes else ""),
        "roots": roots,
        "private_sessions": private,
    }
    rc = np.array([r["sessions"] for r in roots], dtype=np.float64)
    ps["summary"] = {
        "roots": len(roots),
        "sessions_on_roots_share": round(float(rc.sum() / S), 4) if S else 0.0,
        "max_depth_blocks": max((r["depth_blocks"] for r in roots), default=0),
        "top_root_share": round(float(rc.max() / S), 4) if len(rc) and S else 0.0,
        # Children of a root node that are roots or sessions: how widely the prefix fans out.
        "fan_out_mean_sessions": round(float(rc.mean()), 3) if len(rc) else 0.0,
    }
    return {
        "kvsim_fit": FIT_VERSION,
        "source": {"trace": w.name, "requests": n, "duration_s": round(duration, 3), "block_tokens": B,
                   "sessions": S, "sessions_inferred": inferred},
        "prefix_structure": ps,
        "sessions": {
            "count": S,
            "turns": {int(k): int(v) for k, v in enumerate(np.bincount(turns)) if k >= 1 and v},
            "turns_mean": round(float(turns.mean()), 4) if S else 0.0,
            "first_new_tokens": quantile_table(np.maximum(first_new, 1), 1),
            "think_time_s": quantile_table(think, 3) if len(think) else {"p0": 0.0, "p100": 0.0},
            "continuation": {
                "turns": int(len(cont)),
                "extend_share": round(float(extend.mean()), 4) if len(cont) else 1.0,
                "branch_keep_share": quantile_table(keep, 4) if len(keep) else {"p0": 1.0, "p100": 1.0},
                "new_tokens": quantile_table(np.maximum(new_tok, 1), 1) if len(cont) else {"p0": 1.0, "p100": 1.0},
            },
        },
        "output_tokens": quantile_table(w.output_tokens, 1),
        "arrivals": _arrivals(t_s, t_s[first_idx], spans, duration),
    }
