"""The timed cluster replay's lean event paths (issue #19 speed) against the SimPy-API reference: the
network's transfers and background sends as they were written with ``env.all_of``, ``done.succeed()``
and a completion event per background job, and the replica's wake-up on a new request always queued.
Arrivals on a coarse grid put many events at equal times, where a hop more or less would reorder
them; every per-request array, the I/O, network and cache counters and the iteration histogram must
be equal."""
from __future__ import annotations

import numpy as np
import simpy
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sim.modes.cluster as cluster_mode
import sim.replica.engine as replica_engine
import sim.timing.node_io as node_io
from sim.modes.cluster import run_cluster
from sim.modes.common import prepare_workload
from sim.timing.event_loop import succeed
from sim.timing.network import Network
from tests.conftest import micro_workload
from tests.modes.test_cluster import _cfg
from trace.synthetic import generate
from trace.workload import Workload


class SimPyNetwork(Network):
    """``transfer`` and ``send`` as written before the lean paths (the reference)."""

    def send(self, env, src, dst, nbytes, lanes=1):
        if nbytes <= 0 or src == dst:
            return
        route = self._route(src, dst, lanes)
        self._account(route, nbytes)
        if not self.contention:
            return
        for e, a, share in route[4]:
            self._serve(env, e, a.bytes_s, nbytes * share, True)

    def transfer(self, env, src, dst, nbytes, lanes=1):
        if nbytes <= 0 or src == dst:
            return env.timeout(0)
        route = self._route(src, dst, lanes)
        _p, lat, bott, _edges, served, _c = route
        self._account(route, nbytes)
        lf, bf = self._factors()
        if not self.contention:
            return env.timeout(lat * lf + nbytes / bott * bf)
        done = env.event()
        size = nbytes * bf

        def finish(_e: simpy.Event) -> None:
            done.succeed()

        def start(_ev: simpy.Event | None = None) -> None:
            evs = [self._serve(env, e, a.bytes_s, size * share, False) for e, a, share in served]
            if len(evs) == 1:
                evs[0].callbacks.append(finish)
            else:
                env.all_of(evs).callbacks.append(finish)

        d = lat * lf
        if d > 0:
            env.timeout(d).callbacks.append(start)
        else:
            start()
        return done


FIELDS = ("hit_blocks", "hit_tokens", "worker", "net_s", "queue_s", "prefill_s", "ttft_s", "tpot_s", "e2e_s",
          "busy_s", "recomputed_tokens")


def _run(cfg, w: Workload, router: str) -> tuple:
    pw, ctx = prepare_workload(cfg, w)
    r = run_cluster(cfg, pw, "lru", router, ctx=ctx, timing=True)
    hist = r.iteration_hist
    return ([getattr(r, f) for f in FIELDS],
            repr((r.sim_time_s, sorted(r.decode_busy_s.items()), r.iteration_ms, r.preemptions, r.io,
                  r.network_stats(), r.cache_summary(), r.prefetch, r.network.tail_events)),
            repr(vars(hist) if hasattr(hist, "__dict__") else [getattr(hist, s) for s in hist.__slots__]),
            r.network.stats()["transfers_by_class"])


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), grid_ms=st.sampled_from([0.0, 5.0, 50.0]),
       overlap=st.sampled_from(["layerwise", "none"]), router=st.sampled_from(["prefix_aware", "round_robin"]))
def test_timed_cluster_equals_the_simpy_reference(seed, grid_ms, overlap, router):
    # small tiers: loads from peers, DRAM, EIC and SSD, EIC -> SSD spills that load the links reads use
    cfg = _cfg(hbm_blocks=256, dram_blocks=256, eic_blocks=512, ssd_blocks=4096, **{
        "cache.load_overlap": overlap, "cache.load_policy": "always", "cluster.router": router, "seed": seed,
        "synthetic.kind": "multi_turn", "synthetic.requests": 240, "synthetic.sessions": 30,
        "synthetic.block_tokens": 16})
    w = generate(cfg.synthetic, seed)
    arr = np.floor(w.arrival_ms / grid_ms) * grid_ms if grid_ms else np.zeros(len(w))
    w = Workload(w.name, arr, w.input_tokens, w.output_tokens, w.session_id, w.block_offsets, w.block_ids,
                 w.block_tokens, turn=w.turn)
    lean = _run(cfg, w, router)
    with _reference():
        ref = _run(cfg, w, router)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(lean[0], ref[0], strict=True))
    assert lean[1:] == ref[1:]
    assert np.isfinite(lean[0][FIELDS.index("ttft_s")]).all()
    moved = lean[3]
    assert min(moved["pcie"], moved["eic"], moved["spine"], moved["ssd"]) > 0


class _reference:
    """The reference network, ``all_done`` and the replica's wake-up with queued completions, for the
    ``with`` block."""

    def __enter__(self) -> None:
        self.saved = cluster_mode.Network, node_io.succeed_last, replica_engine.succeed_last
        cluster_mode.Network = SimPyNetwork  # type: ignore[misc]
        node_io.succeed_last = replica_engine.succeed_last = succeed  # type: ignore[assignment]

    def __exit__(self, *exc) -> None:
        cluster_mode.Network, node_io.succeed_last, replica_engine.succeed_last = self.saved  # type: ignore[misc]


@settings(max_examples=25, deadline=None)
@given(plan=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3)), min_size=4, max_size=60),
       overlap=st.sampled_from(["layerwise", "none"]))
def test_equal_loads_at_equal_times_equal_the_simpy_reference(plan, overlap):
    # requests = one of six 4-block prompts + a block of their own, on a 0.5 ms grid: loads of equal
    # size start together and end together, beside arrivals, first tokens and decode ends at those instants
    reqs = [[100 * p + b for b in range(4)] + [10_000 + i] for i, (p, _) in enumerate(plan)]
    arrivals = [sum(d for _, d in plan[:i + 1]) * 5e-4 for i in range(len(plan))]
    w = micro_workload(reqs, arrivals, outputs=[4] * len(reqs))
    cfg = _cfg(hbm_blocks=6, dram_blocks=8, eic_blocks=16, ssd_blocks=64,
               **{"cache.load_overlap": overlap, "cache.load_policy": "always", "cluster.router": "round_robin"})
    lean = _run(cfg, w, "round_robin")
    with _reference():
        ref = _run(cfg, w, "round_robin")
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(lean[0], ref[0], strict=True))
    assert lean[1:] == ref[1:]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=40))
@example(plan=[(0, 0, 0), (0, 1, 1), (0, 2, 0)])  # two requests reach idle worker 0 at 1 s: one prefill batch
def test_same_instant_requests_on_one_worker_equal_the_simpy_reference(plan, fixed_router):
    # requests routed (worker, prompt, gap) by plan, groups 1 s apart (the workers are idle again between
    # groups): consecutive ones often reach the same idle worker at the same instant, where its wake-up run
    # before the next arrival would start a prefill without that request
    fixed_router.plan = [wk for wk, _, _ in plan]
    reqs = [[100 * p + b for b in range(4)] + [10_000 + i] for i, (_, p, _) in enumerate(plan)]
    arrivals = [float(sum(g for _, _, g in plan[:i + 1])) for i in range(len(plan))]
    w = micro_workload(reqs, arrivals, outputs=[3] * len(reqs))
    # HBM of 64 blocks: the replica's KV pool holds several requests, so same-instant ones batch together
    cfg = _cfg(hbm_blocks=64, dram_blocks=8, eic_blocks=16, ssd_blocks=64, **{"cache.load_policy": "always"})
    lean = _run(cfg, w, "fixed")
    with _reference():
        ref = _run(cfg, w, "fixed")
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(lean[0], ref[0], strict=True))
    assert lean[1:] == ref[1:]
