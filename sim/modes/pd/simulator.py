"""Prefill/decode disaggregation, and the colocated deployment of the same GPUs.

Deployment: ``pd.racks`` racks of ``pd.gpus_per_rack`` GPUs (0 = the
cluster section's figures) on the cluster topology (``sim.timing.topology``,
``sim.timing.network``). A replica is ``model.tp x model.pp`` GPUs of one node.
In every rack the replicas are split ``pd.prefill_ratio : pd.decode_ratio``
(rounded, at least one of each); the prefill replicas are the rack's first
ones in GPU order. The sizes, the layout and the workload both deployments
run come from ``sim.modes.pd.setup``.

* **PD** (``PDSim``): a request is routed to a prefill replica
  (``pd.router``), loads whatever continues its HBM prefix from the node's
  DRAM / the rack's EIC (``sim.cache.spill``) - or recomputes it when that is
  faster (``cache.load_policy``, ``sim.timing.load_policy``) - and waits in the
  replica's queue from when the load is in, or with ``cache.load_overlap:
  layerwise`` from when its prefill would no longer stall on it (estimated
  when the load starts; a load slower than estimated does not hold the
  prefill back),
  is prefilled in chunks (``sim.replica.scheduler``), has its KV moved to a decode
  replica (``pd.transfer``, ``sim.modes.pd.transfer``) and decodes there in a
  continuous batch (``sim.replica.engine``). TTFT ends when the KV is at the
  decode replica (the first token leaves with it).
* **colocated** (``ColocatedSim``): the same GPUs, every replica both
  prefills (chunked, mixed into the decode iterations) and decodes; the
  prompt's KV stays where it was computed; TTFT ends when the prefill is
  done. Same router, radix trees, lower tiers, memory budget.

Every replica is a ``sim.replica.engine.BatchingReplica`` with the same step
cost and ``compute.max_num_seqs``; colocated replicas use
``compute.max_num_batched_tokens`` as their iteration token budget, PD
prefill replicas ``pd.prefill_token_budget`` (and ``pd.chunk_size_tokens``
per request), their own override: a prefill node runs no decode tokens.

KV memory per GPU is ``pd.kv_capacity_gib`` (0 = GPU memory - weights per
GPU - ``hardware.runtime_reserve_gib``). A prefill replica's radix tree has
all of it; a decode replica holds the running requests' KV in a token
pool of the same size; a colocated replica shares one tree between cache
and running requests.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import simpy

from sim.cache.radix_tree import RadixTree
from sim.cache.spill import LowerTiers
from sim.config import Config
from sim.modes.common import block_lists, policy_params, positions_still_read
from sim.modes.pd.finished import FinishedRequests
from sim.modes.pd.prefetch import PDPrefetchHost
from sim.modes.pd.setup import PDSetup, Prepared
from sim.modes.pd.transfer import KVTransfer, make_transfer
from sim.policies.base import REGISTRY as POLICIES
from sim.policies.base import AccessContext
from sim.replica.engine import BatchingReplica
from sim.replica.pools import TokenPool, TreePool
from sim.replica.preemption import PREEMPTION
from sim.replica.request import Req
from sim.replica.scheduler import PrefillScheduler, TreeAdmission
from sim.report.pd import PDTotals
from sim.routing.pd import DecodeView, PrefillView, ReplicaRouter, make_replica_router
from sim.timing.load_policy import LoadChoice, PrefixPart, choose_prefix
from sim.timing.network import Network
from sim.timing.node_io import PrefixLoad, all_done
from sim.timing.prefetch import SessionPrefetcher, prefetch_untimed
from sim.timing.step_cost import StepModel
from sim.timing.topology import Topology
from trace.workload import Workload

# A deployment of at least this many block accesses releases the positions behind its requests (_Deployment):
# 2**24 accesses (~70k requests of config.yaml's multi-turn workload) hold 128 MiB of learned priorities
RELEASE_MIN_ACCESSES = 1 << 24


def releases_positions(n_accesses: int) -> bool:
    """Does a deployment of `n_accesses` block accesses release them behind its requests (and its memory estimate
    count a window of learned priorities)?"""
    return n_accesses >= RELEASE_MIN_ACCESSES

Progress = Callable[[str, int, int], None]


NO_BLOCKS: list[int] = []  # a finished request's block list (never appended to)


# ------------------------------------------------------------------ results


@dataclass
class DeploymentResult:
    """What one deployment measured; sim.report.pd turns it into report metrics."""

    kind: str  # "pd" | "colocated"
    workload: Workload
    reqs: FinishedRequests  # the requests' fields, a row each (arrival order; whole unless streamed)
    totals: PDTotals  # what the report reads of them, taken a block at a time (sim.report.pd)
    sim_time_s: float
    wall_s: float
    pools: dict[str, list[BatchingReplica]]  # pool name -> replicas
    trees: list[RadixTree]
    lower: LowerTiers
    net: Network
    setup: PDSetup
    transfer: KVTransfer | None = None  # PD only
    recomputed: tuple[int, int] = (0, 0)  # (prefixes, tokens) of cached parts recomputed, not loaded
    prefetch: dict | None = None  # the report's prefetch block (sim.timing.prefetch)


# ------------------------------------------------------------------ deployments


class _Deployment:
    kind = "base"
    # set by each deployment's __init__: the prefill side that _route and _ready use
    router: ReplicaRouter
    scheds: list[PrefillScheduler]
    prefill_gpu: list[int]
    prefill_replicas: list[BatchingReplica]

    def __init__(self, cfg: Config, setup: PDSetup, w: Workload, policy: str, ctx: AccessContext | None,
                 totals: PDTotals | None = None) -> None:
        self.cfg = cfg
        self.setup = setup
        self.w = w
        self.policy = policy
        self.ctx = ctx
        self.env = env = simpy.Environment()
        self.topo = Topology.from_config(setup.topo_cfg)
        self.net = Network.from_config(setup.topo_cfg, self.topo)
        self.kv_bytes_per_token = setup.kv_bytes_per_token
        self.lanes = setup.gpus_per_replica
        self.n_layers = setup.spec.kv_cache_layer_count
        c = cfg.compute
        bb, dram_blocks, eic_blocks = setup.tier_blocks()
        params = policy_params(cfg, setup.block_tokens)
        self.policy_params = params
        self.lower = LowerTiers(env, self.net, self.topo, dram_blocks=dram_blocks,
                                eic_blocks=eic_blocks, block_bytes=bb, policy=policy,
                                ctx=ctx, evict_to_eic=cfg.cluster.evict_to_eic, policy_params=params)
        self.step = StepModel.from_config(cfg)
        self.preempt_cost = PREEMPTION[c.preemption]
        self.replica_gpu: dict[BatchingReplica, int] = {}
        self.trees: list[RadixTree] = []
        # a row per request once it finishes (the Req is dropped then), its blocks to the report's totals
        self.totals = totals if totals is not None else PDTotals(cfg, w, setup.block_tokens, self.kind)
        self.reqs = FinishedRequests(len(w), self.totals.add, streamed=self.totals.streamed)
        self.layers = setup.spec.n_layers  # the prefill computes layer by layer (load overlap)
        self.recomputed_prefixes = 0
        self.recomputed_tokens = 0
        # session prefetch onto the prefill replicas (sim.modes.pd.prefetch); the subclass sets them up
        self.pf = SessionPrefetcher(env, PDPrefetchHost(self), bb) if POLICIES[policy].prefetch else None
        # After each request finishes the context hears the first access position still read
        # (AccessContext.accesses_done: the learned policy then keeps its priorities for a window): the oldest
        # request between arrival and done reads its own positions until its last unlock; a position a tree
        # sets on a node it may push much later is kept by the policy then (Policy.keep_position), a victim's
        # carried down its tier chain. Not with a session prefetch, which reads earlier requests' positions.
        # Below RELEASE_MIN_ACCESSES the priorities are few (8 bytes an access) and kept: the trees then skip the
        # per-lock bookkeeping (+15-25 % CPU) and the colocated baseline reuses the PD run's scores.
        released = ctx is not None and self.pf is None and releases_positions(ctx.n_accesses())
        self._accesses_done = ctx.accesses_done if ctx is not None and released else None
        self._in_flight: dict[int, None] = {}  # requests between arrival and done, in arrival order
        self._arrived = 0  # the next request to arrive

    def _turn_done(self, r: Req) -> None:
        """r's prefill is done and its blocks are in its replica's tree: schedule its session's prefetch."""
        if self.pf is not None:
            self.pf.turn_done(r.sess, r.i, r.pre, r.blocks, r.pos0)

    def _prefetch_report(self) -> dict:
        if self.pf is None:
            return prefetch_untimed(0, self.lower.bb)
        self.pf.finish()
        return self.pf.report()

    # ---------------------------------------------------------- memory
    def swap_s(self, eng: BatchingReplica, nbytes: float) -> tuple[float, float]:
        """A preempted request's KV to its node's DRAM and back, over the network model."""
        g = self.replica_gpu[eng]
        topo = self.topo
        gpu_ep, dram_ep = topo.gpu(g), topo.dram(topo.node_of(g))
        return (self.net.transfer_time(gpu_ep, dram_ep, nbytes, self.lanes),
                self.net.transfer_time(dram_ep, gpu_ep, nbytes, self.lanes))

    def _tree(self, gpu: int) -> RadixTree:
        lanes, lower = self.lanes, self.lower
        # session_prefetch evicts as LRU: the tree's native LRU order is exact, the policy adapter is not
        order = "lru" if POLICIES[self.policy].prefetch else self.policy
        tree = RadixTree(self.setup.tree_blocks, order, self.ctx, on_evict=lambda ev: lower.spill(gpu, lanes, ev),
                         released=self._accesses_done is not None, **self.policy_params)
        self.trees.append(tree)
        return tree

    def _sched(self, gpu: int, chunk_tokens: int, token_budget: int) -> PrefillScheduler:
        """A prefill scheduler over a new radix tree (self.trees[k] is the k-th scheduler's tree)."""
        return PrefillScheduler(TreeAdmission(self._tree(gpu), self.setup.block_tokens), chunk_tokens, token_budget)

    # ---------------------------------------------------------- arrivals
    def _arrivals(self, progress: Progress | None):
        w, env = self.w, self.env
        # per-request scalars through ndarray.item and each request's blocks read when it arrives (from the
        # parent form, never expanded): nothing held per request or per access for the whole run
        arr_at = (w.arrival_ms / 1000.0).item
        inp_at, out_at, sess_at, off_at = (w.input_tokens.item, w.output_tokens.item, w.session_id.item,
                                           w.block_offsets.item)
        blocks = block_lists(w)
        n = len(w)
        every = max(1, n // 200)
        for i in range(n):
            dt = arr_at(i) - env.now
            if dt > 0:
                yield env.timeout(dt)
            r = Req(i, inp_at(i), out_at(i), blocks(i), off_at(i), env.now, sess_at(i))
            self._in_flight[i] = None
            self._arrived = i + 1
            self._route(r)
            if progress is not None and i % every == 0:
                progress(self.kind, i, n)

    def _route(self, r: Req) -> None:
        w = self.router.choose(r)
        r.pre = w
        m = self.trees[w].match(r.blocks)
        r.route_hbm = m
        g = self.prefill_gpu[w]
        nd, ne = self.lower.lookup(g, r.blocks, m, r.pos0)
        if self.pf is not None:
            self.pf.arrived(r.sess, w, r.blocks, m, m + nd + ne)
        choice = self._load_or_recompute(r, g, m, nd, ne) if nd + ne else None
        if choice is not None and choice.parts_used > 1:
            ne = ne if choice.parts_used > 2 else 0
            r.n_dram, r.n_eic = nd, ne
            r.lower_upto = m + nd + ne
            evs = self.lower.load(g, self.lanes, nd, ne)
            ld = PrefixLoad(self.env, choice, all_done(self.env, evs), self.layers, self.cfg.cache.load_overlap)
            ready = ld.ready()
            assert ready is not None
            ready.callbacks.append(lambda _e: self._ready(r))
        else:
            self._ready(r)

    def _load_or_recompute(self, r: Req, g: int, m: int, nd: int, ne: int) -> LoadChoice:
        """How much of the cached prefix to use (cache.load_policy): parts_used 1 = HBM only,
        2 = + the DRAM blocks, 3 = + the EIC blocks; the rest is recomputed."""
        bt, cap = self.setup.block_tokens, r.inp - 1  # one token is always computed (PrefillScheduler)
        th = min(m * bt, cap)
        td = min((m + nd) * bt, cap) - th
        te = min((m + nd + ne) * bt, cap) - th - td
        est_d, est_e = self.lower.load_estimates_s(g, self.lanes, nd, ne)
        parts = [PrefixPart(max(0, th)), PrefixPart(max(0, td), est_d), PrefixPart(max(0, te), est_e)]
        c = self.cfg.cache
        choice = choose_prefix(parts, r.inp, self.step.prefill_s, layers=self.layers, overlap=c.load_overlap,
                               policy=c.load_policy)
        r.recomputed = choice.recomputed_tokens
        if choice.recomputed:
            self.recomputed_prefixes += 1
            self.recomputed_tokens += choice.recomputed_tokens
        return choice

    def _ready(self, r: Req) -> None:
        r.t_ready = self.env.now
        self.scheds[r.pre].add(r)
        self.prefill_replicas[r.pre].notify()

    # ---------------------------------------------------------- hooks shared by the engines
    def chunk_start(self, eng: BatchingReplica, batch: list, t0: float, dur: float) -> None:
        for r, _n, _b in batch:
            if r.t_pstart != r.t_pstart:
                r.t_pstart = t0

    def preempted(self, eng: BatchingReplica, r: Req) -> tuple[float, float]:
        return self.preempt_cost(self, eng, r)

    def memory_freed(self, eng: BatchingReplica) -> None:
        pass

    def _done(self, r: Req) -> None:
        r.t_done = self.env.now
        r.blocks = NO_BLOCKS  # its tree references are released: only the requests in flight hold their lists
        self.reqs.add(r)  # what the report reads of it: a row of columns, not the Req (sim.modes.pd.finished)
        del self._in_flight[r.i]
        if self._accesses_done is not None:
            self._accesses_done(positions_still_read(self._in_flight, self._arrived, self.w.block_offsets.item))

    # ---------------------------------------------------------- run
    def run(self, progress: Progress | None = None) -> DeploymentResult:
        t0 = time.perf_counter()
        self.env.process(self._arrivals(progress))
        self.env.run()
        if progress is not None:
            progress(self.kind, len(self.w), len(self.w))
        if self.reqs.finished != len(self.w):
            stuck = self.reqs.unfinished()
            raise RuntimeError(f"{self.kind}: {len(self.w) - self.reqs.finished} requests never finished "
                               f"(first: {stuck}); the simulation deadlocked")
        self.reqs.close()
        return self._result(time.perf_counter() - t0)

    def _result(self, wall: float) -> DeploymentResult:  # pragma: no cover - overridden
        raise NotImplementedError


class PDSim(_Deployment):
    """The disaggregated deployment."""

    kind = "pd"

    def __init__(self, cfg: Config, setup: PDSetup, w: Workload, policy: str,
                 ctx: AccessContext | None = None, totals: PDTotals | None = None) -> None:
        super().__init__(cfg, setup, w, policy, ctx, totals)
        pd, c = cfg.pd, cfg.compute
        env, topo = self.env, self.topo
        rpr = setup.replicas_per_rack
        self.prefill_gpu = []
        self.decode_gpu: list[int] = []
        self.decode_by_rack: list[list[int]] = [[] for _ in range(topo.n_racks)]
        for k, g in enumerate(setup.replica_gpus):
            if k % rpr < setup.prefill_per_rack:
                self.prefill_gpu.append(g)
            else:
                self.decode_by_rack[topo.rack_of(g)].append(len(self.decode_gpu))
                self.decode_gpu.append(g)
        self.scheds = [self._sched(g, pd.chunk_size_tokens, pd.prefill_token_budget) for g in self.prefill_gpu]
        self.prefill_replicas = []
        for k, (g, s) in enumerate(zip(self.prefill_gpu, self.scheds, strict=True)):
            e = BatchingReplica(env, k, self, sched=s, step=self.step, mem=None, max_seqs=c.max_num_seqs,
                                coalesce=pd.coalesce_decode, decode=False)
            self.prefill_replicas.append(e)
            self.replica_gpu[e] = g
        self.decode = []
        for k, g in enumerate(self.decode_gpu):
            e = BatchingReplica(env, k, _DecodeHooks(self), sched=None, step=self.step,
                                mem=TokenPool(setup.kv_tokens), max_seqs=c.max_num_seqs,
                                coalesce=pd.coalesce_decode, layer_groups=pd.layer_groups)
            self.decode.append(e)
            self.replica_gpu[e] = g
        self.prefill_ep = [topo.gpu(g) for g in self.prefill_gpu]
        self.decode_ep = [topo.gpu(g) for g in self.decode_gpu]
        view = PrefillView(self.scheds, self.trees, setup.block_tokens, cfg.seed)
        self.router = make_replica_router(pd.router, "prefill", view, load_penalty=pd.load_penalty)
        self._decode_router = make_replica_router(pd.decode_router, "decode", DecodeView(self, cfg.seed))
        self.transfer = make_transfer(pd.transfer, self, pd.layerwise, pd.layer_groups)

    # the TransferHost interface (sim.modes.pd.transfer)
    def choose_decode(self, r: Req) -> int:
        return self._decode_router.choose(r)

    def locality(self, p: int, d: int) -> int:
        gp, gd = self.prefill_gpu[p], self.decode_gpu[d]
        if self.topo.node_of(gp) == self.topo.node_of(gd):
            return 0
        return 1 if self.topo.rack_of(gp) == self.topo.rack_of(gd) else 2

    # prefill-engine hooks
    def chunk_start(self, eng, batch, t0, dur):
        tr = self.transfer
        for r, n, _b in batch:
            if r.t_pstart != r.t_pstart:
                r.t_pstart = t0
                tr.on_prefill_start(r)
            tr.on_chunk(r, n, t0, dur)

    def prefill_done(self, eng: BatchingReplica, r: Req) -> None:
        r.t_pend = self.env.now
        self._turn_done(r)
        self.transfer.on_prefill_done(r)

    def decode_done(self, eng, r):  # pragma: no cover - prefill engines do not decode
        raise RuntimeError("a prefill replica decoded")

    # called by the transfer strategy
    def deliver(self, r: Req, release: bool) -> None:
        """r's KV is usable at its decode replica: the first token is out."""
        r.t_kv = self.env.now
        r.left = r.out - 1
        if release:
            self.release_prefill(r)
        eng = self.decode[r.dec]
        eng.decode_q.append(r)
        eng.notify()

    def release_prefill(self, r: Req) -> None:
        if r.blocks is NO_BLOCKS:  # _done dropped the list: the release must come first (it does today)
            raise RuntimeError(f"pd: request {r.i} finished before its prefill replica released its blocks")
        self.trees[r.pre].unlock(r.blocks, r.locked)
        self.prefill_replicas[r.pre].notify()

    def finish_at_prefill(self, r: Req) -> None:
        r.t_kv = self.env.now
        self.release_prefill(r)
        self._done(r)

    def _result(self, wall: float) -> DeploymentResult:
        return DeploymentResult("pd", self.w, self.reqs, self.totals, self.env.now, wall,
                                {"prefill": self.prefill_replicas, "decode": self.decode}, self.trees, self.lower,
                                self.net, self.setup, transfer=self.transfer,
                                recomputed=(self.recomputed_prefixes, self.recomputed_tokens),
                                prefetch=self._prefetch_report())


class _DecodeHooks:
    """Hooks of the PD decode engines (the prefill engines use PDSim itself)."""

    def __init__(self, sim: PDSim) -> None:
        self.sim = sim

    def chunk_start(self, eng, batch, t0, dur):  # pragma: no cover - decode replicas do not prefill
        raise RuntimeError("a decode replica prefilled")

    def prefill_done(self, eng, r):  # pragma: no cover
        raise RuntimeError("a decode replica prefilled")

    def decode_done(self, eng: BatchingReplica, r: Req) -> None:
        self.sim._done(r)

    def preempted(self, eng: BatchingReplica, r: Req) -> tuple[float, float]:
        return self.sim.preempt_cost(self.sim, eng, r)

    def memory_freed(self, eng: BatchingReplica) -> None:
        self.sim.transfer.on_memory_freed(eng.idx)


class ColocatedSim(_Deployment):
    """Every replica prefills and decodes (chunked prefill mixed into decode iterations)."""

    kind = "colocated"

    def __init__(self, cfg: Config, setup: PDSetup, w: Workload, policy: str,
                 ctx: AccessContext | None = None, totals: PDTotals | None = None) -> None:
        super().__init__(cfg, setup, w, policy, ctx, totals)
        pd, c = cfg.pd, cfg.compute
        self.prefill_gpu = list(setup.replica_gpus)
        budget = c.max_num_batched_tokens
        self.scheds = [self._sched(g, budget, budget) for g in self.prefill_gpu]
        self.prefill_replicas = []
        for k, (g, s) in enumerate(zip(self.prefill_gpu, self.scheds, strict=True)):
            e = BatchingReplica(self.env, k, self, sched=s, step=self.step,
                                mem=TreePool(self.trees[k], setup.block_tokens), max_seqs=c.max_num_seqs,
                                coalesce=pd.coalesce_decode)
            self.prefill_replicas.append(e)
            self.replica_gpu[e] = g
        view = PrefillView(self.scheds, self.trees, setup.block_tokens, cfg.seed)
        self.router = make_replica_router(pd.router, "prefill", view, load_penalty=pd.load_penalty)

    def prefill_done(self, eng: BatchingReplica, r: Req) -> None:
        now = self.env.now
        r.t_pend = r.t_kv = now
        self._turn_done(r)
        if r.out <= 1:
            self.trees[eng.idx].unlock(r.blocks, r.locked)
            self._done(r)
            return
        r.ctx = r.inp
        r.left = r.out - 1
        r.mem = 0  # the prompt stays in the tree, referenced; growth is counted by the TreePool
        r.in_tree = True
        eng.incoming += 1
        eng.decode_q.append(r)

    def _release(self, eng: BatchingReplica, r: Req) -> None:
        if r.in_tree:
            self.trees[eng.idx].unlock(r.blocks, r.locked)
            r.in_tree = False

    def decode_done(self, eng: BatchingReplica, r: Req) -> None:
        self._release(eng, r)
        self._done(r)

    def preempted(self, eng: BatchingReplica, r: Req) -> tuple[float, float]:
        self._release(eng, r)
        return self.preempt_cost(self, eng, r)

    def _result(self, wall: float) -> DeploymentResult:
        return DeploymentResult("colocated", self.w, self.reqs, self.totals, self.env.now, wall,
                                {"colocated": self.prefill_replicas}, self.trees, self.lower, self.net, self.setup,
                                recomputed=(self.recomputed_prefixes, self.recomputed_tokens),
                                prefetch=self._prefetch_report())


DEPLOYMENTS: dict[str, type[_Deployment]] = {"pd": PDSim, "colocated": ColocatedSim}


def simulate(kind: str, cfg: Config, prep: Prepared, policy: str, *, progress: Progress | None = None,
             totals: PDTotals | None = None) -> DeploymentResult:
    """Run one deployment ("pd" or "colocated") on a prepared workload. `totals`: what takes its finished requests'
    rows (sim.report.pd.PDTotals: a streamed one, one writing the per-request file); default: the whole rows'."""
    return DEPLOYMENTS[kind](cfg, prep.setup, prep.workload, policy, prep.ctx, totals).run(progress)


__all__ = ["DEPLOYMENTS", "ColocatedSim", "DeploymentResult", "PDSim", "simulate"]
