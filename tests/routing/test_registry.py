"""The router registry: names per scope, errors, and a router plugged in from outside."""
from types import SimpleNamespace

import numpy as np
import pytest

from sim.config import load_config
from sim.errors import InputError
from sim.modes.single import run_single
from sim.routing.base import SCOPES, Router
from sim.routing.node import RouteState
from sim.routing.pd import DecodeView, PrefillView, make_replica_router
from sim.routing.registry import ROUTERS, make, names, register, router_class, scope
from trace.workload import Workload


class _Tree:
    def __init__(self, held):
        self.held = held

    def match(self, blocks):
        n = 0
        for b in blocks:
            if b not in self.held:
                break
            n += 1
        return n


def _node_view(n=4):
    return RouteState(n, np.zeros(n, dtype=np.int64), lambda w, blocks: 0, seed=1)


def _prefill_view():
    reps = [SimpleNamespace(outstanding=1, load_tokens=10), SimpleNamespace(outstanding=0, load_tokens=0)]
    return PrefillView(reps, [_Tree(set()), _Tree({1, 2})], block_tokens=16, seed=1)


def _decode_view():
    dec = [SimpleNamespace(prompt_kv=k, grant_room=lambda: 1000) for k in (50, 10, 30)]
    side = SimpleNamespace(decode=dec, decode_by_rack={0: [0, 2], 1: [1]}, prefill_gpu=[0],
                           topo=SimpleNamespace(rack_of=lambda g: 0))
    return DecodeView(side, seed=1)


REQ = SimpleNamespace(i=0, inp=48, blocks=[1, 2, 3], sess=-1, pre=0)


def test_every_name_resolves_in_each_scope_it_declares():
    assert ROUTERS
    for name, cls in ROUTERS.items():
        assert cls.scopes and set(cls.scopes) <= set(SCOPES)
        for s in cls.scopes:
            assert router_class(name, s) is cls
            assert name in names(s) and name in scope(s)
    assert set(names("node")) == set(names("cluster"))
    assert "cache_aware" in names("prefill") and names("decode") == ["least_loaded", "rack_local"]


def test_every_router_chooses_a_valid_target_in_the_cheap_scopes():
    for name in names("node"):
        assert 0 <= make(name, "node", _node_view()).choose(0, [1, 2], -1) < 4
    for name in names("prefill"):
        assert make_replica_router(name, "prefill", _prefill_view()).choose(REQ) in (0, 1)
    assert make_replica_router("cache_aware", "prefill", _prefill_view()).choose(REQ) == 1  # holds the prefix
    assert make_replica_router("least_loaded", "decode", _decode_view()).choose(REQ) == 1  # fewest prompt tokens
    assert make_replica_router("rack_local", "decode", _decode_view()).choose(REQ) == 2  # lightest in rack 0


@pytest.mark.parametrize("name, scope_name, where, message", [
    ("nope", "node", "cluster.router", "unknown router 'nope'"),
    ("nope", "cluster", "cluster.router", "unknown router 'nope'"),
    ("cache_aware", "node", "cluster.router", "unknown router 'cache_aware'"),
    ("rack_local", "cluster", "cluster.router", "unknown router 'rack_local'"),
    ("rack_local", "prefill", "pd.router", "unknown prefill router 'rack_local'"),
    ("random", "decode", "pd.decode_router", "unknown decode router 'random'"),
])
def test_unknown_or_mis_scoped_names_are_input_errors(name, scope_name, where, message):
    with pytest.raises(InputError) as e:
        make(name, scope_name, _node_view())
    text = str(e.value)
    assert e.value.where == where and message in text
    assert f"(known: {', '.join(names(scope_name))})" in text
    with pytest.raises(InputError, match="^--router: "):
        router_class(name, scope_name, where="--router")


def test_unknown_scope_and_double_definitions_are_refused():
    with pytest.raises(ValueError, match="scope"):
        names("everywhere")

    class Twin(Router):
        name = "random"

    with pytest.raises(ValueError, match="already defined"):
        register(Twin)
    assert ROUTERS["random"] is not Twin


class LastWorker(Router):
    """Every request to the last worker."""

    name = "test_last_worker"
    scopes = frozenset({"node"})

    def choose(self, req, blocks, session):
        return self.s.n_workers - 1


@pytest.fixture
def last_worker():
    register(LastWorker)
    yield LastWorker
    ROUTERS.pop(LastWorker.name, None)


def test_a_router_registered_outside_drives_a_single_node_replay(last_worker):
    assert isinstance(make("test_last_worker", "node", _node_view()), LastWorker)
    assert "test_last_worker" in names("node") and "test_last_worker" not in names("cluster")
    with pytest.raises(InputError, match="unknown router 'test_last_worker'"):
        make("test_last_worker", "cluster", _node_view())
    # 100 ms apart: each prefill (>= one read of the 16 GB of weights) ends before the next arrival
    w = Workload.from_requests([[1, 2, 3], [4, 5], [1, 2, 6], [7], [8, 9]], name="toy",
                               arrival_ms=[0.0, 100.0, 200.0, 300.0, 400.0])
    base = ["model.name=llama-3-8b", "model.tp=1", "hardware.gpu=h100-sxm", "hardware.gpus_per_node=4"]
    for timing in (False, True):
        rr = run_single(load_config(overrides=base + ["cluster.router=round_robin"]), w, "lru", timing=timing)
        toy = run_single(load_config(overrides=base + ["cluster.router=test_last_worker"]), w, "lru", timing=timing)
        assert rr.worker.tolist() == [0, 1, 2, 3, 0]
        assert toy.worker.tolist() == [3] * 5
        assert toy.hit_tokens[2, 0] == 32 and rr.hit_tokens[2, 0] == 0  # the shared prefix now hits in HBM


def test_the_toy_router_is_gone_after_its_test():
    assert "test_last_worker" not in ROUTERS
