"""Cluster mode on the Python caches (policies without a compiled cluster kernel) holds no per-access list:
each request's blocks are built when it arrives (sim.modes.common.block_lists); the estimate counts per
access only for the policies reading per-access arrays and, timed, the lists of the requests in flight."""
import numpy as np
import pytest

from sim.config import load_config
from sim.modes.cluster import run_cluster
from sim.modes.common import prepare_workload
from sim.modes.load import node_pools, pre_run
from sim.modes.memory import ID_B, PER_ACCESS_B, PY_BLOCK_B, lists_in_flight_b
from sim.modes.runner import _cluster_need, _cluster_setup, requests_in_flight
from trace.source import workload_from_config

SETS = ["model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=4", "cluster.racks=2",
        "cluster.gpus_per_rack=8", "synthetic.requests=200", "synthetic.sessions=20"]


def _cfg():
    return load_config(overrides=SETS)


@pytest.mark.parametrize("timing", [False, True])
def test_python_cache_reads_the_parent_form_with_the_csrs_results(timing):
    cfg = _cfg()
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    assert w.compact
    a = run_cluster(cfg, w, "arc", "prefix_aware", timing=timing)
    assert "block_ids" not in w.__dict__  # never expanded
    b = run_cluster(cfg, w.expanded(), "arc", "prefix_aware", timing=timing)
    for col in ("hit_blocks", "hit_tokens", "worker") + (("ttft_s",) if timing else ()):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col


def test_estimate_counts_per_access_only_where_read_and_the_lists_in_flight():
    cfg = _cfg()
    w, ctx, topo, _node, _rows, _pods = _cluster_setup(cfg, workload_from_config(cfg)[0], ["arc"], ["prefix_aware"],
                                                       None, False)

    def parts(policies, timing):
        return _cluster_need(cfg, w, ctx, topo, policies, ["prefix_aware"], timing).est.parts

    hro, timed = parts(["arc"], False), parts(["arc"], True)
    assert "per-access arrays" not in hro and "block lists in flight" not in hro
    assert "per-access arrays" not in timed
    workers = 2 * 8  # racks x GPUs a rack, TP 1
    from sim.modes.cluster import ClusterSetup

    setup = ClusterSetup.from_config(cfg, w.block_tokens, topo)
    assert setup.layout.n_workers == workers
    offered = pre_run(cfg, w, node_pools(workers, setup.node))
    held = requests_in_flight(cfg, len(w), workers, offered)
    assert held == min(len(w), workers * cfg.compute.max_num_seqs)  # this load is below 1: no backlog
    assert held == len(w)  # 16 workers run every one of the 200 requests at once
    assert timed["block lists in flight"] == lists_in_flight_b(w, held) == w.total_blocks * PY_BLOCK_B
    # Belady (Python, next use per access) and selective_write (depth per access) read per-access arrays
    assert parts(["belady"], False)["per-access arrays"] == w.total_blocks * (PER_ACCESS_B + ID_B)  # expanded
    assert "per-access arrays" not in parts(["lru"], False)  # the compiled cache
