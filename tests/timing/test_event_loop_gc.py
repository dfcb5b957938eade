"""run_to_end tunes the cycle collector only while it runs, and puts it back even when an event fails."""
import gc

import pytest
import simpy

from sim.timing.event_loop import GC_GEN0, run_to_end


def test_collector_restored_after_a_run_and_after_a_crash():
    before = gc.get_threshold()
    env = simpy.Environment()
    seen = []

    def proc():
        seen.append(gc.get_threshold()[0])
        yield env.timeout(1)
        raise ValueError("boom")

    env.process(proc())
    with pytest.raises(ValueError, match="boom"):
        run_to_end(env)
    assert seen == [GC_GEN0]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    run_to_end(simpy.Environment())
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_timer_builds_what_timeout_does():
    """timer writes SimPy's private fields; on a SimPy whose internals differ it falls back to env.timeout
    (this test then flags that the faster path is off)."""
    import simpy

    from sim.timing import event_loop

    assert event_loop._same_as_timeout()
    env = simpy.Environment()
    seen = []
    for d in (0.3, 0.1, 0.2):
        event_loop.timer(env, d).callbacks.append(lambda _e, d=d: seen.append((env.now, d)))
    env.run()
    assert seen == [(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]


def test_cycles_an_earlier_run_left_are_collected_not_frozen(monkeypatch):
    """A run's environment is a reference cycle (processes <-> environment); dropped by its caller, it
    must not be frozen out of the collector's view for good by the next runs (memory grew a pod at a
    time): once COLLECT_AFTER_S seconds of runs have passed, the next run collects first."""
    import weakref

    from sim.timing import event_loop

    def one_run():
        env = simpy.Environment()

        def proc():
            yield env.timeout(1)

        env.process(proc())
        env.payload = env  # a cycle the reference counts alone cannot free
        run_to_end(env)
        return weakref.ref(env)

    gc.disable()  # only run_to_end may collect here
    try:
        monkeypatch.setattr(event_loop, "COLLECT_AFTER_S", 3600.0)
        event_loop._RUN_S[0] = 0.0
        kept = one_run()
        run_to_end(simpy.Environment())
        assert kept() is not None  # short runs: not collected yet (a full collection each would cost)
        monkeypatch.setattr(event_loop, "COLLECT_AFTER_S", 0.0)
        gone = one_run()
        run_to_end(simpy.Environment())
        assert gone() is None and kept() is None
    finally:
        gc.enable()
