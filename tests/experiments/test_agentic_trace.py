"""experiments.agentic_trace: regular think times, growing contexts, a loadable .npz, same seed same trace."""
import numpy as np

from experiments.agentic_trace import agentic, main
from trace.formats import load_trace


def test_turns_are_regular_and_contexts_grow():
    w = agentic(sessions=5, turns=4, think_s=20.0, sigma=0.1, new_tokens=64, output_tokens=32,
                system_tokens=32, start_spread_s=10.0, seed=1)
    assert len(w) == 20
    for s in range(5):
        idx = np.flatnonzero(w.session_id == s)
        assert w.turn[idx].tolist() == [0, 1, 2, 3]
        gaps = np.diff(w.arrival_ms[idx]) / 1000
        assert np.all((gaps > 12) & (gaps < 32))  # lognormal, mean 20 s, sigma 0.1: within +-5 sigma
        # each prompt is the last one + its output + 64 new tokens; blocks extend the previous turn's
        assert np.diff(w.input_tokens[idx]).tolist() == [96, 96, 96]
        b = [w.block_ids[w.block_offsets[i]:w.block_offsets[i + 1]].tolist() for i in idx]
        assert all(b[k + 1][:len(b[k])] == b[k] for k in range(3))
        assert b[0][:2] == [0, 1]  # the shared system prompt
    a2 = agentic(5, 4, 20.0, 0.1, 64, 32, 32, 10.0, seed=1)
    assert a2.arrival_ms.tolist() == w.arrival_ms.tolist()


def test_cli_writes_a_loadable_npz(tmp_path, capsys):
    out = tmp_path / "a.npz"
    assert main(["--out", str(out), "--sessions", "3", "--turns", "2"]) == 0
    w, _ = load_trace(str(out))
    assert len(w) == 6 and sorted(set(w.session_id.tolist())) == [0, 1, 2]
