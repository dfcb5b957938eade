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
