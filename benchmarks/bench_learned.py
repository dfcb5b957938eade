"""Learned eviction (LightGBM) vs LRU, ARC, S3-FIFO and Belady on the Mooncake conversation trace.

Workload: ../shared/traces/mooncake_conversation.jsonl (12,031 requests, 288,500
accesses of 512-token blocks), replayed by the single-node hit-rate-only path
(``sim.modes.single.run_single(..., timing=False)``) on one worker with one HBM
tier of C blocks and no DRAM/SSD, so C is the whole cache (llama-3-8b fp16:
64 MiB per block). Hit rate = prefix-hit tokens / input tokens.

Two ways to use the learned policy, both without look-ahead:

* ``learned (online)``: no model file; retrained every ``--retrain-every``
  requests on the accesses whose labels are settled (full trace).
* ``learned (model)``: a model file trained by ``learned.train`` on the first
  half of the trace (the ``learned train`` command's code path); every policy
  replays the whole trace and hit rates are counted on the second half only.

Per learned run: training time, inference time per eviction (LightGBM time /
evictions in the tier), and replay speed in requests per wall second next to
LRU's (the score cache is cleared before each learned run, so each pays its
own features, scoring and training). Peak RSS at the end.

    python benchmarks/bench_learned.py [--trace PATH] [--capacities 1000,4000,16000] [--retrain-every 2000]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


import numpy as np  # noqa: E402

import learned.policy as learned_policy  # noqa: E402
from learned.train import TrainParams, train_offline  # noqa: E402
from sim.config import load_config  # noqa: E402
from sim.modes.common import prepare_workload  # noqa: E402
from sim.modes.single import run_single  # noqa: E402
from trace.formats import load_trace  # noqa: E402

DEFAULT_TRACE = os.path.join(ROOT, "..", "shared", "traces", "mooncake_conversation.jsonl")
GiB = 1024**3
BASELINES = ["lru", "arc", "s3fifo", "belady"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def single_tier_cfg(cap_blocks: int, block_tokens: int, model_path: str = "", retrain_every: int = 2000):
    # llama-3-8b fp16: 128 KiB of KV per token
    block_bytes = block_tokens * 131072
    return load_config(overrides=[
        "model.name=llama-3-8b", "model.kv_dtype=fp16", "model.tp=1", "model.pp=1",
        "hardware.gpus_per_node=1", "cluster.router=round_robin",
        f"hardware.hbm.capacity_gib={cap_blocks * block_bytes / GiB!r}",
        "hardware.dram.capacity_gib=0", "hardware.ssd.capacity_gib=0",
        f"policies.learned_model={model_path}", f"policies.learned_retrain_every={retrain_every}",
    ])


def replay(cfg, w, ctx, policy: str) -> dict:
    learned_policy._SCORERS.clear()  # each learned run pays for its own features/scores/training
    res = run_single(cfg, w, policy, ctx=ctx, timing=False)
    hit_tok = res.hit_tokens.sum(axis=1)
    tier = res.cache.hbm[0]
    out = {"res": res, "hit_tok": hit_tok, "wall_s": res.wall_s, "evictions": tier.stats.evictions,
           "capacity": tier.capacity}
    sc = getattr(getattr(tier, "policy", None), "scorer", None)  # the learned policy (Python caches)
    if sc is not None:
        out["scorer"] = sc.stats()
    return out


def hit_rate(r: dict, inp: np.ndarray, lo: int = 0) -> float:
    return float(r["hit_tok"][lo:].sum() / inp[lo:].sum())


def closed(x: float, lru: float, bel: float) -> float:
    return (x - lru) / (bel - lru) if bel > lru else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", default=DEFAULT_TRACE)
    ap.add_argument("--capacities", default="1000,4000,16000", help="cache sizes in blocks")
    ap.add_argument("--retrain-every", type=int, default=2000, help="online mode: requests between retrainings")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    if not os.path.exists(args.trace):
        sys.exit(f"trace not found: {args.trace}")
    caps = [int(c) for c in args.capacities.split(",")]

    w0, _ = load_trace(args.trace, limit=args.limit)
    cfg0 = single_tier_cfg(caps[0], w0.block_tokens)
    w, ctx = prepare_workload(cfg0, w0)
    inp = w.input_tokens
    cut = len(w) // 2
    print(f"workload: {w.name}, {len(w):,} requests, {len(w.block_ids):,} accesses of {w.block_tokens}-token blocks; "
          f"single tier of C blocks (hit-rate-only replay, 1 worker); second half = requests {cut:,}..{len(w) - 1:,}")

    # offline model on the first half (labels settled inside the first half only)
    model, summ = train_offline(w.head(cut), TrainParams(max_rows=300_000))
    tmp = tempfile.NamedTemporaryFile(suffix=".txt", delete=False)
    tmp.close()
    model.save(tmp.name)
    print(f"offline model: trained on the first {cut:,} requests in {summ['train_s']:.2f} s "
          f"({summ['rows']:,} rows, horizon {summ['horizon']:,} accesses, {100 * summ['positive_rate']:.1f}% reused, "
          f"time-split validation AUC {summ.get('validation_auc', float('nan')):.3f})")

    rows = []
    for cap in caps:
        cfg = single_tier_cfg(cap, w.block_tokens, "", args.retrain_every)
        cfgm = single_tier_cfg(cap, w.block_tokens, tmp.name, args.retrain_every)
        runs = {p: replay(cfg, w, ctx, p) for p in BASELINES}
        runs["learned (online)"] = replay(cfg, w, ctx, "learned")
        runs["learned (model)"] = replay(cfgm, w, ctx, "learned")
        assert runs["lru"]["capacity"] == cap, (runs["lru"]["capacity"], cap)
        rows.append((cap, runs))

    print()
    print("hit rate, full trace (learned online: retrained on the past every "
          f"{args.retrain_every:,} requests)")
    hdr = f"{'C blocks':>9}{'tokens':>8}" + "".join(f"{p:>9}" for p in BASELINES) + f"{'learned':>9}{'gap closed':>12}"
    print(hdr)
    for cap, runs in rows:
        hr = {p: hit_rate(r, inp) for p, r in runs.items()}
        got = hr["learned (online)"]
        print(f"{cap:>9,}{cap * w.block_tokens / 1e6:>7.1f}M" + "".join(f"{hr[p]:>9.4f}" for p in BASELINES)
              + f"{got:>9.4f}{100 * closed(got, hr['lru'], hr['belady']):>11.1f}%")

    print()
    print("hit rate, second half of the trace (learned model: trained on the first half only)")
    print(f"{'C blocks':>9}" + "".join(f"{p:>9}" for p in BASELINES)
          + f"{'online':>9}{'closed':>8}{'model':>9}{'closed':>8}")
    for cap, runs in rows:
        hr = {p: hit_rate(r, inp, cut) for p, r in runs.items()}
        lru, bel = hr["lru"], hr["belady"]
        print(f"{cap:>9,}" + "".join(f"{hr[p]:>9.4f}" for p in BASELINES)
              + f"{hr['learned (online)']:>9.4f}{100 * closed(hr['learned (online)'], lru, bel):>7.1f}%"
              + f"{hr['learned (model)']:>9.4f}{100 * closed(hr['learned (model)'], lru, bel):>7.1f}%")

    print()
    print("cost per run (requests/s = simulated requests per wall second of the replay)")
    print(f"{'C blocks':>9}{'run':>18}{'req/s':>9}{'x LRU':>7}{'evictions':>11}{'train s':>9}{'trainings':>10}"
          f"{'features s':>11}{'predict s':>10}{'us/evict':>9}")
    for cap, runs in rows:
        lru_rps = len(w) / runs["lru"]["wall_s"]
        for name in ("lru", "arc", "s3fifo", "belady", "learned (online)", "learned (model)"):
            r = runs[name]
            rps = len(w) / r["wall_s"]
            sc = r.get("scorer")
            extra = ""
            if sc:
                per = 1e6 * sc["predict_s"] / max(1, r["evictions"])
                extra = (f"{sc['train_s']:>9.2f}{sc['trainings']:>10}{sc['features_s']:>11.2f}"
                         f"{sc['predict_s']:>10.3f}{per:>9.2f}")
            print(f"{cap:>9,}{name:>18}{rps:>9,.0f}{rps / lru_rps:>7.2f}{r['evictions']:>11,}{extra}")
    os.unlink(tmp.name)
    print(f"\npeak RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
