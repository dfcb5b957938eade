"""The memory estimate of a learned run follows its representation: a model file streams its features
(per distinct block plus a priority per access), online mode adds a training window (assumed up front,
re-checked exactly after the first pass); a run that does not fit is refused in one line naming the part."""
from __future__ import annotations

from sim.config import Config
from sim.modes.memory import (
    ID_B,
    LEARNED_BLOCK_B,
    LEARNED_HORIZON_ROWS,
    LEARNED_MODEL_PER_ACCESS_B,
    LEARNED_PER_REQ_B,
    LEARNED_ROW_B,
    GiB,
    run_estimate,
)
from trace.synthetic import generate


def _workload(requests: int = 600, hashed_ids: bool = False):
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"requests": requests, "sessions": requests // 10,
                                                     "kind": "multi_turn"})
    return generate(cfg.synthetic, 0, hashed_ids=hashed_ids)


def test_model_estimate_follows_blocks_and_online_follows_accesses():
    w = _workload()
    base = run_estimate(w, mode="single", timing=False, per_access=False, slots=0)
    model = run_estimate(w, mode="single", timing=False, per_access=False, slots=0, learned="model")
    online = run_estimate(w, mode="single", timing=False, per_access=False, slots=0, learned="online")
    # dense ids: no renumbering
    assert model.parts["learned tracker"] == w.prefix.n_own() * LEARNED_BLOCK_B + len(w) * LEARNED_PER_REQ_B
    assert model.parts["learned priorities"] == w.total_blocks * LEARNED_MODEL_PER_ACCESS_B
    # online: the same tracker and priorities plus the training window, every access at most (600 requests)
    assert online.parts["learned tracker"] == model.parts["learned tracker"]
    assert online.parts["learned priorities"] == model.parts["learned priorities"]
    assert online.parts["learned training window"] == w.total_blocks * LEARNED_ROW_B
    assert base.total < model.total < online.total
    assert "learned tracker" not in base.parts


def test_online_window_follows_the_horizon_not_the_accesses():
    from learned.policy import DEFAULT_RETRAIN_EVERY
    from learned.train import TrainParams
    from sim.modes.memory import LEARNED_MAX_ROWS, LEARNED_RETRAIN_EVERY, WorkloadSize

    assert (LEARNED_MAX_ROWS, LEARNED_RETRAIN_EVERY) == (TrainParams().max_rows, DEFAULT_RETRAIN_EVERY)

    s = WorkloadSize.of(_workload(600))
    per_req = 240  # block accesses a request (the 200k-request multi_turn benchmark's)
    big = WorkloadSize(requests=10**7, nbytes=s.nbytes, accesses=10**7 * per_req, own_blocks=s.own_blocks,
                       compact=s.compact, renumber=False)
    est = run_estimate(big, mode="single", timing=False, per_access=False, slots=0, learned="online")
    rows = LEARNED_HORIZON_ROWS + TrainParams().max_rows + int(2000 * per_req)  # horizon + max_rows + interval
    assert est.parts["learned training window"] == rows * LEARNED_ROW_B < big.accesses * 8


def test_tracker_part_is_what_the_stream_holds_with_dense_and_hashed_ids():
    """The tracker part counts the tracker (LEARNED_BLOCK_B a distinct block), the session indexes and,
    for stored ids, the renumbered copy the stream holds; within 15 % of the stream's actual arrays."""
    from learned.features import FeatureStream

    for hashed in (False, True):
        w = _workload(20_000, hashed)
        est = run_estimate(w, mode="single", timing=False, per_access=False, slots=0, learned="model")
        extra = ID_B if hashed else 0
        assert est.parts["learned tracker"] == (w.prefix.n_own() * (LEARNED_BLOCK_B + extra)
                                                + len(w) * LEARNED_PER_REQ_B)
        fs = FeatureStream(w)
        for _ in fs.chunks():
            pass
        held = fs.tracker.nbytes() + fs.tracker.sess.nbytes
        held += fs.pb.ids_stored().nbytes if hashed else 0  # the renumbered ids (dense ids: none stored)
        assert hashed != (fs.pb.ids_stored() is w.prefix.ids_stored())
        assert 0.85 < held / est.parts["learned tracker"] < 1.15


def test_cli_refuses_online_learned_over_the_limit_and_lets_the_model_run_through(monkeypatch, capsys, tmp_path):
    import sim.cli as cli
    from learned.train import TrainParams, train_offline
    from sim.modes.common import simulated_workload
    from trace.source import workload_from_config

    args = ["run", "--policy", "learned", "--hit-rate-only", "--quiet", "--no-plot",
            "--set", "synthetic.requests=400", "--set", "synthetic.sessions=40", "--set", "synthetic.kind=multi_turn"]
    cfg = Config()
    cfg.synthetic = cfg.synthetic.model_copy(update={"requests": 400, "sessions": 40, "kind": "multi_turn"})
    w = simulated_workload(cfg, workload_from_config(cfg)[0])  # what the run replays
    model = tmp_path / "m.txt"
    train_offline(w, TrainParams())[0].save(model)
    # a limit over the model run with every cache slot filled and under the online run with none
    slots = w.prefix_blocks().own_off[-1]
    over = run_estimate(w, mode="single", timing=False, per_access=False, slots=slots, learned="model").total
    under = run_estimate(w, mode="single", timing=False, per_access=False, slots=0, learned="online").total
    assert over < under
    monkeypatch.setenv("KVSIM_MEMORY_LIMIT_GIB", repr((over + under) / 2 / GiB))
    capsys.readouterr()
    rc = cli.main([*args, "--report-json", str(tmp_path / "online.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "learned training window" in err[0] and "KVSIM_MEMORY_LIMIT_GIB" in err[0]
    assert not (tmp_path / "online.json").exists()
    assert cli.main([*args, "--model", str(model), "--report-json", str(tmp_path / "model.json")]) == 0
    assert (tmp_path / "model.json").exists()


# ---------------------------------------------------------------- the exact window, re-checked

def _cyclic_requests(n_req: int) -> list[list[int]]:
    """Request r: the 40 blocks of set r % 40 (so each is reused exactly 40 requests = 2,000 accesses
    later), then 10 blocks of its own (never reused): 50 accesses a request."""
    return [[(r % 40) * 40 + j for j in range(40)] + [10_000 + 10 * r + j for j in range(10)] for r in range(n_req)]


def cyclic_trace(path, n_req: int) -> None:
    """_cyclic_requests as a Mooncake-style JSONL file of 512-token blocks, a request every 100 ms."""
    import json

    path.write_text("".join(json.dumps({"timestamp": 100 * r, "input_length": 50 * 512, "output_length": 10,
                                        "hash_ids": ids}) + "\n" for r, ids in enumerate(_cyclic_requests(n_req))))


WINDOW_B = 20_000 * 104  # the cyclic 600-request trace's exact window at retrain_every=200: rows x LEARNED_ROW_B


def limit_under_the_exact_window(monkeypatch, run, seen: list, first_passes: list, part: str) -> tuple[float, float]:
    """The re-check tests' setting: `run()` once under a limit nothing fits (the up-front check alone, before
    any first pass), then make the up-front assumption under-count (as for a trace whose horizon exceeds
    LEARNED_HORIZON_ROWS) and set the limit 0.5 MiB under the estimate with the exact window. Returns (the
    estimate without its window `part`, that limit); `seen` is cleared."""
    import sim.modes.memory as memory

    monkeypatch.setenv(memory.ENV, "0.001")
    assert run() == 2
    assert len(seen) == 1 and not first_passes
    rest = seen[0].total - seen[0].parts[part]
    monkeypatch.setattr(memory, "learned_window_rows", lambda s: 0)
    seen.clear()
    lim = rest + WINDOW_B - 2**19
    monkeypatch.setenv(memory.ENV, repr(lim / GiB))
    return rest, lim


def cyclic_learned_run(tmp_path, monkeypatch, mode_args: list[str]) -> tuple[list[str], list, list, float, float]:
    """The single-node and PD re-check tests' setting: `run` with `mode_args` and the online learned policy
    (retraining every 200 requests) on the cyclic 600-request trace, its checks spied, the up-front assumption
    made to under-count and the limit 0.5 MiB under the exact window (limit_under_the_exact_window). Returns
    (the run's arguments, the checks seen, the first passes, the estimate without its window, that limit)."""
    import sim.cli as cli
    import sim.modes.memory as memory

    trace = tmp_path / "cyclic.jsonl"
    cyclic_trace(trace, 600)
    args = ["run", *mode_args, "--policy", "learned", "--quiet", "--no-plot", "--trace", str(trace),
            "--set", "cache.block_tokens=512", "--set", "policies.learned_retrain_every=200"]
    seen, first_passes = spy_checks_and_first_passes(monkeypatch)
    rest, lim = limit_under_the_exact_window(
        monkeypatch, lambda: cli.main([*args, "--report-json", str(tmp_path / "x.json")]), seen, first_passes,
        memory.LEARNED_WINDOW)
    return args, seen, first_passes, rest, lim


def spy_checks_and_first_passes(monkeypatch) -> tuple[list, list]:
    """(every estimate sim.modes.memory.check is given, one entry per online learned first pass): the
    re-check tests count the checks and that the re-check's first pass is the replay's."""
    import sim.modes.memory as memory
    from learned.online import OnlineStream

    seen: list = []
    real_check = memory.check
    monkeypatch.setattr(memory, "check", lambda est, **kw: (seen.append(est), real_check(est, **kw)))
    first_passes: list = []
    real_init = OnlineStream.__init__
    monkeypatch.setattr(OnlineStream, "__init__", lambda self, *a, **k: (first_passes.append(1),
                                                                          real_init(self, *a, **k))[1])
    return seen, first_passes


def test_exact_window_by_hand():
    """1,400 requests (70,000 accesses), retraining every 400 requests with >= 20,000 accesses between:
    points at accesses 20,000, 40,000, 60,000; every reuse distance is 2,000, so every horizon is
    1.5 x 2,000 = 3,000. The windows are [0, 17,000), [0, 37,000) and [7,000, 57,000) (max_rows 50,000):
    before the second point the rows from 0 are still read by it (40,000 held), before the third from
    7,000 (53,000 held). The most held at once: 53,000 = horizon + max_rows."""
    from learned.features import FeatureStream
    from learned.online import OnlineStream
    from sim.policies import make_policy
    from sim.policies.base import AccessContext
    from trace.workload import Workload

    reqs = _cyclic_requests(1400)
    w = Workload.from_requests(reqs, arrival_ms=[100.0 * r for r in range(1400)], name="cyclic")
    st = OnlineStream(lambda: FeatureStream(w), 400, 20_000)
    assert st.points == [(20_000, 400), (40_000, 800), (60_000, 1200)]
    assert st.horizons == [3000, 3000, 3000]
    assert st.keep_from.tolist() == [0, 0, 7000]
    assert st.window_rows() == 53_000
    pol = make_policy("learned", 10, AccessContext.from_workload(w), learned_retrain_every=400)
    assert pol.training_window_rows() == 53_000  # type: ignore[attr-defined]
    assert make_policy("learned", 10, None).training_window_rows() == 0  # type: ignore[attr-defined]


def test_with_exact_window_replaces_the_assumed_part_only():
    from sim.modes.memory import BASE_B, LEARNED_WINDOW, Estimate, with_exact_window

    est = Estimate({"workload": 1000.0, LEARNED_WINDOW: 30_000 * LEARNED_ROW_B, "cache slots": 96.0})
    exact = with_exact_window(est, 53_000)
    assert exact.parts == {"workload": 1000.0, LEARNED_WINDOW: 53_000 * 104, "cache slots": 96.0}
    assert exact.total == BASE_B + 1000 + 5_512_000 + 96
    assert est.parts[LEARNED_WINDOW] == 3_120_000  # the estimate itself is not changed
    import pytest

    with pytest.raises(ValueError, match="no learned training window"):
        with_exact_window(Estimate({"workload": 1.0}), 10)


def test_with_exact_window_of_a_pod_stands_for_each_pod_at_once():
    """A partitioned run counts its largest pod's window once per pod at once (sim.modes.runner
    ._partition_estimate); a pod's exact window of 53,000 rows, 3 pods at once: 3 x 53,000 x 104 bytes."""
    from sim.modes.memory import AT_ONCE, LEARNED_WINDOW, Estimate, with_exact_window

    part = AT_ONCE + LEARNED_WINDOW
    est = Estimate({"workload and its pods": 1000.0, part: 3 * 30_000 * LEARNED_ROW_B, AT_ONCE + "base": 7.0})
    assert with_exact_window(est, 53_000, part=part, copies=3).parts == {
        "workload and its pods": 1000.0, part: 16_536_000, AT_ONCE + "base": 7.0}


def test_cli_rechecks_the_exact_window_before_the_replay(monkeypatch, capsys, tmp_path):
    """600 requests (30,000 accesses), retraining every 200 requests: one retraining point, at access
    20,000 (the one at 10,000 comes before 20,000 accesses have passed), horizon 3,000, window [0, 17,000):
    the replay holds rows 0..20,000, 20,000 rows = 2,080,000 bytes. With the up-front assumption made to
    under-count (as for a trace whose horizon exceeds LEARNED_HORIZON_ROWS), a limit 0.5 MiB under the
    estimate with that window is refused in one line after the first pass, one 0.5 MiB over it runs."""
    import sim.cli as cli
    import sim.modes.memory as memory

    args, seen, first_passes, rest, lim = cyclic_learned_run(tmp_path, monkeypatch, ["--hit-rate-only"])
    window_b = WINDOW_B
    capsys.readouterr()
    assert cli.main([*args, "--report-json", str(tmp_path / "refused.json")]) == 2
    out, err = capsys.readouterr()
    exact = seen[-1]
    assert len(seen) == 2 and exact.parts[memory.LEARNED_WINDOW] == window_b and exact.total == rest + window_b
    assert {k: v for k, v in exact.parts.items() if k != memory.LEARNED_WINDOW} == \
        {k: v for k, v in seen[0].parts.items() if k != memory.LEARNED_WINDOW}
    assert out == "" and err.splitlines() == [
        "error: --policy learned: replaying 600 requests on one node with the online learned policy's training "
        f"window of 20,000 rows (exact after its first pass) needs an estimated {exact.total / GiB:.1f} GiB of "
        f"memory (GiB: {exact.summary()}), over the {lim / GiB:.1f} GiB limit; give the learned policy a model "
        "file (--model FILE, from `python main.py learned train`: no training window), set trace.limit, or raise "
        "KVSIM_MEMORY_LIMIT_GIB"]
    assert not (tmp_path / "refused.json").exists()

    first_passes.clear()
    monkeypatch.setenv(memory.ENV, repr((rest + window_b + 2**19) / GiB))
    assert cli.main([*args, "--report-json", str(tmp_path / "ran.json")]) == 0
    assert (tmp_path / "ran.json").exists()
    assert len(first_passes) == 1  # the re-check's first pass is the replay's (one shared scorer)


def test_a_shared_scorer_lives_no_longer_than_its_context():
    """The shared scorers are keyed by their context and dropped with it: a process that replays many
    workloads (a sweep's worker, the web server) keeps no finished run's tracker, priorities or window."""
    import gc
    import weakref

    import learned.policy as learned_policy
    from sim.policies import make_policy
    from sim.policies.base import AccessContext
    from trace.workload import Workload

    w = Workload.from_requests(_cyclic_requests(500), arrival_ms=[100.0 * r for r in range(500)], name="cyclic")
    ctx = AccessContext.from_workload(w)
    scorer = weakref.ref(make_policy("learned", 10, ctx, learned_retrain_every=200).scorer)  # type: ignore[attr-defined]
    gc.collect()
    assert scorer() is not None and any(s is scorer() for _, s in learned_policy._SCORERS.values())  # shared
    del ctx
    gc.collect()
    assert scorer() is None
