"""The learned policy at scale: requests/s and peak RSS of `run --policy learned` on large synthetic traces.

Workload: the built-in synthetic ``multi_turn`` generator, 16-token blocks, `--requests` requests and
requests / 10 sessions; the default config otherwise (one node, hit-rate-only replay on the Python
engine, which the learned policy runs on). One run per process, so the peak RSS is this run's:

* ``--run model``: a model file (trained first, in this process, on a separate `--train-requests`
  synthetic workload of another seed; its memory is freed before the replay but counts in the peak
  when larger); features streamed chunk by chunk from the per-block tracker (learned.features).
* ``--run online``: no model file, retrained every 2,000 requests (learned.online: a first pass for the
  horizons, then the replay's streamed features with the rows a training still reads; before it, the
  whole-trace path: per-access context arrays and the whole feature matrix).
* ``--hashed-ids``: the replayed workload keeps the generator's 64-bit content hashes as block ids
  (``generate(..., hashed_ids=True)``: stored ids, as a loaded trace has) instead of dense ids.
* ``--scores-only``: the policy's own work only (every access's features and score, as the replay
  would ask for them), without the Python engine's replay, which is the same on both paths and slow
  (about 1-3k requests/s on this workload).

Prints the replay's requests/s (wall and CPU), the time in features and in LightGBM, the tracker's
bytes per distinct block, the hit rate, and the peak RSS (resource.getrusage ru_maxrss) with the memory
estimate the run was checked against (sim.modes.memory). Runs on an older checkout too (the "before"
figures: the same public calls).

    python benchmarks/bench_learned_scale.py --run model --requests 200000
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sim.config import Config  # noqa: E402


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def config(requests: int, model: str = "") -> Config:
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={
        "kind": "multi_turn", "requests": requests, "block_tokens": 16, "sessions": max(1, requests // 10)})
    cfg.policies = cfg.policies.model_copy(update={"learned_model": model})
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", choices=("model", "online"), default="model")
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--train-requests", type=int, default=20_000)
    ap.add_argument("--scores-only", action="store_true",
                    help="compute every access's features and score without the replay (the policy's own cost)")
    ap.add_argument("--hashed-ids", action="store_true",
                    help="replay the generator's content-hash block ids (stored ids) instead of dense ids")
    args = ap.parse_args()

    import learned.policy as learned_policy
    from learned.train import TrainParams, train_offline
    from sim.modes.common import prepare_workload
    from sim.modes.single import run_single
    from trace.synthetic import generate

    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, load {os.getloadavg()[0]:.1f}")
    model_path = ""
    if args.run == "model":
        tcfg = config(args.train_requests)
        tw, _ = prepare_workload(tcfg, generate(tcfg.synthetic, 99))
        model, summ = train_offline(tw, TrainParams())
        fd, model_path = tempfile.mkstemp(suffix=".txt")
        os.close(fd)
        model.save(model_path)
        del tw, model
        print(f"model: {args.train_requests:,} requests (seed 99), horizon {summ['horizon']:,}, "
              f"{summ['total_s']:.1f} s; peak RSS so far {rss_gib():.2f} GiB")
    cfg = config(args.requests, model_path)
    t0 = time.perf_counter()
    w, ctx = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed, hashed_ids=args.hashed_ids))
    gen_s = time.perf_counter() - t0
    ids = "dense ids" if w.prefix_blocks().dense else "stored (hashed) ids"
    print(f"workload: {len(w):,} multi_turn requests, {cfg.synthetic.sessions:,} sessions"
          f", {w.total_blocks:,} accesses of 16-token blocks, {ids}, {gen_s:.1f} s to generate")
    est = None
    try:
        from sim.modes.common import NodeSetup
        from sim.modes.memory import run_estimate

        node = NodeSetup.from_config(cfg, w.block_tokens)
        slots = min(node.n_workers * node.hbm_blocks + node.dram_blocks + node.ssd_blocks, ctx.key_bound)
        try:  # the estimate the run is checked against (sim.modes.runner)
            from sim.modes.runner import _single_need

            est = _single_need(cfg, w, ctx, node, ["learned"], timing=False).est
        except ImportError:
            est = run_estimate(w, mode="single", timing=False, per_access=False, slots=slots,
                               learned="model" if model_path else "online")
        except TypeError:  # before the learned policy had its own estimate
            est = run_estimate(w, mode="single", timing=False, per_access=True, slots=slots)
    except ImportError:
        pass
    c0, t0 = time.process_time(), time.perf_counter()
    if args.scores_only:  # the policy's own work: every access's features and score, no replay
        sc = learned_policy.shared_scorer(ctx, learned_policy.load_model(model_path) if model_path else None,
                                          cfg.policies.learned_retrain_every, 1.0, None)
        sc.ensure(w.total_blocks - 1)
        what = "scores"
    else:
        res = run_single(cfg, w, "learned", ctx=ctx, timing=False)
        sc = next(iter(learned_policy._SCORERS.values()))[1] if learned_policy._SCORERS else None
        what = f"replay (hit rate {float(res.hit_tokens.sum() / w.input_tokens.sum()):.6f})"
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{what}: {len(w) / wall:,.0f} req/s wall, {len(w) / cpu:,.0f} req/s CPU ({wall:.1f} s)")
    if sc is not None:
        st = sc.stats()
        print(f"  features {st['features_s']:.1f} s, LightGBM {st['predict_s']:.1f} s "
              f"in {st['predict_calls']:,} calls, "
              f"training {st['train_s']:.1f} s ({st['trainings']} trainings)")
        stream = getattr(sc, "stream", None)
        if stream is not None:
            n_blocks = len(stream.tracker.freq)
            print(f"  tracker: {stream.tracker.nbytes() / 2**20:.0f} MiB, "
                  f"{stream.tracker.nbytes() / max(1, w.prefix_blocks().n_own()):.0f} B per distinct block "
                  f"({n_blocks:,} block slots)")
            ids = stream.pb.ids_stored()
            if ids.size and ids is not w.prefix_blocks().ids_stored():  # stored ids renumbered (densified)
                print(f"  renumbered ids held by the stream: {ids.nbytes / 2**20:.0f} MiB")
        trainer = getattr(sc, "trainer", None)
        if trainer is not None and hasattr(trainer, "window_rows"):  # the streamed online mode
            hs = [h for h in trainer.horizons if h] or [0]
            print(f"  training window: at most {trainer.window_rows():,} rows "
                  f"(horizons {min(hs):,}..{max(hs):,} accesses)")
    if est is not None:
        print(f"memory estimate: {est.total / 2**30:.2f} GiB ({est.summary()})")
    print(f"peak RSS: {rss_gib():.2f} GiB")
    if model_path:
        os.unlink(model_path)


if __name__ == "__main__":
    main()
