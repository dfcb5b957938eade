"""What a cluster replay is built from: sizes (``ClusterSetup``), the cache (the Python ``ClusterCache`` or
its compiled twin, ``queue_recency`` says which can run a policy exactly) and the cost-aware router's TTFT
estimate (``CostEstimator``)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sim.policies  # noqa: F401  (registers every policy in REGISTRY)
from sim.cache.cluster import ClusterCache
from sim.cache.layout import LOC_NAMES, Layout
from sim.cache.unbounded import Unbounded
from sim.config import Config
from sim.engine.cluster_cache import CompiledClusterCache
from sim.modes.common import NodeSetup, policy_params
from sim.policies import make_policy
from sim.policies.base import REGISTRY, AccessContext, Policy
from sim.policies.fifo import FIFO
from sim.policies.lru import LRU
from sim.timing.step_cost import StepModel
from sim.timing.topology import Topology

GiB = 1024**3
NLOC = len(LOC_NAMES)


@dataclass
class ClusterSetup:
    """Sizes derived once from config + workload."""

    node: NodeSetup  # per-worker HBM, per-node DRAM, block bytes, model/GPU specs
    topo: Topology
    layout: Layout
    eic_blocks: int  # per rack
    ssd_blocks: int  # remote pool

    @classmethod
    def from_config(cls, cfg: Config, block_tokens: int, topo: Topology | None = None) -> ClusterSetup:
        node = NodeSetup.from_config(cfg, block_tokens)
        topo = topo if topo is not None else Topology.from_config(cfg)
        layout = Layout(topo, node.gpus_per_worker)
        bb = node.block_bytes
        eic = int(cfg.hardware.eic.capacity_gib * GiB // bb) if topo.has_eic else 0
        ssd = int(cfg.cluster.remote_ssd_capacity_gib * GiB // bb) if topo.has_remote_ssd else 0
        return cls(node=node, topo=topo, layout=layout, eic_blocks=eic, ssd_blocks=ssd)





def progress_every(n: int) -> int:
    """Requests between progress calls: about 200 calls a run."""
    return max(1, n // 200)


def prefill_fn(cfg: Config, setup: ClusterSetup) -> Callable[[int, int], float]:
    """(new tokens, cached tokens) -> prefill seconds on one worker."""
    return StepModel.from_config(cfg).prefill_s


class CostEstimator:
    """TTFT estimate on a worker (cache_load_balanced): queue wait + prefix transfer + prefill."""

    def __init__(self, cfg: Config, setup: ClusterSetup, prefill_free: dict[int, float],
                 now: Callable[[], float]) -> None:
        topo, lay = setup.topo, setup.layout
        self.bt = setup.node.block_tokens
        self.bb = setup.node.block_bytes
        self.prefill_free = prefill_free
        self.now = now
        lanes = lay.gpus_per_worker
        # Latency and bottleneck per location: uniform across workers (a regular topology),
        # taken from worker 0 and, for the remote pools, the next rack.
        me = topo.gpu(lay.gpu(0))
        srcs = [None, topo.gpu(lay.gpu(1)) if lay.workers_per_node > 1 else None, topo.dram(0),
                topo.eic(0) if topo.has_eic else None,
                topo.eic(1 % topo.n_racks) if topo.has_eic and topo.n_racks > 1 else None,
                topo.ssd() if topo.has_remote_ssd else None]
        self.paths = [
            (topo.path_latency_s(s, me), topo.bottleneck_bytes_s(s, me, lanes)) if s is not None else (0.0, 1.0)
            for s in srcs
        ]
        self.prefill = prefill_fn(cfg, setup)
        # Prefill seconds by cached tokens for the request being routed: its candidates
        # often share a cached prefix length (0 on the idle ones).
        self._pre_inp = -1
        self._pre: dict[int, float] = {}

    def transfer_s(self, counts: list[int]) -> float:
        t = 0.0
        bb = self.bb
        for k in range(1, NLOC):
            n = counts[k]
            if n:
                lat, bw = self.paths[k]
                t = max(t, lat + n * bb / bw)
        return t

    def queue_s(self, w: int) -> float:
        """Wait before w's prefill engine is free (FIFO)."""
        return max(0.0, self.prefill_free.get(w, 0.0) - self.now())

    def ttft_after_queue_s(self, queue_s: float, counts: list[int], input_tokens: int) -> float:
        cached = min(sum(counts) * self.bt, input_tokens)
        if input_tokens != self._pre_inp:
            self._pre_inp = input_tokens
            self._pre.clear()
        pre = self._pre.get(cached)
        if pre is None:
            pre = self._pre[cached] = self.prefill(input_tokens - cached, cached)
        return queue_s + self.transfer_s(counts) + pre


def build_cluster_cache(cfg: Config, setup: ClusterSetup, policy: str, ctx: AccessContext,
                        distinct_blocks: int) -> ClusterCache:
    """Lazy tiers with `policy`; a tier that can hold all `distinct_blocks` of the run gets `Unbounded`."""
    # One parameter set (and one reuse history for selective_write) for every tier of the run.
    params = policy_params(cfg, setup.node.block_tokens)
    distinct = distinct_blocks

    def make(cap: int):
        p = make_policy(policy, cap, ctx, **params)
        if cap >= distinct and type(p).admit is Policy.admit:
            return Unbounded(cap)  # never fills up: same behaviour, no recency bookkeeping
        return p

    return ClusterCache(
        setup.layout,
        hbm_blocks=setup.node.hbm_blocks, dram_blocks=setup.node.dram_blocks,
        eic_blocks=setup.eic_blocks, ssd_blocks=setup.ssd_blocks, block_bytes=setup.node.block_bytes,
        policy=make,
        admission_filter=REGISTRY[policy].admit is not Policy.admit,
        evict_to_eic=cfg.cluster.evict_to_eic, cross_rack_lookup=cfg.cluster.cross_rack_lookup,
        write_through=cfg.cache.write_policy == "write_through",
    )


def queue_recency(policy: str) -> bool | None:
    """How the compiled cache can run `policy` exactly: True (LRU order: a hit moves the block to
    the back), False (FIFO order), None (it cannot: own victim choice or an admission filter)."""
    cls = REGISTRY.get(policy)
    if cls is None or not issubclass(cls, LRU) or cls.wants_incoming:
        return None
    if any(getattr(cls, m) is not getattr(LRU, m) for m in ("insert", "victim", "remove", "admit")):
        return None
    if cls.touch is LRU.touch:
        return True
    return False if cls.touch is FIFO.touch else None


def build_compiled_cache(cfg: Config, setup: ClusterSetup, recency: bool, distinct_blocks: int) -> CompiledClusterCache:
    return CompiledClusterCache(
        setup.layout,
        hbm_blocks=setup.node.hbm_blocks, dram_blocks=setup.node.dram_blocks,
        eic_blocks=setup.eic_blocks, ssd_blocks=setup.ssd_blocks, block_bytes=setup.node.block_bytes,
        n_blocks=distinct_blocks, recency=recency,
        evict_to_eic=cfg.cluster.evict_to_eic, cross_rack_lookup=cfg.cluster.cross_rack_lookup,
        write_through=cfg.cache.write_policy == "write_through",
    )

