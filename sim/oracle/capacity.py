"""Deployment -> cache capacity in blocks (HBM and extra per-machine tiers).

HBM: ``cards x (GPU memory - weights/(tp x pp) - runtime reserve)`` when the
deployment is given by GPU and card count, counted in whole blocks per
replica (``kv_bytes_per_token`` per GPU of one tp x pp replica, so KV-head
replication at large TP is accounted for); or an explicit pool budget
``--kv-budget-gb`` (GiB of unsharded KV: ``kv_bytes_per_token_total``).
Extra tiers ("HBM+1T per machine") add ``machines x size`` bytes of host
memory holding unsharded KV; machines = ceil(cards / gpus_per_node) unless
given. The oracle treats a tiered pool as one cache of the combined size
(a hit in any tier counts), which is the upper bound a hierarchy can reach.
All ``_gb`` figures are GiB (1024^3 bytes); ``1T`` = 1 TiB.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from sim.config.gpus import gpu_spec
from sim.config.kv_sizes import (
    GIB,
    free_kv_bytes_per_gpu,
    kv_bytes_per_token,
    kv_bytes_per_token_total,
    weights_bytes_per_gpu,
)
from sim.config.models import model_spec
from sim.errors import InputError

_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def parse_bytes(text: str, where: str = "--tiers") -> int:
    """'1T' / '1TiB' / '1TB' -> 1024^4, '512G' -> 512 GiB, plain numbers are GiB."""
    t = str(text).strip().upper().replace("IB", "").rstrip("B")
    mult = GIB
    if t and t[-1] in _UNITS:
        mult, t = _UNITS[t[-1]], t[:-1]
    try:
        v = float(t) * mult
    except ValueError:
        raise InputError(f"not a size: {text!r} (e.g. 1T, 512G)", where=where) from None
    if v <= 0:
        raise InputError(f"size must be positive: {text!r}", where=where)
    return int(v)


@dataclass(frozen=True)
class Tier:
    label: str  # "HBM" or "HBM+1T per machine"
    extra_bytes_per_machine: int = 0


def parse_tiers(text: str | None) -> list[Tier]:
    """'1T,10T' -> [HBM, HBM+1T per machine, HBM+10T per machine]."""
    tiers = [Tier("HBM")]
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        spec = part.upper().removeprefix("HBM+").strip()
        spec = spec.removesuffix(" PER MACHINE").strip()
        tiers.append(Tier(f"HBM+{spec} per machine", parse_bytes(spec)))
    return tiers


@dataclass(frozen=True)
class Deployment:
    model: str
    gpu: str = "h100-sxm"
    cards: int = 0  # 0 = use kv_budget_gb
    kv_budget_gb: float = 0.0  # GiB of the whole pool (0 = derive from cards)
    tp: int = 1
    pp: int = 1
    kv_dtype: str = "fp16"
    weight_dtype: str = "fp16"
    reserve_gb: float = 4.0
    gpus_per_node: int = 8
    machines: int = 0  # 0 = ceil(cards / gpus_per_node), or 1 with a budget
    kv_gib_per_card: float = 0.0  # >0: KV GiB per card given outright (openanolis configs), not from the GPU

    def with_cards(self, cards: int) -> Deployment:
        return replace(self, cards=int(cards), kv_budget_gb=0.0, machines=0)


@dataclass
class Capacity:
    tier: str
    bytes: int
    blocks: int
    block_bytes: float  # unsharded KV bytes of one block
    details: dict = field(default_factory=dict)

    @property
    def gb(self) -> float:
        return self.bytes / GIB

    def to_dict(self) -> dict:
        d = asdict(self)
        d["gib"] = self.gb
        return d


def hbm_capacity(dep: Deployment, block_tokens: int) -> Capacity:
    """KV capacity of the HBM pool of `dep` in blocks of `block_tokens` tokens."""
    spec = model_spec(dep.model)
    block_bytes = kv_bytes_per_token_total(spec, dep.kv_dtype) * block_tokens
    if dep.kv_budget_gb > 0:
        b = int(dep.kv_budget_gb * GIB)
        return Capacity("HBM", b, int(b // block_bytes), block_bytes,
                        {"source": "kv_budget_gb", "kv_budget_gb": dep.kv_budget_gb})
    if dep.cards <= 0:
        raise InputError("give --kv-budget-gb or --cards (with --gpu)", where="--cards")
    if dep.kv_gib_per_card > 0:
        # A per-card budget of unsharded KV (openanolis's hbm_kv_gb_per_card): the pool is cards x budget.
        b = int(dep.cards * dep.kv_gib_per_card * GIB)
        return Capacity("HBM", b, int(b // block_bytes), block_bytes,
                        {"source": "kv_gib_per_card", "cards": dep.cards, "kv_gib_per_card": dep.kv_gib_per_card})
    gpu = gpu_spec(dep.gpu)
    group = dep.tp * dep.pp
    replicas = dep.cards // group
    if replicas < 1:
        raise InputError(f"{dep.cards} cards cannot hold one tp {dep.tp} x pp {dep.pp} replica", where="--cards")
    free = free_kv_bytes_per_gpu(spec, gpu, dep.weight_dtype, dep.tp, dep.pp, dep.reserve_gb)
    if free <= 0:
        w = weights_bytes_per_gpu(spec, dep.weight_dtype, dep.tp, dep.pp) / GIB
        raise InputError(
            f"{spec.name} weights ({w:.1f} GiB per GPU at tp {dep.tp} x pp {dep.pp}) plus reserve "
            f"{dep.reserve_gb:g} GiB do not fit in {gpu.name} ({gpu.memory_gb:g} GiB); raise --tp or pick a "
            "larger GPU", where="--gpu")
    per_gpu_block = kv_bytes_per_token(spec, dep.kv_dtype, dep.tp, dep.pp) * block_tokens
    blocks_per_replica = int(free // per_gpu_block)
    return Capacity("HBM", int(free * replicas * group), blocks_per_replica * replicas, block_bytes, {
        "source": "cards", "gpu": gpu.name, "cards": dep.cards, "replicas": replicas,
        "free_kv_gb_per_card": free / GIB, "blocks_per_replica": blocks_per_replica,
    })


def machines_of(dep: Deployment) -> int:
    if dep.machines > 0:
        return dep.machines
    if dep.cards > 0:
        return math.ceil(dep.cards / dep.gpus_per_node)
    return 1


def tier_capacities(dep: Deployment, block_tokens: int, tiers: list[Tier]) -> list[Capacity]:
    """Capacity of each tier (HBM first), extra tiers added to HBM."""
    hbm = hbm_capacity(dep, block_tokens)
    out = []
    m = machines_of(dep)
    for t in tiers:
        if t.extra_bytes_per_machine <= 0:
            out.append(hbm)
            continue
        extra = m * t.extra_bytes_per_machine
        out.append(Capacity(t.label, hbm.bytes + extra, hbm.blocks + int(extra // hbm.block_bytes), hbm.block_bytes,
                            {**hbm.details, "machines": m, "extra_bytes": extra}))
    return out
