"""The learned policy in pods (--pods K --policy learned): a pod is a cluster of its own, so its learned
policy reads the features of the pod's own requests (what that pod's caches see; the model file is
shared); the memory estimate counts the learned part of each pod's share; the CLI runs it."""
import json

import numpy as np
import pytest

from sim.modes.cluster import run_cluster
from sim.modes.common import prepare_workload
from sim.modes.memory import (
    ID_B,
    LEARNED_BLOCK_B,
    LEARNED_MODEL_PER_ACCESS_B,
    LEARNED_PER_REQ_B,
    LEARNED_ROW_B,
)
from sim.modes.partition import Partition, assign_pods, pod_config
from sim.modes.runner import run_mode
from tests.modes.test_partition import SETS, _cfg
from trace.source import workload_from_config


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from learned.train import TrainParams, train_offline

    cfg = _cfg("synthetic.requests=400", "synthetic.sessions=40", "seed=5")
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    path = tmp_path_factory.mktemp("model") / "m.txt"
    train_offline(w, TrainParams())[0].save(path)
    return path


def test_learned_pods_are_learned_clusters_of_their_own(model_file, monkeypatch):
    cfg = _cfg(f"policies.learned_model={model_file}")
    part = Partition(2, "session")
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    pods = assign_pods(w, part)
    hits = {p: np.zeros((len(w), 6), dtype=np.int64) for p in ("learned", "lru")}
    evictions = 0
    for k in range(2):  # each pod by hand: a 2-rack cluster of its own, its own requests only
        idx = np.flatnonzero(pods == k)
        for p in hits:
            r = run_cluster(pod_config(cfg, part, k), w.select(idx), p, "prefix_aware", timing=False)
            hits[p][idx] = r.hit_tokens
            if p == "learned":
                evictions += sum(t["evictions"] for t in r.cache_summary()["tiers"].values())
    assert evictions > 0 and (hits["learned"] != hits["lru"]).any()  # the policy decides something here
    import sim.modes.runner as runner

    seen = []
    estimate = runner._partition_estimate
    monkeypatch.setattr(runner, "_partition_estimate", lambda *a, **kw: seen.append(kw) or estimate(*a, **kw))
    rep = run_mode(cfg, "cluster", timing=False, partition=part, policies=["learned"])
    assert seen == [{"learned": "model"}]  # the run was checked against the pods' learned part
    assert rep["partition"]["pods"] == 2 and rep["policies"][0]["name"] == "learned"
    m = rep["metrics"]
    assert m["hit_rate"] == pytest.approx(hits["learned"].sum() / w.input_tokens.sum(), abs=0)
    assert m["evictions"] == evictions


def _pod_counts(w, part):
    """Per pod, by hand: requests, block accesses and own blocks of the parent form."""
    pods = assign_pods(w, part)
    pb = w.prefix_blocks()
    out = []
    for k in range(part.pods):
        reqs = [i for i in range(len(w)) if pods[i] == k]
        out.append((len(reqs), sum(int(w.n_blocks()[i]) for i in reqs),
                    sum(int(pb.own_off[i + 1] - pb.own_off[i]) for i in reqs)))
    return out


@pytest.mark.parametrize("form", ["dense", "hashed", "hashed_csr"])
def test_partitioned_learned_estimate_counts_each_pods_share(form):
    from sim.modes.runner import _partition_estimate
    from trace.synthetic import generate

    cfg = _cfg()
    w, _ = prepare_workload(cfg, generate(cfg.synthetic, cfg.seed, hashed_ids=form != "dense"))
    if form == "hashed_csr":
        w = w.expanded()  # stored ids in CSR rows: a pod keeps them, so its stream renumbers them
    part = Partition(2, "session", at_once=2)
    pods = assign_pods(w, part)
    renumbered = [not w.select(np.flatnonzero(pods == k)).prefix_blocks().dense for k in range(2)]
    assert renumbered == [form == "hashed_csr"] * 2  # a distinct workload's pods are dense (trace.reparent)
    cap = 10**6
    plain = _partition_estimate(w, part, cap, False, False, 1)
    est = _partition_estimate(w, part, cap, False, False, 1, learned="model")
    tracker, prio = est.parts["pods at once: learned tracker"], est.parts["pods at once: learned priorities"]
    # the largest pod's learned part, once per pod at once (2): its blocks (plus the renumbered copy of
    # stored ids its stream holds), its requests' session indexes, its priorities
    per_id = LEARNED_BLOCK_B + (ID_B if form == "hashed_csr" else 0)
    want = [(2 * (own * per_id + n * LEARNED_PER_REQ_B), 2 * acc * LEARNED_MODEL_PER_ACCESS_B)
            for n, acc, own in _pod_counts(w, part)]
    assert (tracker, prio) in want
    assert not any(k.startswith("pods at once: learned") for k in plain.parts)
    assert est.total > plain.total
    online = _partition_estimate(w, part, cap, False, False, 1, learned="online")
    # online: the same tracker and priorities plus the pod's training window (every access of a small pod)
    assert online.parts["pods at once: learned tracker"] == tracker
    assert online.parts["pods at once: learned training window"] in [2 * acc * LEARNED_ROW_B
                                                                       for _, acc, _ in _pod_counts(w, part)]


def test_cli_runs_a_partitioned_learned_cluster(model_file, tmp_path, capsys):
    import sim.cli as cli

    out = tmp_path / "r.json"
    sets = [x for s in SETS if not s.startswith("cluster.racks") for x in ("--set", s)]
    rc = cli.main(["run", "--mode", "cluster", *sets, "--set", "cluster.racks=8", "--pods", "2",
                   "--policy", "learned", "--model", str(model_file), "--hit-rate-only", "--quiet", "--no-plot",
                   "--report-json", str(out)])
    assert rc == 0, capsys.readouterr().err
    rep = json.loads(out.read_text())
    assert rep["partition"] == {"pods": 2, "by": "session", "racks_per_pod": 4}
    assert rep["config"]["policies"]["learned_model"] == str(model_file)
    assert 0 < rep["metrics"]["hit_rate"] < 1
