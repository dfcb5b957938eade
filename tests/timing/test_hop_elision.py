"""``succeed_last`` / ``FirstOf.fire_last`` (issue #19 speed): an event chained from the last callback of
the event being processed runs at once when nothing else is due at that instant, else it is queued.
Either way the order of everything that happens is the one of the queued hop; checked here on models
full of equal times, and on the timed single-node replay against the queued hops."""
from __future__ import annotations

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.timing.priority_link as priority_link
from sim.timing.event_loop import FirstOf, run_to_end, succeed, succeed_last, timer
from sim.timing.priority_link import PriorityLink, through


def _queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hops as before: every chained event through a queue entry."""
    monkeypatch.setattr(FirstOf, "fire_last", FirstOf.fire)
    monkeypatch.setattr(priority_link, "succeed_last", succeed)


def _chains(env: simpy.Environment, plan: list[tuple[int, int, int]], last: bool, log: list) -> None:
    """Processes that wait for the first of a timer and a wake-up that another timeout's last callback
    chains to; delays on a 0.5 s grid, so many events share an instant."""
    chain = succeed_last if last else succeed

    def proc(k: int):
        for da, dw, db in plan[k::3]:
            first = FirstOf(env)
            fire = first.fire_last if last else first.fire
            wake = env.event()
            timer(env, 0.5 * da).callbacks.append(fire)
            wake.callbacks.append(fire)
            t = env.timeout(0.5 * dw)
            t.callbacks.append(lambda _e, k=k: log.append((env.now, k, "waker")))
            t.callbacks.append(lambda _e, wake=wake: chain(wake))
            yield first
            log.append((env.now, k, "resumed"))
            env.timeout(0.5 * db).callbacks.append(lambda _e, k=k: log.append((env.now, k, "tick")))

    for k in range(3):
        env.process(proc(k))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=12))
def test_fire_last_and_succeed_last_keep_the_queued_order(plan):
    assert _log_of(_chains, plan, False) == _log_of(_chains, plan, True)


def _log_of(model, plan: list, elided: bool) -> tuple[list, float]:
    """What happened, and when the run ended, in `model` built with the hops queued or elided."""
    env = simpy.Environment()
    log: list = []
    model(env, plan, elided, log)
    run_to_end(env)
    return log, env.now


def test_succeed_last_queues_when_another_entry_is_due_now():
    env = simpy.Environment()
    ran: list = []
    ev = env.event()
    ev.callbacks.append(lambda _e: ran.append("ev"))
    succeed_last(ev)  # nothing due: processed at once
    assert ran == ["ev"] and ev.processed
    env.timeout(0)  # now an entry is due at this instant
    ev2 = env.event()
    ev2.callbacks.append(lambda _e: ran.append("ev2"))
    succeed_last(ev2)
    assert ran == ["ev"] and ev2.triggered and not ev2.processed
    run_to_end(env)
    assert ran == ["ev", "ev2"]
    with pytest.raises(RuntimeError):
        succeed_last(ev2)


def _transfers(hops: int, sizes: list[int]) -> list:
    """Transfers over one or two links, started at equal times, waited for by processes."""
    env = simpy.Environment()
    links = [PriorityLink(env, 4e9, 2e9, writeback_share=0.25) for _ in range(2)]
    log: list = []

    def proc(k: int, size: int):
        yield env.timeout(0.5 * (k % 2))
        yield through(env, [(link, "read") for link in links[:hops]], size * 1e8, latency_s=0.0 if k % 3 else 1e-3)
        log.append((env.now, k))
        yield env.timeout(0)
        log.append((env.now, k, "after"))

    for k, size in enumerate(sizes):
        env.process(proc(k, size))
    run_to_end(env)
    return log


@pytest.mark.parametrize("hops", [1, 2])
def test_through_completion_keeps_the_queued_order(hops, monkeypatch):
    sizes = [3, 1, 4, 1, 5, 9, 2, 6]
    now = _transfers(hops, sizes)
    _queued(monkeypatch)
    assert _transfers(hops, sizes) == now and len(now) == 2 * len(sizes)


@pytest.mark.parametrize("overlap", ["none", "layerwise"])
def test_timed_replay_with_hops_elided_is_the_queued_one(overlap, monkeypatch):
    from sim.config import Config
    from sim.modes.common import prepare_workload
    from sim.modes.single import run_single
    from trace.synthetic import generate

    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"kind": "multi_turn", "requests": 400, "block_tokens": 16,
                                                     "sessions": 40})
    cfg.cache = cfg.cache.model_copy(update={"load_overlap": overlap})
    w = generate(cfg.synthetic, cfg.seed)

    def run():
        pw, ctx = prepare_workload(cfg, w)
        r = run_single(cfg, pw, "lru", ctx=ctx, timing=True)
        return [getattr(r, c) for c in ("worker", "hit_tokens", "load_s", "queue_s", "ttft_s", "tpot_s", "e2e_s")], \
            (r.sim_time_s, r.busy_s, r.io, r.iteration_ms)

    a = run()
    _queued(monkeypatch)
    b = run()
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a[0], b[0], strict=True))
    assert repr(a[1]) == repr(b[1])
    assert np.isfinite(a[0][4]).all()


def _all_of_chains(env: simpy.Environment, plan: list[tuple[int, int, int]], counted: bool, log: list) -> None:
    """Processes waiting for all of two timers on a 0.5 s grid, as ``env.all_of`` (a Condition: one more
    hop after the last timer) or as a count whose last decrement chains the hop (``hop_last``), among
    other timers due at the same instants."""
    from sim.timing.event_loop import hop_last

    def proc(k: int):
        for da, db, dc in plan[k::3]:
            done = env.event()
            evs = [timer(env, 0.5 * da), timer(env, 0.5 * db)]
            if counted:
                left = [2]

                def one(_e, left=left, done=done) -> None:
                    left[0] -= 1
                    if not left[0]:
                        hop_last(env, (lambda _x, done=done: succeed_last(done),))

                for ev in evs:
                    ev.callbacks.append(one)
            else:
                env.all_of(evs).callbacks.append(lambda _e, done=done: done.succeed())
            other = env.timeout(0.5 * dc)  # due at the same instants; its zero-delay follow-up lands after them
            other.callbacks.append(lambda _e, k=k: log.append((env.now, k, "other")))
            other.callbacks.append(lambda _e, k=k: env.timeout(0).callbacks.append(
                lambda _f: log.append((env.now, k, "follow-up"))))
            yield done
            log.append((env.now, k, "all"))

    for k in range(3):
        env.process(proc(k))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=12))
def test_hop_last_keeps_the_order_of_all_of(plan):
    """A multi-link transfer's end (sim.timing.network: a count and ``hop_last`` instead of ``env.all_of``)
    happens in the Condition's order, also when other events share its instant."""
    assert _log_of(_all_of_chains, plan, False) == _log_of(_all_of_chains, plan, True)
