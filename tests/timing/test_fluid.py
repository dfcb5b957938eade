"""Processor-sharing server: hand-computed completion times."""
import pytest
import simpy

from sim.timing.fluid import FluidShare, link_share


def _run(server_factory, jobs):
    env = simpy.Environment()
    srv = server_factory(env)
    done = {}

    def job(name, t0, size, load=0.0):
        yield env.timeout(t0)
        yield srv.serve(size, load)
        done[name] = env.now

    for j in jobs:
        env.process(job(*j))
    env.run()
    return done, srv


def test_link_shares_bandwidth_between_concurrent_transfers():
    # 100 B/s link. a alone for 0.5 s (50 B), then both at 50 B/s: a ends at 1.5 s,
    # b has 50 B left and finishes alone at 2.0 s.
    done, srv = _run(lambda env: link_share(env, 100.0), [("a", 0, 100), ("b", 0.5, 100)])
    assert done == pytest.approx({"a": 1.5, "b": 2.0})
    assert srv.busy_time == pytest.approx(2.0)
    assert srv.served == pytest.approx(200.0)


def test_no_contention_gives_each_transfer_full_bandwidth():
    done, _ = _run(lambda env: link_share(env, 100.0, contention=False), [("a", 0, 100), ("b", 0.5, 100)])
    assert done == pytest.approx({"a": 1.0, "b": 1.5})


def test_rate_depending_on_load_like_a_decode_batch():
    # per-job rate 1/(0.01 + 0.001*n) tokens/s: alone 1/0.011; two jobs 1/0.012.
    done, _ = _run(lambda env: FluidShare(env, lambda n, load: 1.0 / (0.01 + 0.001 * n)),
                   [("a", 0, 10), ("b", 0, 20)])
    # both run 10 iterations at 12 ms, then b runs 10 more alone at 11 ms.
    assert done["a"] == pytest.approx(0.12)
    assert done["b"] == pytest.approx(0.12 + 0.11)


def test_zero_size_completes_immediately():
    done, _ = _run(lambda env: link_share(env, 10.0), [("a", 1.0, 0)])
    assert done == {"a": 1.0}
