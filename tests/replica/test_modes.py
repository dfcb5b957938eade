"""Every timed mode runs its workers on the replica engine: prefills slow the decode beside them."""
import numpy as np

from sim.config import load_config
from sim.modes.cluster import run_cluster
from sim.modes.single import run_single
from trace.workload import Workload

BASE = ["model.name=llama-3-8b", "model.tp=1", "hardware.gpu=h100-sxm", "hardware.gpus_per_node=1"]


def _workload(n_prefills: int) -> Workload:
    # request 0: a short prompt and 200 output tokens; then n_prefills distinct 4,096-token prompts
    # (256 blocks of 16) arriving 20 ms apart while it decodes, one output token each
    reqs = [[0]] + [list(range(1000 * (k + 1), 1000 * (k + 1) + 256)) for k in range(n_prefills)]
    arr = np.array([0.0] + [20.0 * (k + 1) for k in range(n_prefills)])
    out = np.array([200] + [1] * n_prefills)
    return Workload.from_requests(reqs, arrival_ms=arr, output_tokens=out, name="itl")


def test_concurrent_prefills_raise_the_decoders_tpot_on_one_node():
    cfg = load_config(overrides=BASE)
    alone = run_single(cfg, _workload(0), "lru", timing=True)
    busy = run_single(cfg, _workload(10), "lru", timing=True)
    assert busy.tpot_s[0] > alone.tpot_s[0] * 1.2
    for q in ("p99", "mean"):
        assert busy.iteration_ms[q] > alone.iteration_ms[q]
    # the TTFT split adds up: load + queue + prefill
    tt = busy.load_s + busy.queue_s + busy.prefill_s
    assert np.allclose(tt, busy.ttft_s, rtol=1e-9)


def test_the_cluster_runs_its_workers_on_the_engine():
    cfg = load_config(overrides=BASE + ["cluster.racks=1", "cluster.gpus_per_rack=1", "cluster.router=round_robin"])
    alone = run_cluster(cfg, _workload(0), "lru", "round_robin", timing=True)
    busy = run_cluster(cfg, _workload(10), "lru", "round_robin", timing=True)
    assert busy.tpot_s[0] > alone.tpot_s[0] * 1.2
    assert busy.preemptions == 0 and busy.iteration_ms["mean"] > 0
