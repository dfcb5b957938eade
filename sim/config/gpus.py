"""Accelerators and host-side tiers: ``GpuSpec``, the GPU presets (with their datasheet sources), host defaults.

Units as in config.yaml: memory GiB, bandwidths GB/s (10**9 bytes/s), compute
dense TFLOPS (no 2:4 sparsity).
"""
from __future__ import annotations

from dataclasses import dataclass

from sim.errors import InputError


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator. memory_gb is the marketed capacity, used as GiB
    (nvidia-smi reports within ~1-2% of it); bandwidths GB/s (1e9 B/s);
    TFLOPS dense (no sparsity); nvlink_gb_s is the total bidirectional
    GPU-to-GPU bandwidth per GPU as datasheets quote it (0 = none)."""

    name: str
    memory_gb: float
    hbm_bandwidth_gb_s: float
    fp16_tflops: float
    fp8_tflops: float = 0.0
    nvlink_gb_s: float = 0.0



def intra_node_link_gb_s(configured: float, gpu: GpuSpec, pcie_gb_s: float = 0.0) -> float:
    """GPU <-> GPU bandwidth inside a node, GB/s per direction.

    ``configured`` (``network.nvlink_bandwidth_gb_s``) when > 0; else the GPU's
    own NVLink figure, which datasheets quote as the bidirectional total (H100
    900 -> 450 each way, A100 600 -> 300); else, for GPUs without NVLink
    (L40S, RTX 4090), ``pcie_gb_s``, the PCIe link figure (0 = unknown).
    """
    return configured if configured > 0 else (gpu.nvlink_gb_s / 2.0 if gpu.nvlink_gb_s > 0 else pcie_gb_s)


GPUS: dict[str, GpuSpec] = {
    # NVIDIA H100 Tensor Core GPU datasheet, SXM5 column: 80 GB HBM3, 3.35 TB/s,
    # BF16/FP16 1,979 TFLOPS *with sparsity* -> 989 dense; FP8 3,958 sparse ->
    # 1,979 dense; NVLink 900 GB/s.
    "h100-sxm": GpuSpec("h100-sxm", 80, 3350, 989, 1979, 900),
    # NVIDIA H200 datasheet (SXM): 141 GB HBM3e, 4.8 TB/s, same Hopper compute
    # as H100 SXM (989 dense BF16, 1,979 dense FP8), NVLink 900 GB/s.
    "h200": GpuSpec("h200", 141, 4800, 989, 1979, 900),
    # NVIDIA HGX H20 product brief (China export SKU): 96 GB HBM3, 4.0 TB/s,
    # FP16/BF16 148 TFLOPS, FP8 296 TFLOPS (dense), NVLink 900 GB/s.
    "h20": GpuSpec("h20", 96, 4000, 148, 296, 900),
    # NVIDIA A100 datasheet, 80GB SXM: HBM2e 2,039 GB/s, BF16 312 TFLOPS
    # dense (624 sparse), no FP8, NVLink 600 GB/s.
    "a100-80g": GpuSpec("a100-80g", 80, 2039, 312, 0, 600),
    # NVIDIA A100 datasheet, 40GB SXM: HBM2 1,555 GB/s, BF16 312 dense, NVLink 600 GB/s.
    "a100-40g": GpuSpec("a100-40g", 40, 1555, 312, 0, 600),
    # NVIDIA L40S datasheet: 48 GB GDDR6, 864 GB/s, BF16 362.05 dense
    # (733 sparse), FP8 733 dense (1,466 sparse), no NVLink (PCIe Gen4 x16).
    "l40s": GpuSpec("l40s", 48, 864, 362, 733, 0),
    # NVIDIA Ada Lovelace architecture whitepaper, GeForce RTX 4090: 24 GB
    # GDDR6X, 1,008 GB/s; FP16 tensor with FP32 accumulate (what BF16/FP16
    # inference kernels use) 165.2 dense; FP8 with FP32 accumulate 330.3
    # dense (GeForce runs FP32-accumulate at half the FP16-accumulate rate);
    # no NVLink.
    "rtx-4090": GpuSpec("rtx-4090", 24, 1008, 165, 330, 0),
    # NVIDIA DGX B200 / HGX B200 datasheets: 1,440 GB for 8 GPUs = 180 GB per
    # GPU *as shipped* (the 192 GB figure from the GTC 2024 announcement is the
    # full HBM3e stack count; we use the 180 GB that systems expose), 8 TB/s,
    # FP16/BF16 2.25 PFLOPS dense (4.5 sparse), FP8 4.5 dense, NVLink 5 1.8 TB/s.
    "b200": GpuSpec("b200", 180, 8000, 2250, 4500, 1800),
    # AMD Instinct MI300X datasheet: 192 GB HBM3, 5.3 TB/s, FP16/BF16 1,307.4
    # TFLOPS dense, FP8 2,614.9 dense, Infinity Fabric 896 GB/s aggregate
    # (7 links x 128 GB/s bidirectional).
    "mi300x": GpuSpec("mi300x", 192, 5300, 1307, 2615, 896),
}


_GPU_ALIASES = {
    "h100": "h100-sxm", "h100-80g": "h100-sxm", "h100-sxm5": "h100-sxm", "h200-sxm": "h200",
    "a100": "a100-80g", "a100-80gb": "a100-80g", "a100-40gb": "a100-40g", "4090": "rtx-4090",
    "rtx4090": "rtx-4090", "b200-sxm": "b200",
}


def gpu_spec(name: str) -> GpuSpec:
    """A GPU preset by name (case-insensitive, a few aliases such as "h100")."""
    key = str(name).strip().lower()
    key = _GPU_ALIASES.get(key, key)
    if key not in GPUS:
        raise InputError(f"unknown GPU {name!r} (known: {', '.join(GPUS)})", where="hardware.gpu")
    return GPUS[key]


# Host-side tiers of a DGX H100-class node (NVIDIA DGX H100 datasheet / user
# guide): 2 TB DDR5 system memory, PCIe Gen5 to each GPU, internal storage
# 8 x 3.84 TB U.2 NVMe (PCIe Gen4). Bandwidths are effective, not raw.
HOST_DEFAULTS: dict[str, dict[str, float]] = {
    "dram": {
        "capacity_gib": 2048,        # GiB per node: DGX H100 "2TB" system memory (32 x 64 GiB DIMMs)
        "pcie_bandwidth_gb_s": 50,  # GB/s host->GPU per GPU: PCIe Gen5 x16 is 64 GB/s raw per
                                    # direction; pinned cudaMemcpy reaches ~50-55 in practice
        "latency_us": 10,           # us per transfer: DMA setup + launch of a host->device copy
    },
    "nvme": {
        "capacity_gib": 28610,       # GiB per node: 8 x 3.84 TB = 30.72e12 B = 28,610 GiB
        "bandwidth_gb_s": 40,       # GB/s per node read: 8 Gen4 drives x ~6.8 GB/s raw = ~55;
                                    # ~70% after RAID-0/filesystem overhead
        "latency_us": 100,          # us: NVMe 4K random read ~80-90 us + I/O stack
    },
}
