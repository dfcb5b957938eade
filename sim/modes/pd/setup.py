"""What a PD run derives before any deployment runs: sizes and layout, the admissible workload, name checks.

``PDSetup`` turns config + block size into the replica layout (``pd.racks``
racks of ``pd.gpus_per_rack`` GPUs, ``model.tp x model.pp`` GPUs per
replica, split ``pd.prefill_ratio : pd.decode_ratio`` per rack) and the KV
memory per GPU. ``prepare`` re-blocks the workload, derives the setup and
sets aside the requests no replica can hold; both deployments
(``sim.modes.pd.simulator``) then run on the same ``Prepared`` workload.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from sim.cache.radix_tree import make_order
from sim.config import Config, config_with
from sim.config.gpus import GpuSpec, gpu_spec
from sim.config.kv_sizes import GIB, free_kv_bytes_per_gpu, kv_bytes_per_token, kv_bytes_per_token_total
from sim.config.models import ModelSpec, model_spec
from sim.errors import InputError
from sim.modes.common import simulated_workload
from sim.policies.base import AccessContext
from sim.routing.registry import router_class
from trace.workload import Workload


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
    spec: ModelSpec
    gpu: GpuSpec
    block_tokens: int
    kv_bytes_per_token: float  # whole model (what a transfer moves per token)
    kv_gib_per_gpu: float
    kv_tokens: int  # per replica
    tree_blocks: int  # per replica
    gpus_per_replica: int
    replica_gpus: list[int]  # first GPU of every replica, in GPU order
    replicas_per_rack: int
    prefill_per_rack: int
    decode_per_rack: int
    derived_kv: bool = False

    @classmethod
    def from_config(cls, cfg: Config, block_tokens: int) -> PDSetup:
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
        if pd.kv_capacity_gib > 0:
            kv_bytes = pd.kv_capacity_gib * GIB
            derived = False
        else:
            kv_bytes = free_kv_bytes_per_gpu(spec, gpu, m.weight_dtype, m.tp, m.pp, h.runtime_reserve_gib)
            derived = True
            if kv_bytes <= 0:
                raise InputError(f"weights of {spec.name} ({m.weight_dtype}) / (tp {m.tp} x pp {m.pp}) plus "
                                 f"{h.runtime_reserve_gib:g} GiB reserve leave no KV memory on {gpu.name}; "
                                 "raise model.tp or set pd.kv_capacity_gib", where="pd.kv_capacity_gib")
        per_gpu_token = kv_bytes_per_token(spec, m.kv_dtype, m.tp, m.pp)
        kv_tokens = int(kv_bytes // per_gpu_token)
        tree_blocks = kv_tokens // block_tokens
        if tree_blocks < 1:
            raise InputError(f"{kv_bytes / GIB:.3f} GiB of KV per GPU holds no {block_tokens}-token block",
                             where="pd.kv_capacity_gib")
        per_node = gpn // per
        replica_gpus = [n * gpn + k * per for n in range(racks * gpr // gpn) for k in range(per_node)]
        rpr = (gpr // gpn) * per_node
        P, D = split_replicas(rpr, pd.prefill_ratio, pd.decode_ratio)
        return cls(cfg=cfg, topo_cfg=topo_cfg, spec=spec, gpu=gpu, block_tokens=block_tokens,
                   kv_bytes_per_token=kv_bytes_per_token_total(spec, m.kv_dtype), kv_gib_per_gpu=kv_bytes / GIB,
                   kv_tokens=kv_tokens, tree_blocks=tree_blocks, gpus_per_replica=per, replica_gpus=replica_gpus,
                   replicas_per_rack=rpr, prefill_per_rack=P, decode_per_rack=D, derived_kv=derived)

    @property
    def racks(self) -> int:
        return self.topo_cfg.cluster.racks

    def tier_blocks(self) -> tuple[int, int, int]:
        """(block bytes, DRAM blocks per node, EIC blocks per rack) of the lower tiers (sim.cache.spill)."""
        h = self.cfg.hardware
        bb = int(round(self.block_tokens * self.kv_bytes_per_token))
        return bb, int(h.dram.capacity_gib * GIB // bb), int(h.eic.capacity_gib * GIB // bb)

    def cache_slots(self, kind: str, distinct: int) -> int:
        """The blocks deployment `kind` ("pd", "colocated") can hold at once in its Python caches: a radix
        tree per replica that prefills (the PD decode replicas keep token counts only), a DRAM tier per node,
        an EIC tier per rack; each holds at most `distinct` blocks (the workload's distinct blocks)."""
        from sim.timing.topology import Topology

        topo = Topology.from_config(self.topo_cfg)
        _bb, dram, eic = self.tier_blocks()
        return (self.tree_slots(kind, distinct) + topo.n_nodes * min(dram, distinct)
                + (topo.n_racks * min(eic, distinct) if topo.has_eic else 0))

    def tree_slots(self, kind: str, distinct: int) -> int:
        """The blocks the radix trees of deployment `kind` hold at once (cache_slots' first part)."""
        trees = self.prefill_per_rack * self.racks if kind == "pd" else len(self.replica_gpus)
        return trees * min(self.tree_blocks, distinct)

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
            "kv_gib_per_gpu": self.kv_gib_per_gpu, "kv_derived": self.derived_kv,
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
    """The prefill and decode routers and the eviction policy exist, before any work is done."""
    router_class(cfg.pd.router, "prefill", where="pd.router")
    router_class(cfg.pd.decode_router, "decode", where="pd.decode_router")
    try:
        make_order(policy, 1, None)
    except KeyError as e:
        raise InputError(str(e).strip('"'), where="--policy") from None
    except ValueError:
        pass  # belady needs the context; it exists at run time


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
                          f"({self.setup.kv_tokens:,} tokens, {self.setup.kv_gib_per_gpu:.2f} GiB per GPU)"}


def prepare(cfg: Config, workload: Workload, policy: str) -> Prepared:
    """Validate names, re-block the workload, derive the setup, set aside requests no replica can hold."""
    check_names(cfg, policy)
    w = simulated_workload(cfg, workload)
    bt = w.block_tokens
    setup = PDSetup.from_config(cfg, bt)
    ok = fits(setup, w)
    rejected = np.flatnonzero(~ok)
    if len(rejected) == len(w):
        raise InputError(f"no request fits one replica's KV memory ({setup.kv_tokens:,} tokens, "
                         f"{setup.kv_gib_per_gpu:.2f} GiB per GPU)", where="pd.kv_capacity_gib")
    if len(rejected):
        w = w.select(np.flatnonzero(ok))
    return Prepared(setup, w, AccessContext.from_workload(w), rejected, len(ok))


__all__ = ["PDSetup", "Prepared", "check_names", "fits", "prepare", "split_replicas"]
