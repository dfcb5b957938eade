"""Topology paths and the network model: hand-computed transfer times on a 2-rack cluster."""
import networkx as nx
import numpy as np
import pytest
import simpy

from sim.config import load_config
from sim.errors import InputError
from sim.timing.network import Network
from sim.timing.topology import Topology, TopologySpec

MB = 1e6


def _two_racks(**over):
    sets = ["cluster.racks=2", "cluster.gpus_per_rack=16", "hardware.gpus_per_node=8", "model.tp=1",
            "model.name=llama-3-8b"] + [f"{k}={v}" for k, v in over.items()]
    return load_config(overrides=sets)


@pytest.fixture
def topo():
    # defaults: NVLink 900 GB/s 1 us, NIC 50 GB/s, rack 3 us, EIC 4 nodes x 50 GB/s 3 us,
    # cross-rack 15 us, spine 400 GB/s, remote SSD 200 us 100 GB/s, PCIe 25 GB/s 10 us
    return Topology.from_config(_two_racks())


def test_transfer_times_by_hand(topo):
    t = topo
    nb = 100 * MB
    cases = [
        (t.gpu(0), t.gpu(1), 1e-6 + nb / 450e9),  # same node: NVLink, 450 GB/s each way
        (t.gpu(0), t.gpu(9), 3e-6 + nb / 50e9),  # other node, same rack: NIC -> ToR -> NIC
        (t.gpu(0), t.gpu(17), 15e-6 + nb / 50e9),  # other rack: NIC, 2 spine hops, NIC
        (t.gpu(0), t.dram(0), 10e-6 + nb / 25e9),  # own host over PCIe
        (t.gpu(3), t.eic(0), 3e-6 + nb / 50e9),  # rack EIC pool (pool side 200 GB/s, the NIC limits)
        (t.eic(1), t.gpu(3), 15e-6 + nb / 50e9),  # other rack's pool: 15 - 3 + 3 us
        (t.gpu(3), t.ssd(), 200e-6 + nb / 50e9),  # remote SSD: NIC is the bottleneck
        (t.eic(0), t.ssd(), (3 - 1.5 + 6 + 192.5) * 1e-6 + nb / 100e9),  # pool -> SSD: SSD pool 100 GB/s
        (t.dram(0), t.eic(0), 3e-6 + nb / 50e9),  # host NIC -> ToR -> pool
    ]
    for src, dst, expect in cases:
        assert topo.transfer_time_s(src, dst, nb) == pytest.approx(expect, rel=1e-12), (src, dst)
        assert topo.transfer_time_s(dst, src, nb) == pytest.approx(expect, rel=1e-12), (dst, src)


def test_lanes_split_per_gpu_links_only(topo):
    # a TP-2 worker moves its two shards over two NICs: 100 GB/s, but the EIC pool side stays 200 GB/s
    assert topo.bottleneck_bytes_s(topo.gpu(0), topo.eic(0), lanes=2) == pytest.approx(100e9)
    assert topo.bottleneck_bytes_s(topo.gpu(0), topo.eic(0), lanes=8) == pytest.approx(200e9)


def test_structural_paths_match_networkx_shortest_paths(topo):
    g = topo.graph
    ends = [n for n in g if n[0] in ("gpu", "dram", "eic", "ssd")]
    weight = lambda u, v, d: d["attrs"].latency_s + 1e-12  # noqa: E731  (hop count breaks ties)
    for a in ends:
        for b in ends:
            if a == b:
                continue
            p = topo.path(a, b)
            nodes = [p[0][0]] + [v for _u, v in p]
            if {a[0], b[0]} == {"gpu", "dram"} and topo.node_of((a if a[0] == "gpu" else b)[1]) == \
                    (b if b[0] == "dram" else a)[1]:
                assert len(p) == 1 and topo.edge(*p[0]).cls == "pcie"  # by design: own host over PCIe
                continue
            assert nodes == nx.shortest_path(g, a, b, weight=weight), (a, b)


def test_zero_eic_nodes_means_no_eic_endpoint():
    t = Topology.from_config(_two_racks(**{"cluster.eic_nodes_per_rack": 0}))
    assert not t.has_eic and ("eic", 0) not in t.graph
    t2 = Topology.from_config(_two_racks(**{"hardware.eic.capacity_gib": 0}))
    assert not t2.has_eic


def test_inconsistent_latencies_are_input_errors():
    with pytest.raises(InputError, match="cross_rack_latency_us"):
        Topology(TopologySpec(racks=2, gpus_per_rack=8, gpus_per_node=8, cross_rack_latency_s=1e-6))
    with pytest.raises(InputError, match="eic.latency_us"):
        Topology(TopologySpec(racks=2, gpus_per_rack=8, gpus_per_node=8, eic_latency_s=1e-6))


def test_jitter_cv_zero_equals_no_jitter(topo):
    a = Network(topo, jitter_cv=0.0, seed=1)
    b = Network(topo, jitter_cv=0.0, seed=2)
    pairs = [(topo.gpu(0), topo.eic(0)), (topo.gpu(5), topo.ssd()), (topo.gpu(0), topo.gpu(20))]
    for i in range(300):
        src, dst = pairs[i % 3]
        nb = (i + 1) * MB
        exact = topo.transfer_time_s(src, dst, nb)
        assert a.transfer_time(src, dst, nb) == exact
        assert b.transfer_time(src, dst, nb) == exact


def test_jitter_has_mean_one_and_the_configured_cv(topo):
    net = Network(topo, jitter_cv=0.5, seed=3, contention=False)
    base = topo.transfer_time_s(topo.gpu(0), topo.eic(0), 50e9)  # 1 s of bytes + 3 us: the byte factor rules
    x = np.array([net.transfer_time(topo.gpu(0), topo.eic(0), 50e9) for _ in range(40000)]) / base
    assert x.mean() == pytest.approx(1.0, abs=0.02)
    assert x.std() / x.mean() == pytest.approx(0.5, rel=0.05)
    again = Network(topo, jitter_cv=0.5, seed=3, contention=False)
    y = np.array([again.transfer_time(topo.gpu(0), topo.eic(0), 50e9) for _ in range(40000)]) / base
    assert np.array_equal(x, y)  # same seed, same draws
    other = Network(topo, jitter_cv=0.5, seed=4, contention=False)
    assert other.transfer_time(topo.gpu(0), topo.eic(0), 50e9) != x[0] * base


def test_tail_slowdowns_hit_the_configured_share(topo):
    net = Network(topo, tail_prob=0.1, tail_multiplier=10, seed=3, contention=False)
    base = topo.transfer_time_s(topo.gpu(0), topo.eic(0), 50e9)
    x = np.array([net.transfer_time(topo.gpu(0), topo.eic(0), 50e9) for _ in range(40000)]) / base
    slow = np.isclose(x, 10.0)
    assert np.all(slow | np.isclose(x, 1.0))  # without jitter a transfer is either plain or exactly 10x
    assert slow.sum() == net.tail_events
    assert slow.mean() == pytest.approx(0.1, abs=0.006)


def _timed(net, env, jobs):
    done = {}

    def proc(name, src, dst, nb, delay):
        yield env.timeout(delay)
        t0 = env.now
        yield net.transfer(env, src, dst, nb)
        done[name] = env.now - t0

    for j in jobs:
        env.process(proc(*j))
    env.run()
    return done


def test_contention_shares_a_link(topo):
    t = topo
    nb = 50e9  # 1 s on a 50 GB/s NIC
    env = simpy.Environment()
    net = Network(t, contention=True)
    got = _timed(net, env, [("a", t.gpu(0), t.eic(0), nb, 0), ("b", t.gpu(0), t.eic(0), nb, 0),
                            ("c", t.gpu(1), t.eic(0), nb, 0)])
    # a and b share GPU 0's NIC (2 s); c has its own NIC; the 200 GB/s pool link carries 3 x 50 GB at
    # 200/3 GB/s each while all three are active - never the bottleneck
    assert got["a"] == pytest.approx(3e-6 + 2.0, rel=1e-9)
    assert got["b"] == pytest.approx(3e-6 + 2.0, rel=1e-9)
    assert got["c"] == pytest.approx(3e-6 + 1.0, rel=1e-9)
    env2 = simpy.Environment()
    free = Network(t, contention=False)
    got2 = _timed(free, env2, [("a", t.gpu(0), t.eic(0), nb, 0), ("b", t.gpu(0), t.eic(0), nb, 0)])
    assert got2["a"] == pytest.approx(t.transfer_time_s(t.gpu(0), t.eic(0), nb), rel=1e-12)
    assert net.bytes_by_class["nic"] == 3 * nb and net.bytes_by_class["eic"] == 3 * nb
    assert net.bytes_by_class["spine"] == 0


def test_background_send_slows_a_concurrent_transfer(topo):
    t = topo
    env = simpy.Environment()
    net = Network(t, contention=True)
    net.send(env, t.gpu(0), t.eic(0), 50e9)  # a write-back on GPU 0's NIC (no latency: nobody waits)
    got = _timed(net, env, [("a", t.gpu(0), t.eic(0), 50e9, 0)])
    # the write-back runs alone for a's 3 us latency (150 kB ahead), then both share 50 GB/s until it
    # ends at 2 s - 3 us; a's last 150 kB take 3 us alone: a ends at exactly 2 s after it started
    assert got["a"] == pytest.approx(2.0, rel=1e-9)
    assert net.stats()["link_busy_s"]["nic"] == pytest.approx(2.0, rel=1e-9)


def test_write_back_yields_to_a_transfer_on_read_first_links(topo):
    # As above, but the links give write-backs 10%: during a's 3 us latency the write-back has the NIC
    # (150 kB done); then a gets 45 GB/s and finishes its 50 GB at 3e-6 + 50e9/45e9 after it started.
    t = topo
    env = simpy.Environment()
    net = Network(t, contention=True, writeback_share=0.1)
    net.send(env, t.gpu(0), t.eic(0), 50e9)
    got = _timed(net, env, [("a", t.gpu(0), t.eic(0), 50e9, 0)])
    assert got["a"] == pytest.approx(3e-6 + 50e9 / 45e9, rel=1e-9)


def test_host_bridge_binds_concurrent_dram_loads(topo):
    # Two GPUs of node 0 load 25 GB each from host DRAM (PCIe 25 GB/s each, 10 us). Bridge 30 GB/s:
    # 15 GB/s each on the bridge -> 10 us + 25/15 s. Without a bridge: 10 us + 1 s.
    t = topo
    for bridge, want in ((30e9, 10e-6 + 25 / 15), (0.0, 10e-6 + 1.0)):
        env = simpy.Environment()
        net = Network(t, contention=True, host_bridge_bytes_s=bridge)
        got = _timed(net, env, [(g, t.dram(0), t.gpu(g), 25e9, 0) for g in (0, 1)])
        assert got[0] == pytest.approx(want, rel=1e-9) and got[1] == pytest.approx(want, rel=1e-9)
        assert net.bytes_by_class["pcie"] == 50e9  # the bridge is not a link class: bytes counted once
    # a GPU of node 1 does not cross node 0's bridge; an uncontended estimate sees the bridge as bottleneck
    net = Network(t, contention=True, host_bridge_bytes_s=10e9)
    assert net.estimate_s(simpy.Environment(), t.dram(1), t.gpu(8), 10e9) == pytest.approx(10e-6 + 1.0)


def test_estimate_reflects_the_current_share(topo):
    t = topo
    env = simpy.Environment()
    net = Network(t, contention=True, writeback_share=0.1)
    assert net.estimate_s(env, t.eic(0), t.gpu(0), 50e9) == pytest.approx(3e-6 + 1.0)
    net.transfer(env, t.eic(0), t.gpu(0), 500e9)  # a load in flight (still in its latency: not on the links)
    env.run(until=1e-3)
    # now on the path: a second load would get half of the GPU's 50 GB/s NIC
    assert net.estimate_s(env, t.eic(0), t.gpu(0), 50e9) == pytest.approx(3e-6 + 2.0)


@pytest.mark.parametrize("over", [{}, {"cluster.eic_nodes_per_rack": 0}, {"cluster.remote_ssd_capacity_gib": 0},
                                  {"cluster.racks": 3, "cluster.gpus_per_rack": 8, "hardware.gpus_per_node": 4}])
def test_structural_edges_nodes_and_counts_match_the_graph(over):
    """``edge``, ``has`` and the summary's counts answer from the structure; the graph agrees on every
    node, every pair of nodes (edge or KeyError) and a few names that are not nodes."""
    t = Topology.from_config(_two_racks(**over))
    g = t.graph
    nodes = list(g)
    assert t.summary()["graph_nodes"] == g.number_of_nodes() == t.number_of_nodes()
    assert t.summary()["graph_edges"] == g.number_of_edges() == t.number_of_edges()
    for u in nodes:
        assert t.has(u) and t.has((u[0], np.int64(u[1])) if len(u) == 2 else u)
        for v in nodes:
            if g.has_edge(u, v):
                assert t.edge(u, v) is g.edges[u, v]["attrs"]
            else:
                with pytest.raises(KeyError):
                    t.edge(u, v)
    outside = [("gpu", t.n_gpus), ("gpu", -1), ("nvsw", t.n_nodes), ("tor", t.n_racks), ("eic", t.n_racks),
               ("dram", "0"), ("spine", 0), ("x", 0), (), "gpu", ("gpu", 0, 1)]
    for x in outside + ([("eic", 0)] if not t.has_eic else []) + ([("ssd",)] if not t.has_remote_ssd else []):
        assert not t.has(x) and x not in g, x


def test_link_class_counts_are_the_sum_over_each_transfers_path(topo):
    """Counts are kept per route and summed per class when read: equal to adding every transfer's
    bytes (and 1) to the class of each edge of its path, whichever call moved it."""
    t = topo
    rng = np.random.default_rng(7)
    eps = [t.gpu(0), t.gpu(1), t.gpu(9), t.dram(0), t.dram(1), t.eic(0), t.eic(1), t.ssd()]
    want_b = dict.fromkeys(net_classes := Network(t).bytes_by_class, 0)
    want_n = dict.fromkeys(net_classes, 0)
    env = simpy.Environment()
    net = Network(t, contention=True, writeback_share=0.2, jitter_cv=0.1)
    moved = 0
    for _ in range(300):
        src, dst = (eps[k] for k in rng.integers(0, len(eps), 2))
        nb = int(rng.integers(0, 3)) * 1_000_003 + int(rng.integers(0, 2))  # 0 bytes counts nothing
        lanes = int(rng.integers(1, 3))
        call = int(rng.integers(0, 5))
        if call == 0:
            net.account(src, dst, nb, lanes)
        elif call == 1:
            net.send(env, src, dst, nb, lanes)
        elif call == 2:
            net.transfer(env, src, dst, nb, lanes)
        elif call == 3:
            net.transfer_time(src, dst, nb, lanes)
        else:
            net.prefetch(env, src, dst, nb, lanes)
        if nb > 0 and src != dst:
            moved += 1
            for u, v in t.path(src, dst):
                want_b[t.edge(u, v).cls] += nb
                want_n[t.edge(u, v).cls] += 1
    env.run()
    assert net.bytes_by_class == want_b and net.transfers_by_class == want_n
    assert net.transfers == moved == net.stats()["transfers"]
