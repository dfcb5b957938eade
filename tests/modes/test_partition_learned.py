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
    GiB,
)
from sim.modes.partition import Partition, assign_pods, pod_config
from sim.modes.runner import run_mode
from tests.modes.test_partition import SETS, _cfg, _same
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
    assert [kw["learned"] for kw in seen] == ["model"]  # the run was checked against the pods' learned part
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


def _two_pod_trace(path) -> tuple[int, int]:
    """A trace of two sessions that `--pods 2` (by session) sends one to each pod: pod 1 gets the 600 cyclic
    requests of the single-node re-check test (tests/learned/test_learned_memory.py: window of 20,000
    rows), pod 0 100 requests of other blocks (5,000 accesses: no retraining point, window 0), one after
    every sixth of pod 1's. Returns (pod 1's session, requests of the trace)."""
    from sim.modes.partition import _splitmix64
    from tests.learned.test_learned_memory import _cyclic_requests
    from trace.convert import write_workload
    from trace.workload import Workload

    pod = {s: int(_splitmix64(np.array([s]))[0] % np.uint64(2)) for s in range(16)}
    small, big = (next(s for s in pod if pod[s] == k) for k in (0, 1))
    reqs, sessions = [], []
    for r, ids in enumerate(_cyclic_requests(600)):
        reqs.append(ids)
        sessions.append(big)
        if r % 6 == 5:
            reqs.append([100_000 + 50 * (r // 6) + j for j in range(50)])
            sessions.append(small)
    w = Workload.from_requests(reqs, arrival_ms=100.0 * np.arange(len(reqs)), session_id=np.array(sessions),
                               block_tokens=512, output_tokens=np.full(len(reqs), 10, dtype=np.int64))
    write_workload(w, path)
    return big, len(reqs)


def test_cli_rechecks_each_pods_exact_window_before_it_replays(monkeypatch, capsys, tmp_path):
    """--pods 2, in this process (1 pod at once): pod 1's online learned window is 20,000 rows once its
    first pass has run (2,080,000 bytes), pod 0's none. With the up-front assumption made to under-count,
    the partition estimate with pod 1's exact window in place of the largest pod's assumed one is refused
    0.5 MiB under it, in one line naming pod 1 (pod 0, which fits, ran and is kept in --out), and runs
    0.5 MiB over it; each pod's first pass runs once."""
    import sim.cli as cli
    import sim.modes.memory as memory
    from tests.learned.test_learned_memory import WINDOW_B, limit_under_the_exact_window, spy_checks_and_first_passes

    trace = tmp_path / "two.npz"
    _, n = _two_pod_trace(trace)
    part = memory.AT_ONCE + memory.LEARNED_WINDOW
    sets = [x for s in SETS if not s.startswith(("cluster.racks", "synthetic", "hardware."))
            for x in ("--set", s)]
    args = ["run", "--mode", "cluster", *sets, "--set", "cluster.racks=2", "--pods", "2", "--policy", "learned",
            "--hit-rate-only", "--quiet", "--no-plot", "--trace", str(trace), "--set", "cache.block_tokens=512",
            "--set", "policies.learned_retrain_every=200"]
    seen, first_passes = spy_checks_and_first_passes(monkeypatch)
    rest, lim = limit_under_the_exact_window(monkeypatch, lambda: cli.main([*args, "--out", str(tmp_path / "x")]),
                                             seen, first_passes, part)
    window_b = WINDOW_B
    capsys.readouterr()
    out_dir = tmp_path / "refused"
    assert cli.main([*args, "--out", str(out_dir)]) == 2
    out, err = capsys.readouterr()
    # the driver's check, pod 0's (its window 0: the estimate without one), pod 1's (its exact window)
    assert len(seen) == 3 and [e.parts[part] for e in seen] == [0, 0, window_b]
    assert seen[1].total == rest and seen[2].total == rest + window_b
    assert all({k: v for k, v in e.parts.items() if k != part} == {k: v for k, v in seen[0].parts.items()
                                                                    if k != part} for e in seen)
    exact = seen[2]
    assert out == "" and err.splitlines() == [
        f"error: --pods: pod 1 (prefix_aware/learned/pod1, 600 requests) refused: --policy learned: replaying "
        f"{n} requests on 32 GPUs in 2 pods (1 at once) with pod 1's online learned policy's training window of "
        f"20,000 rows (exact after its first pass) needs an estimated {exact.total / GiB:.1f} GiB of memory "
        f"(GiB: {exact.summary()}), over the {lim / GiB:.1f} GiB limit; give the learned policy a model file "
        "(--model FILE, from `python main.py learned train`: no training window), set trace.limit, use more pods "
        f"or fewer --workers, or raise KVSIM_MEMORY_LIMIT_GIB; the 1 finished pod(s) are kept in {out_dir / 'pods'} "
        "and a rerun with the same --out reuses them"]
    assert not (out_dir / "report.json").exists() and len(list((out_dir / "pods").glob("pod-*.npz"))) == 1

    first_passes.clear()
    monkeypatch.setenv(memory.ENV, repr((rest + window_b + 2**19) / GiB))
    assert cli.main([*args, "--report-json", str(tmp_path / "ok.json")]) == 0
    assert len(first_passes) == 2  # one a pod: the re-check's first pass is the replay's
    import sim.modes.learned_window as learned_window

    monkeypatch.setattr(learned_window, "recheck_learned", lambda *a, **kw: None)
    checks = len(seen)
    assert cli.main([*args, "--report-json", str(tmp_path / "off.json")]) == 0
    assert len(seen) == checks + 1  # the driver's only: no pod re-checked
    ok, off = (json.loads((tmp_path / f).read_text()) for f in ("ok.json", "off.json"))
    assert ok["metrics"]["hit_rate"] > 0 and _same(ok, off) == []  # the re-check changes no result


@pytest.mark.parametrize("policies,model,want", [(["learned", "lru"], False, True), (["learned"], True, False),
                                                 (["lru"], False, False)])
def test_partitioned_check_hands_the_pods_their_window_recheck(policies, model, want, model_file):
    """The driver's check of a partitioned run gives its pods the estimate it checked, the window part
    (the largest pod's, once per pod at once: 3 at once of 2 pods is 2), the bound it read; none without
    an online learned policy. Only the learned policy's pod tasks carry it."""
    from sim.modes.learned_window import WindowCheck
    from sim.modes.memory import AT_ONCE, LEARNED_WINDOW, limit_bytes
    from sim.modes.partition import pod_tasks
    from sim.modes.runner import _check_cluster, _partition_estimate
    from sim.policies.base import AccessContext
    from sim.timing.topology import Topology

    cfg = _cfg(*([f"policies.learned_model={model_file}"] if model else []))
    w, _ = prepare_workload(cfg, workload_from_config(cfg)[0])
    part = Partition(2, "session", at_once=3)
    chk, _ = _check_cluster(cfg, w, AccessContext.from_workload(w), Topology.from_config(cfg), policies,
                            ["prefix_aware"], False, part)
    if not want:
        assert chk is None
        return
    assert isinstance(chk, WindowCheck) and (chk.part, chk.copies, chk.limit) == (AT_ONCE + LEARNED_WINDOW, 2,
                                                                                  limit_bytes())
    # the window part follows the pods' sizes only (not the cache capacity given here)
    assert chk.est.parts[chk.part] == _partition_estimate(w, part, 1, False, False, 2, learned="online").parts[
        chk.part] > 0
    assert chk.what.startswith(f"replaying {len(w):,} requests on ") and "2 pods (3 at once)" in chk.what
    assert [t.window for t in pod_tasks(cfg, w, part, "learned", "prefix_aware", False, window=chk)] == [chk] * 2
    assert [t.window for t in pod_tasks(cfg, w, part, "lru", "prefix_aware", False, window=chk)] == [None] * 2
