"""``LeanProcess``, ``arrival_chain`` and ``event`` (sim.timing.event_loop) against the SimPy code they stand
in for: the same callbacks in the same order on tie-heavy models (many events at one instant)."""
from __future__ import annotations

import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.timing.event_loop import FirstOf, arrival_chain, event, lean_process, run_to_end


def _workers(env: simpy.Environment, log: list, lean: set[int]) -> None:
    """Processes (those in `lean` as LeanProcess) with timeouts at equal times, an or-condition whose
    value is read, a zero-delay timeout, an already processed event and a failed event caught."""

    def worker(k: int):
        for j in range(3):
            yield env.timeout(0.5 * ((k + j) % 3))
            log.append((env.now, "w", k, j))
        ev = env.event()
        env.timeout(0.25).callbacks.append(lambda _e: ev.succeed(k))
        v = yield ev | env.timeout(1.0)
        log.append((env.now, "or", k, list(v.values())))
        v = yield ev  # processed already: resumes at once with its value
        log.append((env.now, "again", k, v))
        bad = env.event()
        env.timeout(0.0).callbacks.append(lambda _e: bad.fail(KeyError(k)))
        try:
            yield bad
        except KeyError as e:
            log.append((env.now, "caught", k, e.args))
        yield env.timeout(0)
        log.append((env.now, "end", k))

    for k in range(6):
        if k in lean:
            lean_process(env, worker(k))
        else:
            env.process(worker(k))


def test_lean_process_runs_as_env_process():
    ref_env, ref = simpy.Environment(), []
    _workers(ref_env, ref, set())
    ref_env.run()
    for lean in ({0, 2, 4}, {1, 3, 5}, set(range(6))):
        env, log = simpy.Environment(), []
        _workers(env, log, lean)
        run_to_end(env)
        assert log == ref, lean
    assert len(ref) == 6 * 7


def test_lean_process_crashes_on_an_uncaught_failure():
    def boom(env):
        yield env.timeout(1.0)
        raise KeyError("lost")

    env = simpy.Environment()
    lean_process(env, boom(env))
    try:
        run_to_end(env)
    except KeyError as e:
        assert e.args == ("lost",)
    else:
        raise AssertionError("the failure was lost")
    assert env.now == 1.0


def _arrivals_model(env: simpy.Environment, times: list[float], log: list, chain: bool, every: int) -> None:
    """Arrivals (as the reference process or as arrival_chain) whose handlers make same-instant events
    (a zero timeout, a succeeded event, a process), beside a process whose timeouts land on arrival times."""

    def handle(j: int) -> None:
        log.append((env.now, "h", j))
        env.timeout(0).callbacks.append(lambda _e: log.append((env.now, "t0", j)))
        env.timeout(0.25).callbacks.append(lambda _e: log.append((env.now, "t25", j)))  # on a later arrival
        ev = env.event()
        ev.callbacks.append(lambda _e: log.append((env.now, "ev", j)))
        ev.succeed()

        def proc():
            log.append((env.now, "p", j))
            yield env.timeout(times[j] % 0.5)
            log.append((env.now, "p2", j))

        env.process(proc())

    def visit(i: int, now: float) -> None:
        log.append((now, "visit", i))

    def background():
        for t in sorted(set(times)):
            if t > env.now:
                yield env.timeout(t - env.now)
            log.append((env.now, "bg"))

    env.process(background())
    if chain:
        arrival_chain(env, times, handle, every, visit)
        return

    def arrivals():  # arrival_chain's docstring: the process it stands in for
        due: list[int] = []
        for i in range(len(times)):
            dt = times[i] - env.now
            if dt > 0:
                nxt = env.timeout(dt)
                for j in due:
                    handle(j)
                due.clear()
                yield nxt
            due.append(i)
            if every and i % every == 0:
                visit(i, env.now)
        for j in due:
            handle(j)

    env.process(arrivals())


@settings(max_examples=60, deadline=None)
# 0.025 then 0.104: the wake-up's clock, 0.025 + (0.104 - 0.025), falls short of 0.104 (still due then)
@given(st.lists(st.sampled_from([0.0, 0.025, 0.104, 0.25, 0.5, 0.75, 1.0, 2.5]), min_size=0, max_size=25),
       st.integers(0, 3))
def test_arrival_chain_is_the_arrivals_process(raw: list[float], every: int):
    times = sorted(raw)
    ref_env, ref = simpy.Environment(), []
    _arrivals_model(ref_env, times, ref, chain=False, every=every)
    ref_env.run()
    env, log = simpy.Environment(), []
    _arrivals_model(env, times, log, chain=True, every=every)
    run_to_end(env)
    assert log == ref
    assert sum(1 for e in log if e[1] == "h") == len(times)


def test_event_builds_what_the_constructor_builds():
    env = simpy.Environment()
    for cls in (simpy.Event, FirstOf):
        a, b = cls(env), event(env, cls)
        assert type(b) is cls and vars(b) == vars(a) and b.callbacks is not a.callbacks
        b.succeed(None)  # a usable event: scheduled and processed as the constructor's
    run_to_end(env)
    assert env.now == 0.0


def test_event_skips_the_constructor_with_this_simpy(monkeypatch):
    """The shortcut is in use here (its guard found this SimPy's Event built the same), not the fallback."""
    def no_init(self, env):
        raise AssertionError("Event.__init__ called")

    monkeypatch.setattr(simpy.Event, "__init__", no_init)
    ev = event(simpy.Environment())
    assert ev.callbacks == [] and not ev.triggered
