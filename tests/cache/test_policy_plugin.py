"""Adding a policy is one class with ``@register``; the tier chain and the PD lower tiers keep their invariants."""
from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cache.chain import TIERS, TierChain
from sim.cache.spill import LowerTiers
from sim.config import load_config
from sim.modes.single import run_single
from sim.policies import make_policy
from sim.policies.base import REGISTRY, Policy, register
from sim.timing.topology import Topology
from trace.workload import Workload

BLOCK_BYTES = 16 * 131072  # llama-3-8b fp16, 16-token blocks
GiB = 1024**3


class ToyMRU(Policy):
    """Evicts the most recently used block: the opposite of LRU, so decisions visibly differ."""

    name = "toy"

    def __init__(self, capacity: int, ctx=None, **params) -> None:
        super().__init__(capacity, ctx)
        self._od: OrderedDict[int, None] = OrderedDict()

    def touch(self, key: int, pos: int) -> None:
        self._od.move_to_end(key)

    def insert(self, key: int, pos: int) -> None:
        self._od[key] = None

    def victim(self) -> int:
        return self._od.popitem(last=True)[0]

    def remove(self, key: int) -> None:
        del self._od[key]

    def __contains__(self, key: int) -> bool:
        return key in self._od

    def __len__(self) -> int:
        return len(self._od)


@pytest.fixture
def toy():
    # Registered only for the test: other modules list REGISTRY when they are collected.
    register(ToyMRU)
    try:
        yield ToyMRU
    finally:
        del REGISTRY["toy"]


def _cfg(hbm_blocks: int, *sets: str):
    return load_config(overrides=[
        "model.name=llama-3-8b", "model.kv_dtype=fp16",
        "model.tp=1", "hardware.gpu=h100-sxm", "hardware.gpus_per_node=1",
        "cluster.gpus_per_rack=64", "cluster.router=round_robin",
        f"hardware.hbm.capacity_gib={hbm_blocks * BLOCK_BYTES / GiB}", "hardware.dram.capacity_gib=0",
        "hardware.ssd.capacity_gib=0", *sets,
    ])


def test_a_registered_policy_is_listed_configurable_and_used(toy):
    assert "toy" in REGISTRY and list(REGISTRY)[-1] == "toy"
    assert isinstance(make_policy("toy", 4), ToyMRU)
    with pytest.raises(KeyError, match="toy"):  # the error lists the known names, toy among them
        make_policy("no-such-policy", 4)
    # The schema takes any name (policies are checked when a run starts), so the plug-in is configurable.
    assert load_config(overrides=["policies.eviction=toy"]).policies.eviction == "toy"

    # HBM holds 2 blocks: [3] evicts 1 under LRU but 2 under MRU, so only MRU hits on the last [1].
    w = Workload.from_requests([[1], [2], [3], [1]], arrival_ms=np.arange(4) * 1000.0, name="toy")
    cfg = _cfg(2)
    lru = run_single(cfg, w, "lru", timing=False)
    mru = run_single(cfg, w, "toy", timing=False)
    assert lru.hit_tokens[:, 0].tolist() == [0, 0, 0, 0]
    assert mru.hit_tokens[:, 0].tolist() == [0, 0, 0, 16]


def test_unregistered_after_the_fixture():
    assert "toy" not in REGISTRY


def test_learned_is_listed_before_it_is_imported_and_no_cycle_remains():
    code = (
        "import sys\n"
        "import learned.features\n"  # entering through learned first used to need a guard
        "import sim.policies as p\n"
        "assert 'learned.policy' not in sys.modules\n"
        "assert list(p.REGISTRY)[-1] == 'learned' and 'learned' in p.REGISTRY\n"
        "assert p.REGISTRY['learned'].name == 'learned' and 'learned.policy' in sys.modules\n"
        "print(','.join(p.REGISTRY))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "arc,belady,lru,fifo,lfu,s3fifo,selective_write,session_prefetch,learned"


# ------------------------------------------------------------------ the tier chain

chains = st.builds(
    lambda mode, dram, eic, ssd, e2e: TierChain.cluster(dram=dram, eic=eic, ssd=ssd, evict_to_eic=e2e)
    if mode else TierChain.pd(dram=dram, eic=eic, evict_to_eic=e2e),
    st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
)


@given(chains)
def test_victims_only_go_down_to_tiers_that_exist(chain):
    present = {"dram": chain.dram, "eic": chain.eic, "ssd": chain.ssd}
    for tier in TIERS:
        for dst in (chain.below(tier), chain.victim_goes(tier)):
            assert dst is None or (present[dst] and TIERS.index(dst) > TIERS.index(tier))
    assert chain.below("ssd") is None
    assert not chain.publish_to_eic or chain.eic
    # what publishing already placed in the pool is not sent again from DRAM in cluster mode
    if chain.publish_to_eic and chain.ssd:
        assert chain.victim_goes("dram") in (None, "eic")


class _Net:
    def transfer_time(self, src, dst, nbytes, lanes):
        return 0.0

    def transfer(self, env, src, dst, nbytes, lanes):
        return env.event()

    def send(self, env, src, dst, nbytes, lanes):
        pass


@settings(max_examples=60, deadline=None)
@given(
    dram=st.integers(0, 6), eic=st.integers(0, 8), evict_to_eic=st.booleans(), policy=st.sampled_from(["lru", "fifo"]),
    batches=st.lists(st.tuples(st.integers(0, 31), st.lists(st.integers(0, 40), max_size=8, unique=True)),
                     max_size=25),
)
def test_lower_tiers_drop_exactly_what_leaves_the_bottom_of_the_chain(dram, eic, evict_to_eic, policy, batches):
    cfg = load_config(overrides=["cluster.racks=2", "cluster.gpus_per_rack=16", "hardware.gpus_per_node=8"])
    topo = Topology.from_config(cfg)
    lt = LowerTiers(simpy.Environment(), _Net(), topo, dram_blocks=dram, eic_blocks=eic, block_bytes=1,
                    policy=policy, ctx=None, evict_to_eic=evict_to_eic)
    pos = 0
    spilled = 0
    for gpu, keys in batches:
        ev = [(k, pos + j) for j, k in enumerate(keys)]
        pos += len(keys)
        lt.spill(gpu, 1, ev)
        spilled += len(ev)
    assert lt.spilled_blocks == spilled
    for t in lt.dram + lt.eic:
        assert len(t) <= t.capacity
        assert t.stats.inserts - t.stats.evictions == len(t)
    chain = lt.chain
    if chain.eic:  # the pool is the bottom: its victims are the dropped blocks
        expect = sum(t.stats.evictions for t in lt.eic)
    elif chain.dram:
        expect = sum(t.stats.evictions for t in lt.dram)
    else:
        expect = spilled
    assert lt.dropped_blocks == expect
