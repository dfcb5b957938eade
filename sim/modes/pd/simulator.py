"""Prefill/decode disaggregation, and the colocated deployment of the same GPUs.

Deployment: ``pd.racks`` racks of ``pd.gpus_per_rack`` GPUs (0 = the
cluster section's figures) on the cluster topology (``sim.timing.topology``,
``sim.timing.network``). A replica is ``model.tp x model.pp`` GPUs of one node.
In every rack the replicas are split ``pd.prefill_ratio : pd.decode_ratio``
(rounded, at least one of each); the prefill replicas are the rack's first
ones in GPU order.

* **PD** (``PDSim``): a request is routed to a prefill replica
  (``pd.router``), loads whatever continues its HBM prefix from the node's
  DRAM / the rack's EIC (``sim.cache.spill``), waits in the replica's queue,
  is prefilled in chunks (``sim.modes.pd.prefill``), has its KV moved to a decode
  replica (``pd.transfer``, ``sim.modes.pd.transfer``) and decodes there in a
  continuous batch (``sim.modes.pd.batching``). TTFT ends when the KV is at the
  decode replica (the first token leaves with it).
* **colocated** (``ColocatedSim``): the same GPUs, every replica both
  prefills (chunked, mixed into the decode iterations) and decodes; the
  prompt's KV stays where it was computed; TTFT ends when the prefill is
  done. Same router, radix trees, lower tiers, memory budget.

KV memory per GPU is ``pd.kv_capacity_gb`` (0 = GPU memory - weights per
GPU - ``hardware.runtime_reserve_gb``). A prefill replica's radix tree has
all of it; a decode replica holds the running requests' KV in a token
pool of the same size; a colocated replica shares one tree between cache
and running requests.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import simpy

from sim.timing import compute
from sim.modes.pd.batching import DecodeTiming, Engine, TokenPool, TreePool
from sim.config import Config, config_with
from sim.errors import InputError
from sim.config.hardware import (
    GIB,
    free_kv_bytes_per_gpu,
    gpu_spec,
    kv_bytes_per_token,
    kv_bytes_per_token_total,
    model_spec,
)
from sim.modes.pd.transfer import make_transfer
from sim.timing.network import Network
from sim.modes.pd.request import Req
from sim.policies.base import AccessContext
from sim.modes.pd.prefill import PrefillScheduler, make_prefill_router, prefill_router_names
from sim.cache.radix_tree import RadixTree, make_order
from sim.cache.spill import LowerTiers
from sim.modes.common import policy_params
from sim.timing.topology import Topology
from trace.workload import Workload

Progress = Callable[[str, int, int], None]


# ------------------------------------------------------------------ setup


def split_replicas(n: int, p: int, d: int) -> tuple[int, int]:
    """(prefill, decode) replicas of a rack of n for ratio p:d: round half up, at least one of each."""
    if n < 2:
        raise InputError(f"a rack of {n} replica(s) cannot hold both a prefill and a decode replica; "
                         "raise pd.gpus_per_rack or lower model.tp", where="pd.gpus_per_rack")
    P = int(math.floor(n * p / (p + d) + 0.5))
    P = min(max(P, 1), n - 1)
    return P, n - P


@dataclass
class PDSetup:
    """Sizes, speeds and layout derived once from config + workload."""

    cfg: Config
    topo_cfg: Config
    spec: object
    gpu: object
    block_tokens: int
    kv_bytes_per_token: float  # whole model (what a transfer moves per token)
    kv_gb_per_gpu: float
    kv_tokens: int  # per replica
    tree_blocks: int  # per replica
    gpus_per_replica: int
    replica_gpus: list[int]  # first GPU of every replica, in GPU order
    replicas_per_rack: int
    prefill_per_rack: int
    decode_per_rack: int
    derived_kv: bool = False

    @classmethod
    def from_config(cls, cfg: Config, block_tokens: int) -> "PDSetup":
        pd, h, m = cfg.pd, cfg.hardware, cfg.model
        racks = pd.racks or cfg.cluster.racks
        gpr = pd.gpus_per_rack or cfg.cluster.gpus_per_rack
        gpn = h.gpus_per_node
        if gpr % gpn:
            raise InputError(f"{gpr} GPUs per rack do not divide into nodes of hardware.gpus_per_node={gpn}",
                             where="pd.gpus_per_rack")
        per = m.tp * m.pp
        if per > gpn:
            raise InputError(f"model.tp x model.pp = {per} exceeds hardware.gpus_per_node={gpn} "
                             "(a replica lives in one node)", where="model.tp")
        topo_cfg = config_with(cfg, {"cluster.racks": racks, "cluster.gpus_per_rack": gpr})
        spec = model_spec(m.name)
        gpu = gpu_spec(h.gpu)
        if h.hbm.bandwidth_gb_s > 0:
            gpu = dataclasses.replace(gpu, hbm_bandwidth_gb_s=h.hbm.bandwidth_gb_s)
        if pd.kv_capacity_gb > 0:
            kv_bytes = pd.kv_capacity_gb * GIB
            derived = False
        else:
            kv_bytes = free_kv_bytes_per_gpu(spec, gpu, m.weight_dtype, m.tp, m.pp, h.runtime_reserve_gb)
            derived = True
            if kv_bytes <= 0:
                raise InputError(f"weights of {spec.name} ({m.weight_dtype}) / (tp {m.tp} x pp {m.pp}) plus "
                                 f"{h.runtime_reserve_gb:g} GiB reserve leave no KV memory on {gpu.name}; "
                                 "raise model.tp or set pd.kv_capacity_gb", where="pd.kv_capacity_gb")
        per_gpu_token = kv_bytes_per_token(spec, m.kv_dtype, m.tp, m.pp)
        kv_tokens = int(kv_bytes // per_gpu_token)
        tree_blocks = kv_tokens // block_tokens
        if tree_blocks < 1:
            raise InputError(f"{kv_bytes / GIB:.3f} GiB of KV per GPU holds no {block_tokens}-token block",
                             where="pd.kv_capacity_gb")
        per_node = gpn // per
        replica_gpus = [n * gpn + k * per for n in range(racks * gpr // gpn) for k in range(per_node)]
        rpr = (gpr // gpn) * per_node
        P, D = split_replicas(rpr, pd.prefill_ratio, pd.decode_ratio)
        return cls(cfg=cfg, topo_cfg=topo_cfg, spec=spec, gpu=gpu, block_tokens=block_tokens,
                   kv_bytes_per_token=kv_bytes_per_token_total(spec, m.kv_dtype), kv_gb_per_gpu=kv_bytes / GIB,
                   kv_tokens=kv_tokens, tree_blocks=tree_blocks, gpus_per_replica=per, replica_gpus=replica_gpus,
                   replicas_per_rack=rpr, prefill_per_rack=P, decode_per_rack=D, derived_kv=derived)

    @property
    def racks(self) -> int:
        return self.topo_cfg.cluster.racks

    def layout(self) -> dict:
        c = self.cfg
        return {
            "racks": self.racks, "gpus_per_rack": self.topo_cfg.cluster.gpus_per_rack,
            "gpus": self.racks * self.topo_cfg.cluster.gpus_per_rack, "gpus_per_replica": self.gpus_per_replica,
            "replicas": len(self.replica_gpus), "replicas_per_rack": self.replicas_per_rack,
            "prefill_replicas": self.prefill_per_rack * self.racks,
            "decode_replicas": self.decode_per_rack * self.racks,
            "ratio": f"{c.pd.prefill_ratio}:{c.pd.decode_ratio}",
            "actual_ratio": f"{self.prefill_per_rack}:{self.decode_per_rack}",
            "kv_gb_per_gpu": self.kv_gb_per_gpu, "kv_derived": self.derived_kv,
            "kv_tokens_per_replica": self.kv_tokens, "block_tokens": self.block_tokens,
            "tree_blocks_per_replica": self.tree_blocks, "model": self.spec.name, "gpu": self.gpu.name,
            "tp": c.model.tp, "pp": c.model.pp,
        }


def fits(setup: PDSetup, w: Workload) -> np.ndarray:
    """Requests one replica can serve: the prompt's blocks in a radix tree and prompt + output in KV memory.

    A replica with less memory than a request needs cannot run it at all
    (vLLM and SGLang reject such a prompt); ``prepare`` leaves these
    requests out and the report counts them as rejected SLO misses.
    """
    nb = w.n_blocks()
    bt = setup.block_tokens
    # The strictest replica is a colocated one: prompt blocks in the tree, output rounded up to blocks.
    need = np.maximum(w.input_tokens, nb * bt) + np.maximum(w.output_tokens, 1) + 1
    return need <= setup.tree_blocks * bt - bt


def check_names(cfg: Config, policy: str) -> None:
    if cfg.pd.router not in prefill_router_names():
        raise InputError(f"unknown prefill router {cfg.pd.router!r} (known: {', '.join(prefill_router_names())})",
                         where="pd.router")
    if cfg.pd.decode_router not in DECODE_ROUTERS:
        raise InputError(f"unknown decode router {cfg.pd.decode_router!r} (known: {', '.join(DECODE_ROUTERS)})",
                         where="pd.decode_router")
    try:
        make_order(policy, 1, None)
    except KeyError as e:
        raise InputError(str(e).strip('"'), where="--policy") from None
    except ValueError:
        pass  # belady needs the context; it exists at run time


# ------------------------------------------------------------------ decode routers


def _least_used(dec: list, cands, need: int) -> int:
    """Among `cands`, the decode replica holding the fewest prompt tokens that can grant `need` tokens now.

    -1 if none can. (The free-memory check runs only for a candidate that would become the best.)
    """
    best, best_load = -1, None
    for d in cands:
        e = dec[d]
        load = e.prompt_kv
        if (best_load is None or load < best_load) and (need <= 0 or e.grant_room() >= need):
            best, best_load = d, load
    return best


def _rack_local(sim: "PDSim", r: Req) -> int:
    dec = sim.decode
    local = sim.decode_by_rack[sim.topo.rack_of(sim.prefill_gpu[r.pre])]
    d = _least_used(dec, local, r.inp)
    if d < 0:
        d = _least_used(dec, range(len(dec)), r.inp)
    if d < 0:  # nobody has room now: wait in the own rack
        d = _least_used(dec, local, 0)
    return d


def _least_loaded(sim: "PDSim", r: Req) -> int:
    every = range(len(sim.decode))
    d = _least_used(sim.decode, every, r.inp)
    return d if d >= 0 else _least_used(sim.decode, every, 0)


DECODE_ROUTERS: dict[str, Callable[["PDSim", Req], int]] = {
    "least_loaded": _least_loaded,
    "rack_local": _rack_local,
}


# ------------------------------------------------------------------ preemption costs


def _recompute(dep: "_Deployment", eng: Engine, r: Req) -> tuple[float, float]:
    eng.stats.recompute_tokens += r.ctx
    return 0.0, dep.prefill_one(r.ctx, 0)


def _swap(dep: "_Deployment", eng: Engine, r: Req) -> tuple[float, float]:
    nbytes = r.ctx * dep.kv_bytes_per_token
    g = dep.engine_gpu[eng]
    topo = dep.topo
    gpu_ep, dram_ep = topo.gpu(g), topo.dram(topo.node_of(g))
    out = dep.net.transfer_time(gpu_ep, dram_ep, nbytes, dep.lanes)
    back = dep.net.transfer_time(dram_ep, gpu_ep, nbytes, dep.lanes)
    eng.stats.swap_bytes += 2 * nbytes
    r.swapped = True
    return out, back


PREEMPTION: dict[str, Callable[["_Deployment", Engine, Req], tuple[float, float]]] = {
    "recompute": _recompute,
    "swap": _swap,
}


# ------------------------------------------------------------------ results


@dataclass
class DeploymentResult:
    """What one deployment measured; sim.modes.pd.run turns it into report metrics."""

    kind: str  # "pd" | "colocated"
    workload: Workload
    reqs: list[Req]
    sim_time_s: float
    wall_s: float
    pools: dict[str, list]  # pool name -> engines
    trees: list[RadixTree]
    lower: LowerTiers
    net: Network
    setup: PDSetup
    transfer: object | None = None  # the KVTransfer strategy (PD only)


# ------------------------------------------------------------------ deployments


class _Deployment:
    kind = "base"

    def __init__(self, cfg: Config, setup: PDSetup, w: Workload, policy: str, ctx: AccessContext | None) -> None:
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
        h, c, m = cfg.hardware, cfg.compute, cfg.model
        bb = int(round(setup.block_tokens * setup.kv_bytes_per_token))
        params = policy_params(cfg, setup.block_tokens)
        self.policy_params = params
        self.lower = LowerTiers(env, self.net, self.topo, dram_blocks=int(h.dram.capacity_gb * GIB // bb),
                                eic_blocks=int(h.eic.capacity_gb * GIB // bb), block_bytes=bb, policy=policy,
                                ctx=ctx, evict_to_eic=cfg.cluster.evict_to_eic, policy_params=params)
        self._pf = dict(tp=m.tp, mfu=c.mfu, compute_dtype=c.dtype)
        self.timing = DecodeTiming(setup.spec, setup.gpu, m.kv_dtype, m.weight_dtype, m.tp,
                                   c.decode_overhead_ms / 1000.0)
        self.preempt_cost = PREEMPTION[cfg.pd.preemption]
        self.engine_gpu: dict[Engine, int] = {}
        self.trees: list[RadixTree] = []
        self.reqs: list[Req] = []
        self.finished = 0

    # ---------------------------------------------------------- compute
    def prefill_one(self, new: int, cached: int) -> float:
        return compute.prefill_time_s(self.setup.spec, self.setup.gpu, new, cached, **self._pf)

    def batch_time(self, batch: list) -> float:
        spec, gpu, pf = self.setup.spec, self.setup.gpu, self._pf
        return sum(compute.prefill_time_s(spec, gpu, n, before, **pf) for _r, n, before in batch)

    def _tree(self, gpu: int) -> RadixTree:
        lanes, lower = self.lanes, self.lower
        tree = RadixTree(self.setup.tree_blocks, self.policy, self.ctx,
                         on_evict=lambda ev, g=gpu: lower.spill(g, lanes, ev), **self.policy_params)
        self.trees.append(tree)
        return tree

    def _sched(self, gpu: int) -> PrefillScheduler:
        pd = self.cfg.pd
        return PrefillScheduler(self._tree(gpu), self.setup.block_tokens, pd.chunk_size_tokens,
                                pd.prefill_token_budget)

    # ---------------------------------------------------------- arrivals
    def _arrivals(self, progress: Progress | None):
        w, env = self.w, self.env
        arr = (w.arrival_ms / 1000.0).tolist()
        inp, out, sess = w.input_tokens.tolist(), w.output_tokens.tolist(), w.session_id.tolist()
        offs = w.block_offsets.tolist()
        ids = w.block_ids
        n = len(w)
        every = max(1, n // 200)
        for i in range(n):
            dt = arr[i] - env.now
            if dt > 0:
                yield env.timeout(dt)
            lo, hi = offs[i], offs[i + 1]
            r = Req(i, inp[i], out[i], ids[lo:hi].tolist(), lo, env.now, sess[i])
            self.reqs.append(r)
            self._route(r)
            if progress is not None and i % every == 0:
                progress(self.kind, i, n)

    def _route(self, r: Req) -> None:
        w = self.router.choose(r)
        r.pre = w
        sched = self.scheds[w]
        m = sched.tree.match(r.blocks)
        r.route_hbm = m
        g = self.prefill_gpu[w]
        nd, ne = self.lower.lookup(g, r.blocks, m, r.pos0)
        if nd + ne:
            r.n_dram, r.n_eic = nd, ne
            r.lower_upto = m + nd + ne
            evs = self.lower.load(g, self.lanes, nd, ne)
            ev = evs[0] if len(evs) == 1 else self.env.all_of(evs)
            ev.callbacks.append(lambda _e, r=r: self._ready(r))
        else:
            self._ready(r)

    def _ready(self, r: Req) -> None:
        r.t_ready = self.env.now
        self.scheds[r.pre].add(r)
        self.prefill_engines[r.pre].notify()

    # ---------------------------------------------------------- hooks shared by the engines
    def chunk_start(self, eng: Engine, batch: list, t0: float, dur: float) -> None:
        for r, _n, _b in batch:
            if r.t_pstart != r.t_pstart:
                r.t_pstart = t0

    def preempted(self, eng: Engine, r: Req) -> tuple[float, float]:
        return self.preempt_cost(self, eng, r)

    def memory_freed(self, eng: Engine) -> None:
        pass

    def _done(self, r: Req) -> None:
        r.t_done = self.env.now
        self.finished += 1

    # ---------------------------------------------------------- run
    def run(self, progress: Progress | None = None) -> DeploymentResult:
        t0 = time.perf_counter()
        self.env.process(self._arrivals(progress))
        self.env.run()
        if progress is not None:
            progress(self.kind, len(self.w), len(self.w))
        if self.finished != len(self.w):
            stuck = [r.i for r in self.reqs if r.t_done != r.t_done][:5]
            raise RuntimeError(f"{self.kind}: {len(self.w) - self.finished} requests never finished "
                               f"(first: {stuck}); the simulation deadlocked")
        return self._result(time.perf_counter() - t0)

    def _result(self, wall: float) -> DeploymentResult:  # pragma: no cover - overridden
        raise NotImplementedError


class PDSim(_Deployment):
    """The disaggregated deployment."""

    kind = "pd"

    def __init__(self, cfg: Config, setup: PDSetup, w: Workload, policy: str,
                 ctx: AccessContext | None = None) -> None:
        super().__init__(cfg, setup, w, policy, ctx)
        pd, c = cfg.pd, cfg.compute
        env, topo = self.env, self.topo
        rpr = setup.replicas_per_rack
        self.prefill_gpu, self.decode_gpu = [], []
        self.decode_by_rack: list[list[int]] = [[] for _ in range(topo.n_racks)]
        for k, g in enumerate(setup.replica_gpus):
            if k % rpr < setup.prefill_per_rack:
                self.prefill_gpu.append(g)
            else:
                self.decode_by_rack[topo.rack_of(g)].append(len(self.decode_gpu))
                self.decode_gpu.append(g)
        self.scheds = [self._sched(g) for g in self.prefill_gpu]
        self.prefill_engines = []
        for k, (g, s) in enumerate(zip(self.prefill_gpu, self.scheds)):
            e = Engine(env, k, self, sched=s, prefill_time=self.batch_time, mem=None, timing=None,
                       max_batch=c.max_batch_size, coalesce=pd.coalesce_decode, decode=False)
            self.prefill_engines.append(e)
            self.engine_gpu[e] = g
        self.decode = []
        for k, g in enumerate(self.decode_gpu):
            e = Engine(env, k, _DecodeHooks(self), sched=None, prefill_time=None, mem=TokenPool(setup.kv_tokens),
                       timing=self.timing, max_batch=c.max_batch_size, coalesce=pd.coalesce_decode,
                       layer_groups=pd.layer_groups)
            self.decode.append(e)
            self.engine_gpu[e] = g
        self.prefill_ep = [topo.gpu(g) for g in self.prefill_gpu]
        self.decode_ep = [topo.gpu(g) for g in self.decode_gpu]
        self.router = make_prefill_router(pd.router, self.scheds, setup.block_tokens, cfg.seed,
                                          load_penalty=pd.load_penalty)
        self.choose_decode = lambda r: DECODE_ROUTERS[pd.decode_router](self, r)
        self.transfer = make_transfer(pd.transfer, self, pd.layerwise, pd.layer_groups)

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

    def prefill_done(self, eng: Engine, r: Req) -> None:
        r.t_pend = self.env.now
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
        self.scheds[r.pre].tree.unlock(r.blocks, r.locked)
        self.prefill_engines[r.pre].notify()

    def finish_at_prefill(self, r: Req) -> None:
        r.t_kv = self.env.now
        self.release_prefill(r)
        self._done(r)

    def _result(self, wall: float) -> DeploymentResult:
        return DeploymentResult("pd", self.w, self.reqs, self.env.now, wall,
                                {"prefill": self.prefill_engines, "decode": self.decode}, self.trees, self.lower,
                                self.net, self.setup, transfer=self.transfer)


class _DecodeHooks:
    """Hooks of the PD decode engines (the prefill engines use PDSim itself)."""

    def __init__(self, sim: PDSim) -> None:
        self.sim = sim

    def chunk_start(self, eng, batch, t0, dur):  # pragma: no cover - decode replicas do not prefill
        raise RuntimeError("a decode replica prefilled")

    def prefill_done(self, eng, r):  # pragma: no cover
        raise RuntimeError("a decode replica prefilled")

    def decode_done(self, eng: Engine, r: Req) -> None:
        self.sim._done(r)

    def preempted(self, eng: Engine, r: Req) -> tuple[float, float]:
        return self.sim.preempt_cost(self.sim, eng, r)

    def memory_freed(self, eng: Engine) -> None:
        self.sim.transfer.on_memory_freed(eng.idx)


class ColocatedSim(_Deployment):
    """Every replica prefills and decodes (chunked prefill mixed into decode iterations)."""

    kind = "colocated"

    def __init__(self, cfg: Config, setup: PDSetup, w: Workload, policy: str,
                 ctx: AccessContext | None = None) -> None:
        super().__init__(cfg, setup, w, policy, ctx)
        pd, c = cfg.pd, cfg.compute
        self.prefill_gpu = list(setup.replica_gpus)
        self.scheds = [self._sched(g) for g in self.prefill_gpu]
        self.prefill_engines = []
        for k, (g, s) in enumerate(zip(self.prefill_gpu, self.scheds)):
            e = Engine(self.env, k, self, sched=s, prefill_time=self.batch_time,
                       mem=TreePool(s.tree, setup.block_tokens), timing=self.timing, max_batch=c.max_batch_size,
                       coalesce=pd.coalesce_decode)
            self.prefill_engines.append(e)
            self.engine_gpu[e] = g
        self.router = make_prefill_router(pd.router, self.scheds, setup.block_tokens, cfg.seed,
                                          load_penalty=pd.load_penalty)

    def prefill_done(self, eng: Engine, r: Req) -> None:
        now = self.env.now
        r.t_pend = r.t_kv = now
        if r.out <= 1:
            self.scheds[eng.idx].tree.unlock(r.blocks, r.locked)
            self._done(r)
            return
        r.ctx = r.inp
        r.left = r.out - 1
        r.mem = 0  # the prompt stays in the tree, referenced; growth is counted by the TreePool
        r.in_tree = True
        eng.incoming += 1
        eng.decode_q.append(r)

    def _release(self, eng: Engine, r: Req) -> None:
        if r.in_tree:
            self.scheds[eng.idx].tree.unlock(r.blocks, r.locked)
            r.in_tree = False

    def decode_done(self, eng: Engine, r: Req) -> None:
        self._release(eng, r)
        self._done(r)

    def preempted(self, eng: Engine, r: Req) -> tuple[float, float]:
        self._release(eng, r)
        return self.preempt_cost(self, eng, r)

    def _result(self, wall: float) -> DeploymentResult:
        return DeploymentResult("colocated", self.w, self.reqs, self.env.now, wall,
                                {"colocated": self.prefill_engines}, self.trees, self.lower, self.net, self.setup)


DEPLOYMENTS: dict[str, type[_Deployment]] = {"pd": PDSim, "colocated": ColocatedSim}


@dataclass
class Prepared:
    """A workload ready for both deployments."""

    setup: PDSetup
    workload: Workload  # re-blocked; only the requests a replica can hold
    ctx: AccessContext
    rejected: np.ndarray  # indexes (in the re-blocked input workload) of requests no replica can hold
    total: int  # requests before rejection

    def rejected_info(self) -> dict:
        return {"count": int(len(self.rejected)), "share": float(len(self.rejected) / max(1, self.total)),
                "first": [int(i) for i in self.rejected[:10]],
                "reason": f"prompt + output exceed one replica's KV memory "
                          f"({self.setup.kv_tokens:,} tokens, {self.setup.kv_gb_per_gpu:.2f} GiB per GPU)"}


def prepare(cfg: Config, workload: Workload, policy: str) -> Prepared:
    """Validate names, re-block the workload, derive the setup, set aside requests no replica can hold."""
    from sim.modes.common import simulated_workload

    check_names(cfg, policy)
    w = simulated_workload(cfg, workload)
    bt = w.block_tokens
    setup = PDSetup.from_config(cfg, bt)
    ok = fits(setup, w)
    rejected = np.flatnonzero(~ok)
    if len(rejected) == len(w):
        raise InputError(f"no request fits one replica's KV memory ({setup.kv_tokens:,} tokens, "
                         f"{setup.kv_gb_per_gpu:.2f} GiB per GPU)", where="pd.kv_capacity_gb")
    if len(rejected):
        w = w.select(np.flatnonzero(ok))
    return Prepared(setup, w, AccessContext.from_workload(w), rejected, len(ok))


def simulate(kind: str, cfg: Config, prep: Prepared, policy: str, *,
             progress: Progress | None = None) -> DeploymentResult:
    """Run one deployment ("pd" or "colocated") on a prepared workload."""
    return DEPLOYMENTS[kind](cfg, prep.setup, prep.workload, policy, prep.ctx).run(progress)


__all__ = [
    "DECODE_ROUTERS", "DEPLOYMENTS", "ColocatedSim", "DeploymentResult", "PDSetup", "PDSim", "PREEMPTION",
    "Prepared", "fits", "prepare", "simulate", "split_replicas",
]
