"""Reader of measured operator times in Vidur's profiling format (no fitting here).

The data: ``../shared/profiling/vidur/`` next to the repository (copied from
github.com/microsoft/vidur ``data/profiling/``, MIT licence; its README
describes the files). Two kinds of points:

* ``layer_points``: per-layer milliseconds of a chosen set of operators of one
  transformer layer (``mlp.csv``; by default the four projection GEMMs,
  ``LAYER_OPS``), by ``num_tokens`` in the batch and TP degree.
* ``all_reduce_points``: NCCL all-reduce milliseconds by message size and
  number of GPUs (``network/<system>/all_reduce.csv``). ``size`` is in
  **bytes**: Vidur's profiler allocates ``size`` fp16 elements and records
  ``size * 2`` ("# bytes", vidur/profiling/collectives/collectives_wrapper.py);
  checked against a known layer: Llama-2-7B's 4096 tokens x 4096 hidden x 2 B
  = 33,554,432, which is a listed size.

Callers check ``available()`` first (the directory is not part of the
repository); reading a missing file is an InputError naming it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from sim.errors import InputError

VIDUR_DIR = Path(__file__).resolve().parents[3] / "shared" / "profiling" / "vidur"

# Operators of one layer in mlp.csv (columns time_stats.<op>.<stat>, ms per layer).
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
# The step-cost linear term stands for the GEMMs only. Vidur profiles eager PyTorch, where RMSNorm, RoPE,
# SiLU-and-mul and the residual add are separate unfused kernels (at 4096 tokens on 8 H100s they take 0.20 ms
# per Llama-2-7B layer next to 0.32 ms of GEMMs, since they are not split by TP); serving engines fuse them
# into neighbouring kernels (vLLM fused_add_rms_norm / silu_and_mul, TensorRT-LLM plugins), and what they
# still cost at small batches (launches) is the per-layer fixed cost, fitted on engine measurements.
LAYER_OPS = GEMM_OPS

# (GPU directory, model directory) of the mlp.csv files, with our GPU preset for each directory.
MLP_FILES = (("h100", "llama-2-7b"), ("h100", "codellama-34b"), ("a100", "llama-3-70b"))
GPU_PRESET = {"h100": "h100-sxm", "a100": "a100-80g"}


@dataclass(frozen=True)
class LayerShape:
    """The transformer layer a point was measured on (columns of mlp.csv)."""

    n_head: int
    n_kv_head: int
    hidden: int
    intermediate: int
    vocab: int
    gated: bool

    @property
    def linear_params(self) -> int:
        """Weights of the four projections: QKV, output, gate+up (or up), down."""
        head_dim = self.hidden // self.n_head
        qkv = self.hidden * (self.n_head + 2 * self.n_kv_head) * head_dim
        out = self.n_head * head_dim * self.hidden
        up = (2 if self.gated else 1) * self.hidden * self.intermediate
        return qkv + out + up + self.intermediate * self.hidden


@dataclass(frozen=True)
class LayerPoint:
    gpu: str          # our GPU preset name
    model: str        # Vidur's model directory
    shape: LayerShape
    tokens: int       # num_tokens of the batch
    tp: int           # num_tensor_parallel_workers
    ms: float         # per layer, the sum of the chosen ops' statistic


@dataclass(frozen=True)
class CommPoint:
    workers: int
    nbytes: int
    ms: float


def available(root: Path | None = None) -> bool:
    """True when the profiling directory with every file the readers use is present."""
    root = root or VIDUR_DIR
    files = [root / g / m / "mlp.csv" for g, m in MLP_FILES] + [root / "network" / "h100_dgx" / "all_reduce.csv"]
    return all(f.is_file() for f in files)


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError("Vidur profiling file not found", where=str(path))
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def layer_points(gpu_dir: str, model_dir: str, ops: tuple[str, ...] = LAYER_OPS, stat: str = "median",
                 root: Path | None = None) -> list[LayerPoint]:
    """Per-layer ms of ``ops`` summed, one point per (num_tokens, TP) row of ``<gpu>/<model>/mlp.csv``."""
    path = (root or VIDUR_DIR) / gpu_dir / model_dir / "mlp.csv"
    rows = _rows(path)
    out = []
    for i, r in enumerate(rows, start=2):
        try:
            shape = LayerShape(int(r["n_head"]), int(r["n_kv_head"]), int(r["n_embd"]),
                               int(r["n_expanded_embd"]), int(r["vocab_size"]), r["use_gated_mlp"] == "True")
            ms = sum(float(r[f"time_stats.{op}.{stat}"]) for op in ops)
            out.append(LayerPoint(GPU_PRESET.get(gpu_dir, gpu_dir), model_dir, shape, int(r["num_tokens"]),
                                  int(r["num_tensor_parallel_workers"]), ms))
        except (KeyError, ValueError) as e:
            raise InputError(f"bad or missing column ({e})", where=f"{path}:{i}") from None
    return out


def all_reduce_points(system: str = "h100_dgx", stat: str = "median", root: Path | None = None) -> list[CommPoint]:
    """NCCL all-reduce ms by (GPUs, message bytes), rank 0's rows of ``network/<system>/all_reduce.csv``."""
    path = (root or VIDUR_DIR) / "network" / system / "all_reduce.csv"
    out = []
    for i, r in enumerate(_rows(path), start=2):
        try:
            if r.get("rank", "0") != "0":
                continue
            out.append(CommPoint(int(r["num_workers"]), int(r["size"]), float(r[f"time_stats.all_reduce.{stat}"])))
        except (KeyError, ValueError) as e:
            raise InputError(f"bad or missing column ({e})", where=f"{path}:{i}") from None
    return out


__all__ = ["GEMM_OPS", "LAYER_OPS", "MLP_FILES", "VIDUR_DIR", "CommPoint", "LayerPoint",
           "LayerShape", "all_reduce_points", "available", "layer_points"]
