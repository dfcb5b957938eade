"""The timed replay's shortcuts (issue #19 speed) against the general code they stand in for:
``run_to_end`` vs ``env.run()``, ``serve_quiet`` vs ``serve``, ``hbm_only`` vs ``choose_prefix``, ``wake_after``
vs ``timer``, ``NodeIO.write_back``'s quiet path vs the ``through_quiet`` and ``serve_quiet`` calls it makes."""
from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.timing.event_loop import run_to_end
from sim.timing.fluid import FluidShare
from sim.timing.load_policy import LOAD_POLICIES, PrefixPart, choose_prefix, hbm_only
from sim.timing.overlap import OVERLAPS
from sim.timing.priority_link import PriorityLink, through, through_quiet


def _model(env: simpy.Environment, log: list) -> None:
    """Processes, timeouts at equal times, conditions and callbacks: an event order to compare."""

    def worker(k: int):
        for j in range(3):
            yield env.timeout(0.5 * ((k + j) % 3))
            log.append((env.now, "w", k, j))
        ev = env.event()
        env.timeout(0.25).callbacks.append(lambda _e: ev.succeed(k))
        v = yield ev | env.timeout(1.0)
        log.append((env.now, "or", k, list(v.values())))

    for k in range(4):
        env.process(worker(k))


def test_run_to_end_processes_events_as_env_run():
    a, b = simpy.Environment(), simpy.Environment()
    log_a: list = []
    log_b: list = []
    _model(a, log_a)
    _model(b, log_b)
    a.run()
    run_to_end(b)
    assert log_b == log_a and len(log_a) == 16
    assert b.now == a.now == 2.5  # the losing 1 s timeouts still run out


def test_run_to_end_crashes_on_a_failed_event_like_env_run():
    def boom(env):
        yield env.timeout(1.0)
        raise KeyError("lost")

    for run in (simpy.Environment.run, run_to_end):
        env = simpy.Environment()
        env.process(boom(env))
        with pytest.raises(KeyError, match="lost"):
            run(env)
        assert env.now == 1.0


def _link_timeline(quiet: bool) -> tuple[list, PriorityLink]:
    """Reads waited for, write-backs (quiet or not) beside them: the reads' finish times."""
    env = simpy.Environment()
    link = PriorityLink(env, 10e9, 5e9, writeback_share=0.2)
    other = PriorityLink(env, 8e9, 4e9, writeback_share=0.3)
    done: list = []

    def reads():
        for k in range(6):
            ev = through(env, [(link, "read"), (other, "read")], 3e8 * (k + 1), latency_s=1e-5)
            ev.callbacks.append(lambda _e, k=k: done.append((k, env.now)))
            if quiet:
                through_quiet(env, [(link, "write"), (other, "write")], 2e8 * (6 - k))
            else:
                through(env, [(link, "write"), (other, "write")], 2e8 * (6 - k))
            yield env.timeout(0.03)

    env.process(reads())
    env.run()
    return done, link


def test_quiet_write_backs_leave_the_timeline_unchanged():
    loud, a = _link_timeline(quiet=False)
    quiet, b = _link_timeline(quiet=True)
    assert quiet == loud and len(loud) == 6  # bit for bit
    assert b.bytes == a.bytes
    assert (b.write.served, b.write.busy_time) == (a.write.served, a.write.busy_time)


def test_fluid_serve_quiet_of_nothing_is_nothing():
    env = simpy.Environment()
    s = FluidShare(env, lambda n, _l: 1.0 / n)
    s.serve_quiet(0.0)
    assert s.active == 0 and not env._queue


@pytest.mark.parametrize("policy", LOAD_POLICIES)
@pytest.mark.parametrize("overlap", OVERLAPS)
def test_hbm_only_is_choose_prefix_with_empty_lower_parts(policy, overlap):
    def cost(new: int, cached: int) -> float:
        return 1e-4 * new + 3e-9 * new * (cached + new / 2) + 1e-3

    for th, n_in in ((0, 1), (0, 500), (160, 170), (4096, 4096), (512, 9000)):
        want = choose_prefix([PrefixPart(th), PrefixPart(0), PrefixPart(0)], n_in, cost, layers=80,
                             overlap=overlap, policy=policy)
        assert hbm_only(th, n_in, cost, 3) == want


def test_hbm_only_refuses_what_choose_prefix_refuses():
    with pytest.raises(ValueError, match="within the input"):
        hbm_only(200, 100, lambda n, c: 0.0, 3)


def test_succeed_and_first_of_fire_schedule_as_event_succeed():
    """event_loop.succeed / FirstOf.fire: the same fields and the same queue entry as Event.succeed."""
    from sim.timing.event_loop import FirstOf, succeed

    a, b = simpy.Environment(), simpy.Environment()
    for env in (a, b):
        env.timeout(0.5)  # an id taken before, so the entries' ids are not 0
    ea, eb = simpy.Event(a), simpy.Event(b)
    fa, fb = FirstOf(a), FirstOf(b)
    ea.succeed()
    succeed(eb)
    fa.succeed()
    fb.fire(eb)
    fb.fire(eb)  # the second of two fired events: nothing more is scheduled
    assert [e[:3] for e in a._queue] == [e[:3] for e in b._queue] and len(b._queue) == 3
    for x, y in ((ea, eb), (fa, fb)):
        assert (x._ok, x._value, x.triggered) == (y._ok, y._value, y.triggered)
    with pytest.raises(RuntimeError):
        succeed(eb)


def test_prefill_s_is_iteration_s_of_one_chunk_bit_for_bit():
    from sim.config import Config
    from sim.timing.step_cost import StepModel

    m = StepModel.from_config(Config())
    fresh = StepModel.from_config(Config())  # no memo shared with m
    for new, cached in [(1, 0), (7, 3), (16, 4096), (1000, 0), (8191, 12345), (70000, 5), (0, 9)]:
        got = m.prefill_s(new, cached)
        assert got == fresh.iteration_s([(new, cached)], 0, 0.0)
        assert m.prefill_s(new, cached) == got  # the memoised terms give the same float
    with pytest.raises(ValueError):
        m.prefill_s(-1, 0)


def test_histogram_list_counts_round_trip_and_merge():
    import numpy as np

    from sim.replica.histogram import IterationHistogram

    a, b = IterationHistogram(), IterationHistogram()
    a.add_progression(0.010, 0.0004, 500)  # crosses many bins
    a.add(0.02)
    b.add_progression(0.5e-3, 0.0, 7)
    ca, cb = a.counts, b.counts
    assert ca.dtype == np.int64 and ca.sum() == 501 and cb.sum() == 7
    a.merge(b)
    assert (a.counts == ca + cb).all() and a.total == 508
    c = IterationHistogram()
    c.counts += a.counts  # partition_merge adds saved counts this way
    assert (c.counts == a.counts).all()
    with pytest.raises(ValueError):
        c.counts = np.zeros(3, dtype=np.int64)


def test_wake_after_takes_timers_queue_entry_and_cancels_quietly():
    """event_loop.wake_after: the (time, priority, id) ``timer`` would schedule, its callbacks called once
    under run_to_end and env.run; a cancelled one (callbacks = ()) comes up and calls nobody."""
    from sim.timing.event_loop import timer, wake_after

    for run in (run_to_end, simpy.Environment.run):
        a, b = simpy.Environment(), simpy.Environment()
        log: list = []
        for env in (a, b):
            env.timeout(0.5)
        ta = [timer(a, d) for d in (0.25, 0.0, 0.25)]
        wb = [wake_after(b, d, (lambda e, k=k, env=b, log=log: log.append((k, env.now)),))
              for k, d in enumerate((0.25, 0.0, 0.25))]
        assert [e[:3] for e in a._queue] == [e[:3] for e in b._queue]
        assert all(t._ok for t in ta) and all(w._ok for w in wb)
        wb[2].callbacks = ()
        run(b)
        assert log == [(1, 0.0), (0, 0.25)] and b.now == 0.5 and not b._queue


def _write_backs(inline: bool, ops: list[tuple[int, int, int, float]]):
    """Two workers' quiet write-backs at the given times, through NodeIO.write_back (inline) or the
    calls it makes, written out (through_quiet and serve_quiet); loads beside them."""
    from sim.config import load_config
    from sim.timing.node_io import NodeIO

    env = simpy.Environment()
    cfg = load_config(overrides=["hardware.host_bridge_gb_s=20"])
    io = NodeIO(env, cfg, n_workers=2, gpus_per_worker=1, block_bytes=3_000_000, layers=8)
    done: list = []
    queue: list = []  # the queue's (time, priority, id) entries after each write-back: the event order

    def proc():
        for wk, h2d, d2s, dt in ops:
            if dt > 0:
                yield env.timeout(dt)
            if inline:
                assert io.write_back(wk, h2d, d2s, False) == []
            else:
                if h2d:
                    through_quiet(env, io._dram_out(wk), h2d * io.bb)
                if d2s:
                    io.nvme.serve_quiet(d2s * io.bb, "write")
            queue.append(sorted(e[:3] for e in env._queue))
            for ev in io.load(wk, h2d % 3, d2s % 2):
                ev.callbacks.append(lambda _e: done.append(env.now))

    env.process(proc())
    run_to_end(env)
    links = [*io.pcie_in, *io.pcie_out, io.bridge_in, io.bridge_out, io.nvme]
    state = [(dict(link.bytes), c.served, c.busy_time, c._v) for link in links for c in (link.read, link.write)]
    return done, state, queue, env.now


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 40), st.integers(0, 9),
                          st.sampled_from([0.0, 0.0, 1e-4, 3e-3, 0.02])), max_size=30))
def test_node_io_quiet_write_back_is_through_quiet_bit_for_bit(ops):
    assert _write_backs(True, ops) == _write_backs(False, ops)
