"""The memory estimate of a learned run follows its representation: a model file streams its features
(per distinct block plus a priority per access), online mode holds the whole trace's rows; a run that
does not fit is refused up front in one line naming the part."""
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
