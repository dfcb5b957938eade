"""What every simulation mode derives from config + workload the same way.

Node sizes (``NodeSetup``: workers, blocks per tier, model/GPU specs), the
workload re-blocked to the simulated page size, the per-run policy
parameters, the token split of a cached prefix and the uncontended service
time that drives the hit-rate-only replays' load signal. The single-node,
cluster and PD simulators, the experiments and the learned policy's
training use them.
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.config import Config
from sim.config.gpus import GpuSpec, gpu_spec
from sim.config.kv_sizes import kv_budget_bytes_per_gpu, kv_bytes_per_token_total
from sim.config.models import ModelSpec, model_spec
from sim.errors import InputError
from sim.policies.base import AccessContext
from sim.replica.engine import BatchingReplica
from sim.replica.request import Req
from sim.replica.workers import Workers
from sim.timing.step_cost import StepModel
from trace.prefix import row_reader
from trace.workload import Workload

GiB = 1024**3


@dataclass
class NodeSetup:
    """Sizes and speeds derived once from config + workload."""

    n_workers: int
    gpus_per_worker: int
    block_tokens: int
    block_bytes: int
    hbm_blocks: int  # per worker
    dram_blocks: int  # per node
    ssd_blocks: int  # per node
    kv_bytes_per_token: float  # one model replica
    spec: ModelSpec
    gpu: GpuSpec

    @classmethod
    def from_config(cls, cfg: Config, block_tokens: int) -> NodeSetup:
        spec = model_spec(cfg.model.name)
        gpu = gpu_spec(cfg.hardware.gpu)
        if cfg.hardware.hbm.bandwidth_gb_s > 0:
            gpu = dataclasses.replace(gpu, hbm_bandwidth_gb_s=cfg.hardware.hbm.bandwidth_gb_s)
        per_worker = cfg.model.tp * cfg.model.pp
        if per_worker > cfg.hardware.gpus_per_node:
            raise InputError(
                f"model.tp x model.pp = {per_worker} exceeds hardware.gpus_per_node={cfg.hardware.gpus_per_node}",
                where="model.tp",
            )
        kvpt = kv_bytes_per_token_total(spec, cfg.model.kv_dtype)
        block_bytes = int(round(block_tokens * kvpt))
        hbm_bytes = kv_budget_bytes_per_gpu(cfg) * per_worker
        h = cfg.hardware
        if hbm_bytes < block_bytes:
            raise InputError(
                f"the HBM KV budget per worker ({hbm_bytes / GiB:.3f} GiB) holds no {block_tokens}-token block "
                f"of {block_bytes / GiB:.3f} GiB; raise the capacity or lower cache.block_tokens",
                where="hardware.hbm.capacity_gib",
            )
        return cls(
            n_workers=h.gpus_per_node // per_worker,
            gpus_per_worker=per_worker,
            block_tokens=block_tokens,
            block_bytes=block_bytes,
            hbm_blocks=int(hbm_bytes // block_bytes),
            dram_blocks=int(h.dram.capacity_gib * GiB // block_bytes),
            ssd_blocks=int(h.ssd.capacity_gib * GiB // block_bytes),
            kv_bytes_per_token=kvpt,
            spec=spec,
            gpu=gpu,
        )


def sim_block_tokens(cfg: Config, workload: Workload) -> int:
    return cfg.cache.block_tokens or workload.block_tokens


def simulated_workload(cfg: Config, workload: Workload) -> Workload:
    """`workload` re-blocked to the simulated page size (an InputError if it does not divide)."""
    try:
        return workload.reblock(sim_block_tokens(cfg, workload))
    except ValueError as e:
        raise InputError(str(e), where="cache.block_tokens") from None


def prepare_workload(cfg: Config, workload: Workload) -> tuple[Workload, AccessContext]:
    """Re-block to the simulated page size and build the per-access arrays once."""
    w = simulated_workload(cfg, workload)
    return w, AccessContext.from_workload(w)


def block_lists(w: Workload) -> Callable[[int], list[int]]:
    """Request i's block ids as Python ints (the Python caches' keys), built when asked: a row of the parent
    form (trace.prefix.row_reader) or a slice of the CSR when the workload holds one; nothing expanded or
    held for the whole trace (a list of every access's int costs ~40 bytes an access)."""
    if w.compact:
        row = row_reader(w.prefix_blocks())
        return lambda i: row(i).tolist()
    ids, off_at = w.block_ids, w.block_offsets.item
    return lambda i: ids[off_at(i):off_at(i + 1)].tolist()


def policy_params(cfg: Config, block_tokens: int) -> dict:
    """Per-run parameters every policy receives (each ignores those it does not use)."""
    return {
        # depth index of the deepest admitted block: tokens -> blocks
        "depth_threshold": max(0, cfg.cache.selective_depth_tokens // block_tokens - 1),
        # one reuse history for all tiers of a node (selective_write)
        "seen": OrderedDict(),
        "learned_model": cfg.policies.learned_model,
        "learned_retrain_every": cfg.policies.learned_retrain_every,
    }


def trim_tokens(counts: list[int], bt: int, input_tokens: int) -> list[int]:
    """Tokens per location (tier) from block counts in lookup order; a prompt's last
    partial block is trimmed from the deepest locations first."""
    tok = [c * bt for c in counts]
    excess = sum(tok) - input_tokens
    k = len(tok) - 1
    while excess > 0 and k >= 0:
        cut = min(excess, tok[k])
        tok[k] -= cut
        excess -= cut
        k -= 1
    return tok


def nan_rows(n: int, shape: tuple[int, ...] = (), dtype=float, *, written: bool = True) -> np.ndarray:
    """`n` rows of NaN: an array a replay fills in (`written`), or, for a column no replay writes (a
    hit-rate-only run's latencies), one read-only view of a single NaN, so it costs no memory per
    request and a stray write fails loudly instead of going unnoticed."""
    if written:
        return np.full((n, *shape), np.nan, dtype=dtype)
    return np.broadcast_to(np.array(np.nan, dtype=dtype), (n, *shape))


def positions_still_read(waiting: dict, next_arrival: int, first_position: Callable[[int], int]) -> int:
    """The first access position a timed replay's requests may still read (what it tells
    ``AccessContext.accesses_done``): a request reads its own positions until a point of its life (its store at
    the first token in the single-node and cluster replays; its last tree unlock, so when done, in PD), so the
    oldest request not past it (`waiting`, keyed by request in arrival order) bounds them, or, with none
    waiting, the next request to arrive. `first_position(i)`: request i's first access position
    (``block_offsets``, n + 1 of them)."""
    return first_position(next(iter(waiting)) if waiting else next_arrival)


def service_times(cfg: Config, w: Workload) -> np.ndarray:
    """Uncontended service time per request: the load signal of the hit-rate-only replays."""
    return StepModel.from_config(cfg).service_s(w.input_tokens, w.output_tokens)


@dataclass(frozen=True)
class WorkerParams:
    """A single-node / cluster worker replica's settings (``sim.replica.workers.Workers``'s keywords; the
    compiled timed replay, sim.engine.timed_run, reads the same). Running requests' KV: a token pool of the
    worker's HBM KV budget, at least the largest request (prompt + output); preemptions swap over the worker's
    GPUs' PCIe links to host DRAM."""

    pool_tokens: int
    max_seqs: int
    token_budget: int
    preemption: str
    kv_bytes_per_token: float
    swap_bytes_s: float

    @classmethod
    def of(cls, cfg: Config, setup: NodeSetup, w: Workload) -> WorkerParams:
        c = cfg.compute
        biggest = int((w.input_tokens + w.output_tokens).max()) if len(w) else 1
        return cls(pool_tokens=max(setup.hbm_blocks * setup.block_tokens, biggest), max_seqs=c.max_num_seqs,
                   token_budget=c.max_num_batched_tokens, preemption=c.preemption,
                   kv_bytes_per_token=setup.kv_bytes_per_token,
                   swap_bytes_s=cfg.hardware.dram.bandwidth_gb_s * 1e9 * setup.gpus_per_worker)


def worker_replicas(cfg: Config, setup: NodeSetup, env, w: Workload, *,
                    first_token: Callable[[BatchingReplica, Req], None], done: Callable[[Req], None]) -> Workers:
    """The single-node / cluster workers as replicas (``sim.replica.workers``), with ``WorkerParams``.
    ``pd.coalesce_decode`` applies here too (it switches every mode's replica engine)."""
    return Workers(env, StepModel.from_config(cfg), **vars(WorkerParams.of(cfg, setup, w)),
                   first_token=first_token, done=done, coalesce=cfg.pd.coalesce_decode)
