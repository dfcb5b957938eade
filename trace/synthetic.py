"""Synthetic request streams with prefix-identifying block ids.

``generate(cfg, seed, name=None) -> Workload`` builds one of five workload
kinds from a :class:`sim.config.SyntheticCfg`:

``multi_turn``
    Conversations. Each session opens with one of ``system_prompts`` shared
    system prompts (chosen uniformly), then turn k's prompt is the whole
    previous context (prompt + output of turn k-1) plus new user tokens.
``system_prompt``
    Single-turn requests: one shared system prompt + unique user text.
``rag``
    Single-turn requests: system prompt + one of ``documents`` documents of
    ``document_tokens`` tokens (Zipf(``zipf_s``) popularity, rank 1 most
    popular) + a unique question. One document per request.
``multi_agent``
    Groups of ``agents`` agents. A group owns one prefix of
    ``shared_prefix_tokens`` tokens (task, tools, shared context; no system
    prompt in front of it) and each agent is then a multi-turn session of its
    own on top of that prefix. The agents of a group fan out together: the
    group's start takes one arrival and its other agents take the next ones.
``mixed``
    Request shares ``MIX_SHARES``: 40 % multi_turn, 20 % rag, 20 %
    system_prompt, 20 % multi_agent (steady-state shares of requests, not of
    sessions).

Arrivals and sessions
---------------------
The aggregate request stream is generated first and exactly as configured:
``requests`` arrival times whose inter-arrival gaps are exponential
(``poisson``) or gamma with coefficient of variation ``burstiness_cv``
(``gamma``), both with mean ``1 / rate_per_s``. So the offered load and its
burstiness are exactly what the config says, for every kind.

The session structure then decides *who* sends each arrival (a sequential
pass, earliest-ready first):

1. if some active session's think time has elapsed (ready time <= now), the
   arrival is that session's next turn;
2. otherwise a new unit starts: a single-turn request, a new session, or a new
   multi-agent group (for ``mixed`` the unit kind is drawn with probabilities
   chosen so that request shares match ``MIX_SHARES``);
3. but when ``sessions`` sessions (agents count one each) are already active,
   no new session starts: the arrival goes to the session that will be ready
   soonest (its think time is cut short). ``sessions`` is therefore the
   ceiling of the concurrent conversation population.

A session's turn count is geometric with mean ``turns_mean`` (>= 1); think
time between turns is exponential with mean ``turn_interval_s`` measured from
the previous turn's *arrival* (the generator knows no response times). In
steady state new sessions start at ``rate_per_s / turns_mean`` per second and
the live population is about ``rate_per_s * (turns_mean - 1) / turns_mean *
turn_interval_s`` (Little's law; 240 for the defaults, under the cap of 300).
The trace starts cold: the first ``turn_interval_s`` seconds are mostly first
turns. Sessions still open when ``requests`` is reached are simply cut.

Token counts: new user tokens (and RAG questions) and output tokens are
lognormal (sigma ``LEN_SIGMA``) with means ``new_tokens_mean`` and
``output_tokens_mean``, rounded, clipped to [1, ``LEN_CLIP`` x mean].

Identifiers: ``session_id`` is >= 0 for every request. Multi-turn sessions and
agents get one id each; each single-turn request (``system_prompt``, ``rag``)
is a one-turn session with a unique id. Ids are numbered 0.. in order of first
arrival. ``turn`` is 0-based within the session/agent.

Block ids (content model)
-------------------------
Every prompt is a sequence of content segments (system prompt s, document d,
group prefix g, user text of request i, output of request i) with a 64-bit
content id each; shared segments (system prompts, documents) have the same id
in every workload, per-request segments and group prefixes are salted with the
seed. A segment chain hash ``C_j = F(C_{j-1}, seg_j, len_j)`` (``C_-1`` a
fixed root) names "everything through segment j", and a block that ends at
token T (exclusive; T = (k+1)*block_tokens, or the prompt length for the last,
partial block) gets the id ``F(C_{j-1}, seg_j, T - start_j)`` where j is the
segment holding token T-1. The id is thus a hash of the entire token content
[0, T), so two requests' block k ids are equal iff their prompts agree on
every token through the end of block k (up to 63-bit hash collisions). In
particular a block that straddles the end of a shared system prompt is shared
only by requests whose following text is the same, and the last (partial)
block of turn k differs from block k of turn k+1. ``F`` is splitmix64-based;
ids are the top 63 bits, so they are non-negative int64. These hashes are computed only with
``generate(..., hashed_ids=True)``: by default own block k of the parent form is simply called k
(``trace.prefix`` dense ids), which names the same blocks equal and different, so every simulation
is the same, and stores no id at all. Turn k+1 of a session
shares with turn k exactly floor(input_k / block_tokens) blocks. A request has
ceil(input_tokens / block_tokens) blocks.

Because every turn of a session is a prefix of one "session stream", the full
blocks are hashed once per stream, and a request is held in parent form
(``trace.prefix``): the previous turn of its stream, the blocks shared with
it, and its new blocks. Memory follows the unique blocks, not the block
accesses; the CSR ``block_ids`` is expanded only if something reads it.
``synthetic_blocks`` is False: the ids are exact for this content model.
"""
from __future__ import annotations

import heapq

import numpy as np

from sim.config import SyntheticCfg
from trace.prefix import PrefixBlocks
from trace.workload import Workload

# Request shares of the `mixed` kind.
MIX_SHARES = {"multi_turn": 0.4, "rag": 0.2, "system_prompt": 0.2, "multi_agent": 0.2}
LEN_SIGMA = 1.0  # lognormal sigma of new-user and output token counts
LEN_CLIP = 20  # token counts are clipped to LEN_CLIP x mean

# Unit kind codes.
_MT, _SP, _RAG, _MA = 0, 1, 2, 3
_KIND_CODE = {"multi_turn": _MT, "system_prompt": _SP, "rag": _RAG, "multi_agent": _MA}

_MASK64 = (1 << 64) - 1
_G = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_K_OFF = 0xD6E8FEB86659FD93  # odd multiplier for offsets inside a segment

# Segment namespaces (top byte), mixed before use.
_TAG_SYS = 1 << 56
_TAG_DOC = 2 << 56
_TAG_GRP = 3 << 56
_TAG_USER = 4 << 56
_TAG_OUT = 5 << 56

_CHUNK_BLOCKS = 1 << 20  # blocks hashed/gathered per vectorized chunk
_ASSIGN_CHUNK = 1 << 18  # arrivals converted to Python objects at a time in _assign


# ---------------------------------------------------------------- hashing

def _sm_int(x: int) -> int:
    """splitmix64 finalizer on a Python int (for constants)."""
    z = (x + _G) & _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


_ROOT = _sm_int(0x6B7673696D2D726F)  # chain value before the first segment


def _sm(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array (returns a new array)."""
    z = x + np.uint64(_G)
    z ^= z >> np.uint64(30)
    z *= np.uint64(_M1)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_M2)
    z ^= z >> np.uint64(31)
    return z


def _mix(chain: np.ndarray, seg: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """F(chain, segment id, tokens of the segment so far) -> uint64."""
    h = offset.astype(np.uint64)
    h *= np.uint64(_K_OFF)
    h += seg
    h = _sm(h)
    h ^= chain
    return _sm(h)


def _seg_ids(tag: int, salt: int, idx: np.ndarray) -> np.ndarray:
    base = np.uint64((tag ^ salt) & _MASK64)
    return _sm(idx.astype(np.uint64) ^ base)


def _to_id(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(1)).view(np.int64)


# ---------------------------------------------------------------- random parts

def _arrivals_s(cfg: SyntheticCfg, rng: np.random.Generator, n: int) -> np.ndarray:
    mean_gap = 1.0 / cfg.rate_per_s
    if cfg.arrival == "poisson":
        gaps = rng.exponential(mean_gap, n)
    else:
        shape = 1.0 / (cfg.burstiness_cv ** 2)
        gaps = rng.gamma(shape, mean_gap / shape, n)
    return np.cumsum(gaps)


def _lengths(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    x = rng.lognormal(np.log(mean) - LEN_SIGMA ** 2 / 2.0, LEN_SIGMA, n)
    return np.clip(np.rint(x), 1, max(1, LEN_CLIP * mean)).astype(np.int64)


def _unit_kinds(cfg: SyntheticCfg, rng: np.random.Generator, n: int) -> np.ndarray:
    if cfg.kind != "mixed":
        return np.full(n, _KIND_CODE[cfg.kind], dtype=np.int8)
    per_unit = {"multi_turn": cfg.turns_mean, "rag": 1.0, "system_prompt": 1.0,
                "multi_agent": cfg.turns_mean * cfg.agents}
    names = list(MIX_SHARES)
    w = np.array([MIX_SHARES[k] / per_unit[k] for k in names])
    codes = np.array([_KIND_CODE[k] for k in names], dtype=np.int8)
    return codes[rng.choice(len(names), size=n, p=w / w.sum())]


# ---------------------------------------------------------------- who sends each arrival

def _assign(t_s, think_s, unit_kind, turns_pool, agents: int, cap: int):
    """Sequential earliest-ready assignment of arrivals to streams.

    Returns per request (stream, turn) and per stream (kind, group).
    """
    n = len(t_s)
    pool = turns_pool.tolist()
    # per-arrival outputs in arrays, inputs read a chunk at a time: no Python object per arrival survives
    stream_of = np.empty(n, dtype=np.int64)
    turn_of = np.empty(n, dtype=np.int64)
    s_kind: list[int] = []
    s_group: list[int] = []
    s_turns: list[int] = []
    served: list[int] = []
    heap: list[tuple[float, int]] = []
    pop, push = heapq.heappop, heapq.heappush
    active = 0
    groups = 0
    for c0 in range(0, n, _ASSIGN_CHUNK):
        c1 = min(n, c0 + _ASSIGN_CHUNK)
        t, think, kinds = t_s[c0:c1].tolist(), think_s[c0:c1].tolist(), unit_kind[c0:c1].tolist()
        so, to = [0] * (c1 - c0), [0] * (c1 - c0)
        for q in range(c1 - c0):
            ti = t[q]
            if heap and heap[0][0] <= ti:
                s = pop(heap)[1]
            else:
                kind = kinds[q]
                if kind == _SP or kind == _RAG:
                    s = len(s_kind)
                    s_kind.append(kind)
                    s_group.append(-1)
                    s_turns.append(1)
                    served.append(0)
                elif active >= cap:
                    s = pop(heap)[1]
                elif kind == _MT:
                    s = len(s_kind)
                    s_kind.append(_MT)
                    s_group.append(-1)
                    s_turns.append(pool[s % len(pool)])
                    served.append(0)
                    active += 1
                else:  # _MA: a whole group of agents starts now
                    s = len(s_kind)
                    for a in range(agents):
                        sa = s + a
                        s_kind.append(_MA)
                        s_group.append(groups)
                        s_turns.append(pool[sa % len(pool)])
                        served.append(0)
                        if a:
                            push(heap, (ti, sa))
                    groups += 1
                    active += agents
            k = served[s]
            served[s] = k + 1
            so[q] = s
            to[q] = k
            if k + 1 < s_turns[s]:
                push(heap, (ti + think[q], s))
            elif s_kind[s] == _MT or s_kind[s] == _MA:
                active -= 1
        stream_of[c0:c1] = so
        turn_of[c0:c1] = to
    return (
        stream_of,
        turn_of,
        np.array(s_kind, dtype=np.int8),
        np.array(s_group, dtype=np.int64),
    )


def _chunks(counts: np.ndarray, target: int) -> list[tuple[int, int]]:
    """Split range(len(counts)) into pieces of about `target` summed counts."""
    n = len(counts)
    if n == 0:
        return []
    incl = np.cumsum(counts)
    total = int(incl[-1])
    if total <= target:
        return [(0, n)]
    cuts = np.searchsorted(incl, np.arange(target, total, target), side="left") + 1
    edges = np.unique(np.concatenate(([0], np.minimum(cuts, n), [n])))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


# ---------------------------------------------------------------- generate

def generate(cfg: SyntheticCfg, seed: int, name: str | None = None, *, hashed_ids: bool = False) -> Workload:
    """A synthetic Workload of cfg.requests requests (see the module docstring).

    `hashed_ids`: hold the content-hash block ids; by default the ids are dense (``trace.prefix``), which
    gives the same simulation (ids are only compared) and stores no id.
    """
    rng = np.random.default_rng(seed)
    n = int(cfg.requests)
    B = int(cfg.block_tokens)
    salt = _sm_int(int(seed) & _MASK64)

    # -- per-arrival draws (fixed order: determinism per seed)
    t_s = _arrivals_s(cfg, rng, n)
    think_s = rng.exponential(cfg.turn_interval_s, n) if cfg.turn_interval_s > 0 else np.zeros(n)
    user_tok = _lengths(rng, cfg.new_tokens_mean, n)
    out_tok = _lengths(rng, cfg.output_tokens_mean, n)
    unit_kind = _unit_kinds(cfg, rng, n)
    turns_pool = rng.geometric(1.0 / cfg.turns_mean, n + cfg.agents).astype(np.int64)

    if cfg.kind in ("system_prompt", "rag"):  # every arrival is its own one-turn stream
        stream_of, turn_of = np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        s_kind, s_group = unit_kind, np.full(n, -1, dtype=np.int64)
    else:
        stream_of, turn_of, s_kind, s_group = _assign(
            t_s, think_s, unit_kind, turns_pool, int(cfg.agents), int(cfg.sessions)
        )

    # -- keep streams that got at least one request, renumber in first-arrival order
    n_streams_all = len(s_kind)
    s_sys_all = rng.integers(0, cfg.system_prompts, n_streams_all)
    # rank^-s through libm's pow: numpy's array power is built per machine (AVX-512 rounds some results
    # differently), and the same seed must give the same workload on every machine
    pdoc = np.array([float(r) ** -cfg.zipf_s for r in range(1, cfg.documents + 1)], dtype=np.float64)
    s_doc_all = rng.choice(cfg.documents, size=n_streams_all, p=pdoc / pdoc.sum())
    nt_all = np.bincount(stream_of, minlength=n_streams_all)
    keep = nt_all > 0
    remap = np.cumsum(keep) - 1
    stream = remap[stream_of]
    s_kind, s_group, s_sys, s_doc = s_kind[keep], s_group[keep], s_sys_all[keep], s_doc_all[keep]
    nturns = nt_all[keep]
    S = len(s_kind)

    # -- prefix segments per stream (two slots; length 0 = absent)
    pre_id = np.zeros((S, 2), dtype=np.uint64)
    pre_len = np.zeros((S, 2), dtype=np.int64)
    has_sys = s_kind != _MA
    pre_id[has_sys, 0] = _seg_ids(_TAG_SYS, 0, s_sys[has_sys])
    pre_len[has_sys, 0] = cfg.system_prompt_tokens
    is_ma = ~has_sys
    pre_id[is_ma, 0] = _seg_ids(_TAG_GRP, salt, s_group[is_ma])
    pre_len[is_ma, 0] = cfg.shared_prefix_tokens
    is_rag = s_kind == _RAG
    pre_id[is_rag, 1] = _seg_ids(_TAG_DOC, 0, s_doc[is_rag])
    pre_len[is_rag, 1] = cfg.document_tokens
    pre_tokens = pre_len.sum(axis=1)

    # -- requests in (stream, turn) order; input = prefix + earlier (u+o) + own u
    order = np.argsort(stream, kind="stable")  # turns ascend in arrival order
    st_sorted = stream[order]
    uo = (user_tok + out_tok)[order]
    excl = np.cumsum(uo) - uo
    first = np.zeros(S + 1, dtype=np.int64)
    np.cumsum(nturns, out=first[1:])
    excl -= np.repeat(excl[first[:-1]], nturns)
    inp_sorted = pre_tokens[st_sorted] + excl + user_tok[order]
    input_tokens = np.empty(n, dtype=np.int64)
    input_tokens[order] = inp_sorted

    if hashed_ids:  # the content hashes (module doc); dense ids need none of this
        # -- segments: per stream [pre0, pre1, u_0, o_0, u_1, o_1, ...], zero lengths dropped
        nseg = 2 + 2 * nturns
        seg_off = np.zeros(S + 1, dtype=np.int64)
        np.cumsum(nseg, out=seg_off[1:])
        seg_id = np.empty(int(seg_off[-1]), dtype=np.uint64)
        seg_len = np.empty(int(seg_off[-1]), dtype=np.int64)
        seg_id[seg_off[:-1]] = pre_id[:, 0]
        seg_len[seg_off[:-1]] = pre_len[:, 0]
        seg_id[seg_off[:-1] + 1] = pre_id[:, 1]
        seg_len[seg_off[:-1] + 1] = pre_len[:, 1]
        upos = seg_off[st_sorted] + 2 + 2 * turn_of[order]
        seg_id[upos] = _seg_ids(_TAG_USER, salt, order)
        seg_len[upos] = user_tok[order]
        seg_id[upos + 1] = _seg_ids(_TAG_OUT, salt, order)
        seg_len[upos + 1] = out_tok[order]
        live = seg_len > 0
        seg_stream = np.repeat(np.arange(S, dtype=np.int64), nseg)[live]
        seg_id, seg_len = seg_id[live], seg_len[live]
        del upos, live
        nseg = np.bincount(seg_stream, minlength=S)
        seg_off = np.zeros(S + 1, dtype=np.int64)
        np.cumsum(nseg, out=seg_off[1:])
        pos = np.arange(len(seg_id), dtype=np.int64) - seg_off[seg_stream]
        del seg_stream

        # -- segment chain: C_j = F(C_{j-1}, seg_j, len_j), vectorized across streams
        chain = np.empty(len(seg_id), dtype=np.uint64)
        by_pos = np.argsort(pos, kind="stable")
        bounds = np.zeros(int(pos.max()) + 2, dtype=np.int64)
        np.cumsum(np.bincount(pos), out=bounds[1:])
        for q in range(len(bounds) - 1):
            idx = by_pos[bounds[q] : bounds[q + 1]]
            prev = np.full(len(idx), _ROOT, dtype=np.uint64) if q == 0 else chain[idx - 1]
            chain[idx] = _mix(prev, seg_id[idx], seg_len[idx])
        del by_pos
        chain_prev = np.empty_like(chain)
        chain_prev[1:] = chain[:-1]
        chain_prev[pos == 0] = np.uint64(_ROOT)
        del chain, pos
        seg_end = np.cumsum(seg_len)
        seg_start = seg_end - seg_len
        tok_base = seg_start[seg_off[:-1]]  # global token coordinate of each stream

        def block_ids_ending_at(g: np.ndarray) -> np.ndarray:
            """Ids of blocks whose last token has global coordinate g."""
            j = np.searchsorted(seg_end, g, side="right")
            return _to_id(_mix(chain_prev[j], seg_id[j], g + 1 - seg_start[j]))

    # -- per request, in parent form (trace.prefix): turn k extends turn k-1 of its stream by the stream's
    # full blocks [F_{k-1}, F_k) (F = floor(I/B)) and its own partial last block. A stream's first turn
    # extends the first earlier stream with the same shared prefix (system prompt [+ document], or group
    # prefix) by the blocks past it. Only these new blocks are hashed; the full CSR is never built.
    full = input_tokens // B
    prev_req = np.full(n, -1, dtype=np.int64)
    same = st_sorted[1:] == st_sorted[:-1]
    prev_req[order[1:][same]] = order[:-1][same]
    shared = np.where(prev_req >= 0, full[np.maximum(prev_req, 0)], 0)
    # Openings (first turns, arrival order) share with an earlier opening: the blocks of its whole prefix
    # (system prompt + document, or group prefix) when one had the same, else those of the first segment.
    opening = np.flatnonzero(prev_req < 0)
    so = stream[opening]
    k0 = np.where(pre_len[so, 0] > 0, pre_id[so, 0], np.uint64(0))
    k1 = np.where(pre_len[so, 1] > 0, pre_id[so, 1], np.uint64(0))
    for key0, key1, kb in ((k0, np.zeros_like(k1), pre_len[so, 0] // B), (k0, k1, pre_tokens[so] // B)):
        m = np.flatnonzero((kb > 0) & ((key1 != 0) | (kb == pre_len[so, 0] // B)))
        if not len(m):
            continue
        by_key = m[np.lexsort((m, key1[m], key0[m]))]
        new_key = np.ones(len(by_key), dtype=bool)
        new_key[1:] = (key0[by_key[1:]] != key0[by_key[:-1]]) | (key1[by_key[1:]] != key1[by_key[:-1]])
        root = by_key[np.maximum.accumulate(np.where(new_key, np.arange(len(by_key)), 0))]
        follow = by_key[~new_key]  # the second level overrides the first where both apply
        prev_req[opening[follow]] = opening[root[~new_key]]
        shared[opening[follow]] = kb[follow]
    del opening, so, k0, k1, order, st_sorted
    has_part = (input_tokens % B) > 0
    nfull = full - shared
    own_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nfull + has_part, out=own_off[1:])
    own_ids = None  # dense ids (trace.prefix): own block k is block k
    if hashed_ids:
        own_ids = np.empty(int(own_off[-1]), dtype=np.int64)
        for a, b in _chunks(nfull, _CHUNK_BLOCKS):
            cnt = nfull[a:b]
            rel = np.arange(int(cnt.sum()), dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            # block k of the stream (k = shared + rel) ends at stream token (k + 1) * B - 1
            g = np.repeat(tok_base[stream[a:b]] + (shared[a:b] + 1) * B - 1, cnt) + rel * B
            own_ids[np.repeat(own_off[a:b], cnt) + rel] = block_ids_ending_at(g)
            del rel, g
        part = np.flatnonzero(has_part)
        if len(part):
            g = tok_base[stream[part]] + input_tokens[part] - 1
            own_ids[own_off[part + 1] - 1] = block_ids_ending_at(g)
    nb = full + has_part
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(nb, out=offsets[1:])
    # Own blocks are distinct: a full block past the shared prefix holds per-request (salted) content and
    # a partial block ends inside the request's own user text (up to 63-bit hash collisions).
    prefix = PrefixBlocks(np.where(shared > 0, prev_req, -1), shared, own_off, own_ids, distinct=True)

    return Workload(
        name=name or f"synthetic-{cfg.kind}",
        arrival_ms=t_s * 1000.0,
        input_tokens=input_tokens,
        output_tokens=out_tok,
        session_id=stream,
        block_offsets=offsets,
        block_ids=None,  # type: ignore[arg-type]  # held by `prefix`
        block_tokens=B,
        turn=turn_of,
        synthetic_blocks=False,
        prefix=prefix,
    )


__all__ = ["generate", "MIX_SHARES"]
