"""PriorityLink and host-bridge transfers against hand-computed finish times."""
import pytest
import simpy

from sim.timing.priority_link import PriorityLink, estimate_s, through


def _at(env, ev, name, out):
    ev.callbacks.append(lambda _e: out.__setitem__(name, env.now))


def _later(env, t, fn):
    env.timeout(t).callbacks.append(lambda _e: fn())


def test_one_read_and_one_write_share_by_priority():
    # read 100 B/s, write 50 B/s, share 0.2. Read 90 B + write 30 B from t=0.
    # Both active: read at 80 B/s, write at 10 B/s. Read done at 90/80 = 1.125 s; the write has
    # 30 - 11.25 = 18.75 B left, alone at 50 B/s: done at 1.125 + 0.375 = 1.5 s.
    env = simpy.Environment()
    link = PriorityLink(env, 100.0, 50.0, writeback_share=0.2)
    out = {}
    _at(env, link.serve(90, "read"), "r", out)
    _at(env, link.serve(30, "write"), "w", out)
    env.run()
    assert out["r"] == pytest.approx(1.125)
    assert out["w"] == pytest.approx(1.5)
    assert link.bytes == {"read": 90, "write": 30, "prefetch": 0}


def test_read_arriving_mid_write_retimes_the_write():
    # write 100 B at 50 B/s from t=0; at t=1 a read of 40 B arrives (read bw 100, share 0.1).
    # t=1: write has 50 B left; read at 90 B/s -> done at 1 + 40/90; write meanwhile at 5 B/s:
    # 50 - 5 * 40/90 = 47.777.. left, then alone at 50 B/s.
    env = simpy.Environment()
    link = PriorityLink(env, 100.0, 50.0, writeback_share=0.1)
    out = {}
    _at(env, link.serve(100, "write"), "w", out)
    _later(env, 1.0, lambda: _at(env, link.serve(40, "read"), "r", out))
    env.run()
    t_r = 1 + 40 / 90
    assert out["r"] == pytest.approx(t_r)
    assert out["w"] == pytest.approx(t_r + (50 - 5 * 40 / 90) / 50)


def test_reads_share_their_class_equally():
    # two reads of 60 B at t=0 on a 120 B/s link, no writes: 60 B/s each -> both at 1 s
    env = simpy.Environment()
    link = PriorityLink(env, 120.0)
    out = {}
    _at(env, link.serve(60), "a", out)
    _at(env, link.serve(60), "b", out)
    env.run()
    assert out == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}


def test_write_bandwidth_zero_means_read_bandwidth():
    env = simpy.Environment()
    link = PriorityLink(env, 80.0, 0.0)
    out = {}
    _at(env, link.serve(40, "write"), "w", out)
    env.run()
    assert out["w"] == pytest.approx(0.5)


def test_rate_now_and_estimate():
    env = simpy.Environment()
    link = PriorityLink(env, 100.0, 50.0, writeback_share=0.1)
    assert link.rate_now("read") == 100.0
    link.serve(1000, "write")
    assert link.rate_now("read") == pytest.approx(90.0)
    link.serve(1000, "read")
    assert link.rate_now("read") == pytest.approx(45.0)  # joins one read: (1 - 0.1) x 100 / 2
    assert link.rate_now("write") == pytest.approx(2.5)  # joins one write while reads run: 0.1 x 50 / 2
    assert estimate_s([(link, "read")], 90, latency_s=0.5) == pytest.approx(0.5 + 2.0)


def test_bridge_binding_vs_not():
    # Two GPUs' PCIe links at 100 B/s each and a host bridge of 150 B/s; each GPU loads 100 B at t=0.
    # Bridge binding: each transfer gets 75 B/s on the bridge -> both done at 100/75 s.
    env = simpy.Environment()
    pcie = [PriorityLink(env, 100.0) for _ in range(2)]
    bridge = PriorityLink(env, 150.0)
    out = {}
    for g in range(2):
        _at(env, through(env, [(pcie[g], "read"), (bridge, "read")], 100), g, out)
    env.run()
    assert out[0] == pytest.approx(100 / 75) and out[1] == pytest.approx(100 / 75)
    # Bridge of 300 B/s: 150 each on it, the PCIe link (100) binds -> 1 s. With latency 0.25 s: 1.25.
    env = simpy.Environment()
    pcie = [PriorityLink(env, 100.0) for _ in range(2)]
    bridge = PriorityLink(env, 300.0)
    out = {}
    for g in range(2):
        _at(env, through(env, [(pcie[g], "read"), (bridge, "read")], 100, latency_s=0.25), g, out)
    env.run()
    assert out[0] == pytest.approx(1.25) and out[1] == pytest.approx(1.25)
    assert estimate_s([(pcie[0], "read"), (bridge, "read")], 100) == pytest.approx(1.0)


def test_no_contention_gives_every_transfer_the_full_class_bandwidth():
    env = simpy.Environment()
    link = PriorityLink(env, 100.0, 50.0, contention=False)
    out = {}
    _at(env, link.serve(100, "read"), "r", out)
    _at(env, link.serve(100, "write"), "w", out)
    env.run()
    assert out == {"r": pytest.approx(1.0), "w": pytest.approx(2.0)}


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1])
def test_share_must_be_strictly_between_zero_and_one(share):
    with pytest.raises(ValueError):
        PriorityLink(simpy.Environment(), 1.0, writeback_share=share)
