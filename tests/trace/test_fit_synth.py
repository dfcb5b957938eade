"""trace fit / trace synth: structure recovered on hand-made traces, determinism, scaling, bad fit files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.cli import main
from trace.fit import fit_workload
from trace.fitmodel import load_fit, save_fit
from trace.formats import load_trace
from trace.synth import synthesize
from trace.workload import Workload

SHARED = Path(__file__).resolve().parents[3] / "shared" / "traces"
B = 4


def _hand_made() -> Workload:
    """Two sessions on a shared root block, one branching, one single-turn session; no session ids.

    s0: [1, 10, 11, p] -> [1, 10, 11, 12, p] -> [1, 10, 11, 12, 13, p]   (extends twice)
    s1: [1, 2, 20, p]  -> [1, 2, 30, p] (branch: keeps 2 of 3 full blocks) -> [1, 2, 20, 21, p]
    s2: [1, 40, p]
    Block 1 is followed by 10, 2 and 40: it is the shared root (depth 1) of all three.
    """
    reqs = [
        [1, 10, 11, 100],           # s0 t0: nothing seen; block 1 branches later -> root depth 1
        [1, 2, 20, 101],            # s1 t0: shares the root only -> new session
        [1, 10, 11, 12, 102],       # s0 t1
        [1, 2, 30, 103],            # s1: shares [1, 2], more than its root -> a branch of s1
        [1, 2, 20, 21, 104],        # s1: extends request 1
        [1, 10, 11, 12, 13, 105],   # s0 t2
        [1, 40, 106],               # s2 t0
    ]
    inp = [len(r) * B - 1 for r in reqs]  # every last block partial
    return Workload.from_requests(reqs, arrival_ms=np.arange(len(reqs)) * 1000.0, input_tokens=inp,
                                  block_tokens=B)


def test_fit_recovers_roots_and_turns() -> None:
    fit = fit_workload(_hand_made())
    ps = fit["prefix_structure"]
    assert ps["observed"] is True
    assert [(r["depth_blocks"], r["parent"], r["sessions"]) for r in ps["roots"]] == [(1, None, 3)]
    assert ps["private_sessions"] == 0
    assert fit["sessions"]["count"] == 3
    assert fit["sessions"]["turns"] == {1: 1, 3: 2}
    cont = fit["sessions"]["continuation"]
    assert cont["turns"] == 4 and cont["extend_share"] == 0.75
    assert cont["branch_keep_share"]["p0"] == pytest.approx(2 / 3, abs=1e-4)
    # think times: 2 s (0->2), 2 s (1->3), 3 s (1->4), 3 s (2->5)
    assert fit["sessions"]["think_time_s"]["p0"] == 2.0 and fit["sessions"]["think_time_s"]["p100"] == 3.0
    # first turns add input - 1 root block: 15 - 4, 15 - 4, 11 - 4 tokens
    assert fit["sessions"]["first_new_tokens"]["p0"] == 7.0 and fit["sessions"]["first_new_tokens"]["p100"] == 11.0


def test_round_trip_structure_and_determinism(tmp_path: Path) -> None:
    save_fit(fit_workload(_hand_made()), tmp_path / "fit.yaml")
    fit = load_fit(tmp_path / "fit.yaml")
    a, b, c = (tmp_path / n for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    synthesize(fit, a, requests=400, seed=3)
    synthesize(fit, b, requests=400, seed=3)
    synthesize(fit, c, requests=400, seed=4)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    w, ls = load_trace(a)
    assert len(w) == 400 and ls.rejected_total == 0
    refit = fit_workload(w.select(np.arange(len(w))))
    # the synthetic trace carries session ids; refitting without them re-infers the same structure
    w.session_id[:] = -1
    inferred = fit_workload(w)
    for f in (refit, inferred):
        top = max(f["prefix_structure"]["roots"], key=lambda r: r["sessions"])
        assert top["depth_blocks"] == 1 and top["sessions"] >= 0.8 * f["sessions"]["count"]
        assert 1.9 < f["sessions"]["turns_mean"] < 2.6  # 7 requests / 3 sessions in the original


def test_rate_scale_multiplies_rate(tmp_path: Path) -> None:
    w = _hand_made()
    save_fit(fit_workload(w), tmp_path / "fit.yaml")
    fit = load_fit(tmp_path / "fit.yaml")
    rates = []
    for k in (1, 10):
        out = tmp_path / f"r{k}.jsonl"
        synthesize(fit, out, requests=20000, seed=1, rate_scale=k)
        ws, _ = load_trace(out)
        rates.append(len(ws) / (np.ptp(ws.arrival_ms) / 1000.0))
        _, counts = np.unique(ws.session_id, return_counts=True)
        assert 1.9 < counts.mean() < 2.6
    assert rates[1] / rates[0] == pytest.approx(10, rel=0.05)


def test_token_count_trace_has_no_prefix_structure(tmp_path: Path) -> None:
    out = tmp_path / "az.yaml"
    assert main(["trace", "fit", "--trace", "tests/data/azure_conv_small.csv", "--out", str(out)]) == 0
    fit = yaml.safe_load(out.read_text())
    assert fit["prefix_structure"]["observed"] is False
    assert fit["prefix_structure"]["roots"] == []
    assert "no prefix structure observed" in fit["prefix_structure"]["message"]
    syn = tmp_path / "az.jsonl"
    assert main(["trace", "synth", "--fit", str(out), "--out", str(syn), "--requests", "300", "--seed", "1"]) == 0
    w, _ = load_trace(syn)
    assert len(w) == 300
    assert len(np.unique(w.block_ids)) == len(w.block_ids)  # no block shared by two requests


def test_missing_key_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    fit = fit_workload(_hand_made())
    del fit["sessions"]["continuation"]["extend_share"]
    bad = tmp_path / "bad.yaml"
    save_fit(fit, bad)
    out = tmp_path / "never.jsonl"
    rc = main(["trace", "synth", "--fit", str(bad), "--out", str(out), "--requests", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "extend_share" in err[0] and "bad.yaml" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".never*"))


def test_synth_output_loads_and_is_bounded(tmp_path: Path) -> None:
    fit_path = tmp_path / "f.yaml"
    save_fit(fit_workload(_hand_made()), fit_path)
    out = tmp_path / "d.jsonl.gz"
    assert main(["trace", "synth", "--fit", str(fit_path), "--out", str(out), "--requests", "100000",
                 "--duration", "30", "--seed", "2"]) == 0
    w, _ = load_trace(out)
    assert 0 < len(w) < 100000 and w.arrival_ms.max() <= 30000


@pytest.mark.skipif(not (SHARED / "mooncake_conversation.jsonl").exists(), reason="../shared/traces absent")
def test_mooncake_fidelity(tmp_path: Path) -> None:
    from trace.fidelity import compare, fidelity_metrics

    w, _ = load_trace(SHARED / "mooncake_conversation.jsonl")
    save_fit(fit_workload(w), tmp_path / "m.yaml")
    synthesize(load_fit(tmp_path / "m.yaml"), tmp_path / "m.jsonl", requests=len(w), seed=0)
    ws, _ = load_trace(tmp_path / "m.jsonl")
    rows = compare(fidelity_metrics(w), fidelity_metrics(ws))
    assert len(rows) == 7
    assert [r[0] for r in rows if not r[4]] == []
