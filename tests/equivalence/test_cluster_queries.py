"""Shortcuts of the compiled cluster cache's router queries against the plain walk.

``node_copies`` (a node's HBM copies of a block, kept in the index) replaces
a probe per peer in ``probe`` and ``acquire``; ``near`` (prefix_aware's
in-rack sums) looks in the rack's pool first. Random operations on a small
cluster, then every worker's queries against a brute-force scan of the
state and against ``probe``.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cache.layout import Layout
from sim.engine import cluster_state as K
from sim.engine.cluster_cache import CompiledClusterCache
from sim.timing.topology import Topology
from tests.equivalence.test_cluster_compiled import _cfg

N_BLOCKS = 60


def _cache(cfg, write_through: bool) -> CompiledClusterCache:
    lay = Layout(Topology.from_config(cfg), 1)  # 2 racks x 2 nodes x 8 workers
    return CompiledClusterCache(lay, hbm_blocks=4, dram_blocks=6, eic_blocks=10, ssd_blocks=40, block_bytes=1,
                                n_blocks=N_BLOCKS, recency=True, write_through=write_through)


def _brute_node_copies(c: CompiledClusterCache, node: int, b: int) -> int:
    wpn = c.layout.workers_per_node
    return sum(K.find_in(c.G, c.H, w, b) >= 0 for w in range(node * wpn, (node + 1) * wpn)
               if c.T[w, K.CREATED])


ops = st.lists(st.tuples(st.booleans(), st.integers(0, 31), st.lists(st.integers(0, N_BLOCKS - 1), min_size=1,
                                                                     max_size=9)), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(ops=ops, write_through=st.booleans())
def test_node_copies_and_near_match_the_plain_walk(ops, write_through):
    c = _cache(_cfg(), write_through)
    for is_store, w, blocks in ops:
        arr = np.array(blocks, np.int64)
        c._reserve(len(arr))
        if is_store:
            c.store(w, arr, 0, 0)
        else:
            c.acquire(w, arr, 0)
        ws = list(range(c.layout.n_workers))
        for node in range(c.topo.n_nodes):
            for b in set(blocks):
                assert K.node_copies(c.G, c.H, node, b) == _brute_node_copies(c, node, b)
        probes = c.probe_many(ws, arr, in_rack=True)
        assert c.near_many(ws, arr) == [(p[0] + p[1] + p[2] + p[3], p[0]) for p in probes]
        # A router's few candidates, node-mates not first in node order: a later node-mate reuses the
        # first one's walk (near is the node's) and counts only its own HBM hits.
        few = [ws[(7 * k + w) % len(ws)] for k in range(6)]
        assert c.near_many(few, arr) == [(p[0] + p[1] + p[2] + p[3], p[0])
                                         for p in c.probe_many(few, arr, in_rack=True)]


@settings(max_examples=40, deadline=None)
@given(ops=ops, write_through=st.booleans(), rack_load=st.lists(st.integers(0, 3), min_size=2, max_size=2),
       off=st.integers(0, 1), k=st.integers(1, 5), scan=st.integers(1, 3))
def test_route_lookup_matches_the_two_lookups(ops, write_through, rack_load, off, k, scan):
    """The router's one-call lookup = hbm_candidates + eic_prefix_racks stably sorted by rack load."""
    c = _cache(_cfg(), write_through)
    load = np.array(rack_load, np.int64)
    for is_store, w, blocks in ops:
        arr = np.array(blocks, np.int64)
        if is_store:
            c.store(w, arr, 0, 0)
        else:
            c.acquire(w, arr, 0)
        want = (c.hbm_candidates(arr, k), sorted(c.eic_prefix_racks(arr, off, scan), key=lambda r: load[r]))
        assert c.route_lookup(arr, k, off, scan, load) == want


def test_route_lookup_orders_tied_racks_as_a_stable_sort():
    """Many operations, so both racks' pools often hold a request's longest prefix: ties in rack load
    keep the scan order (from `off` round), as ``sorted`` does."""
    rng = np.random.default_rng(1)
    c = _cache(_cfg(), False)
    two = 0
    for _ in range(600):
        w, arr = int(rng.integers(0, 32)), rng.integers(0, N_BLOCKS, int(rng.integers(1, 10))).astype(np.int64)
        if rng.random() < 0.5:
            c.store(w, arr, 0, 0)
        else:
            c.acquire(w, arr, 0)
        for off in (0, 1):
            found = c.eic_prefix_racks(arr, off, 3)
            two += len(found) == 2
            for load in ([0, 0], [1, 0], [0, 1]):
                la = np.array(load, np.int64)
                assert c.route_lookup(arr, 4, off, 3, la) == (c.hbm_candidates(arr, 4),
                                                              sorted(found, key=lambda r: load[r]))
    assert two > 10  # the ordering was exercised
