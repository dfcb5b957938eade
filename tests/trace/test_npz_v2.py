"""npz version 2 (parent form, memory-mapped): trace synth writes exactly the JSONL's block lists, convert
picks the version, version 1 still loads, hostile files are one-line errors, runs give identical reports."""
from __future__ import annotations

import json
import mmap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.errors import InputError
from trace.convert import write_workload
from trace.fit import fit_workload
from trace.fitmodel import load_fit, save_fit
from trace.formats import load_trace
from trace.formats.npz import v2_members
from trace.npzio import Spill, map_members, write_members
from trace.prefix import PrefixBlocks
from trace.synth import synthesize
from trace.workload import Workload

from .test_fit_synth import _hand_made


@pytest.fixture(scope="module")
def fit(tmp_path_factory) -> dict:
    """The hand-made fit with nested roots (0 <- 1, 0 <- 2), private sessions, and 2 tenant copies:
    every way a request can get its parent (session, root, parent root, none) occurs."""
    f = fit_workload(_hand_made())
    f["prefix_structure"]["roots"] = [
        {"id": 0, "depth_blocks": 2, "parent": None, "sessions": 3},
        {"id": 1, "depth_blocks": 5, "parent": 0, "sessions": 2},
        {"id": 2, "depth_blocks": 3, "parent": 0, "sessions": 1},
    ]
    f["prefix_structure"]["private_sessions"] = 1
    p = tmp_path_factory.mktemp("fit") / "fit.yaml"
    save_fit(f, p)
    return load_fit(p)


def _synth(fit: dict, out: Path, **kw) -> Workload:
    synthesize(fit, out, requests=3000, seed=5, session_scale=2, **kw)
    return load_trace(out)[0]


def test_synth_npz_expands_to_the_jsonl_block_lists(fit, tmp_path: Path) -> None:
    wj = _synth(fit, tmp_path / "s.jsonl")
    ws = _synth(fit, tmp_path / "s.npz", store_ids=True)
    wd = _synth(fit, tmp_path / "d.npz")
    assert ws.compact and wd.compact and wd.prefix.dense and not ws.prefix.dense
    for k in ("arrival_ms", "input_tokens", "output_tokens", "session_id", "turn", "block_offsets"):
        assert np.array_equal(getattr(wj, k), getattr(ws, k)) and np.array_equal(getattr(wj, k), getattr(wd, k)), k
    assert ws.block_tokens == wj.block_tokens == wd.block_tokens and ws.name == "s"
    assert np.array_equal(ws.prefix.to_csr()[1], wj.block_ids)  # exactly the same lists
    pb = ws.prefix
    assert (pb.parent >= 0).sum() > len(pb) // 2  # most requests extend an earlier one
    # every id is stored once: the own ids are the trace's distinct ids
    assert pb.n_own() == len(np.unique(pb.ids_stored())) == len(np.unique(wj.block_ids))
    # dense ids: the same lists up to a one-to-one renaming (own block k is called k)
    dense = wd.prefix.to_csr()[1]
    assert np.array_equal(pb.ids_stored()[dense], wj.block_ids)


def test_trace_stats_of_the_npz_equal_the_jsonl_without_expanding(fit, tmp_path: Path) -> None:
    from trace.stats import workload_stats

    wj = _synth(fit, tmp_path / "s.jsonl")
    wd = _synth(fit, tmp_path / "s.npz")
    assert workload_stats(wd) == workload_stats(wj)
    assert wd.compact  # block_ids never expanded


def test_npz_converted_back_to_jsonl_is_the_synth_jsonl_byte_for_byte(fit, tmp_path: Path, monkeypatch) -> None:
    import trace.convert

    monkeypatch.setattr(trace.convert, "_ROWS", 256)  # several chunks
    _synth(fit, tmp_path / "s.jsonl")
    _synth(fit, tmp_path / "s.npz", store_ids=True)
    assert main(["trace", "convert", "--trace", str(tmp_path / "s.npz"), "--out", str(tmp_path / "back.jsonl")]) == 0
    assert (tmp_path / "back.jsonl").read_bytes() == (tmp_path / "s.jsonl").read_bytes()


def test_v2_is_stored_and_memory_mapped(fit, tmp_path: Path) -> None:
    out = tmp_path / "d.npz"
    w = _synth(fit, out)
    with zipfile.ZipFile(out) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    for a in (w.arrival_ms, w.prefix.parent, w.prefix.own_off):
        base = a
        while getattr(base, "base", None) is not None:
            base = base.base
        base = base.obj if isinstance(base, memoryview) else base
        assert isinstance(base, mmap.mmap) and a.flags.writeable and a.ctypes.data % 64 == 0
    # np.load reads the same file (plain .npy members)
    with np.load(out) as z:
        assert int(z["kvsim_npz_version"]) == 2 and np.array_equal(z["parent"], w.prefix.parent)


def test_limit_takes_the_head(fit, tmp_path: Path) -> None:
    full = _synth(fit, tmp_path / "s.npz", store_ids=True)
    w, st = load_trace(tmp_path / "s.npz", limit=700)
    assert len(w) == 700 and st.loaded == 700 and "kept the first 700" in st.notes[0]
    assert np.array_equal(w.prefix.to_csr()[1], full.prefix.to_csr(0, 700)[1])
    assert np.array_equal(w.block_offsets, full.block_offsets[:701])


def test_convert_writes_v2_when_compact_else_v1(tmp_path: Path) -> None:
    # 7 own ids + 2 words for each of 4 requests < 16 ids: compacted (trace.prefix.worth_compacting)
    sess = Workload.from_requests([[1, 2, 3, 4], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], [9]], session_id=[0, 0, 0, 1])
    flat = Workload.from_requests([[1, 2], [3], [1, 2, 5]])
    for w, version in ((sess, 2), (flat, 1)):
        p = write_workload(w, tmp_path / f"v{version}.npz")
        with zipfile.ZipFile(p) as zf, zf.open("kvsim_npz_version.npy") as fh:
            assert int(np.lib.format.read_array(fh)) == version
        back, _ = load_trace(p)
        assert back.compact == (version == 2)
        assert np.array_equal(back.block_ids, w.block_ids) and np.array_equal(back.session_id, w.session_id)
    back, _ = load_trace(tmp_path / "v2.npz")
    assert back.prefix.parent.tolist() == [-1, 0, 1, -1] and back.prefix.shared.tolist() == [0, 4, 5, 0]
    assert back.prefix.ids_stored().tolist() == [1, 2, 3, 4, 5, 6, 9]


def test_cli_convert_defaults_to_npz_for_npz_names(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    write_workload(Workload.from_requests([[1, 2], [1, 2, 3]], session_id=[0, 0]), src)
    assert main(["trace", "convert", "--trace", str(src), "--out", str(tmp_path / "b.npz")]) == 0
    assert zipfile.is_zipfile(tmp_path / "b.npz")


def _v2(tmp_path: Path, **change) -> Path:
    """A valid version-2 file of 4 requests with some members replaced."""
    w = Workload.from_requests([[1, 2], [1, 2, 3], [1, 2, 3, 4], [9]], session_id=[0, 0, 0, 1])
    pb = PrefixBlocks.compress(w.block_offsets, w.block_ids, w.session_id)
    members = v2_members(w, pb)
    members.update(change)
    p = tmp_path / "bad.npz"
    write_members(p, members)
    return p


@pytest.mark.parametrize(("change", "message"), [
    ({"parent": np.array([-1, 1, 1, -1])}, "parent: not an earlier request"),
    ({"shared": np.array([0, 3, 3, 0])}, "shared: larger than the parent's block count"),
    ({"shared": np.array([1, 2, 3, 0])}, "shared: negative, or non-zero without a parent"),
    ({"own_off": np.array([0, 2, 1, 4, 5])}, "own_off: decreases"),
    ({"own_off": np.array([0, 2, 3, 4, 6])}, "own_off: ends at 6, not at len(own_ids) = 5"),
    ({"own_off": np.array([1, 2, 3, 4, 5])}, "own_off: does not start at 0"),
    ({"arrival_ms": np.array([0.0, np.nan, 2.0, 3.0])}, "arrival_ms: NaN"),
    ({"arrival_ms": np.array([0.0, 5.0, 2.0, 3.0])}, "arrival_ms is not sorted"),
    ({"input_tokens": np.array([1, -1, 1, 1])}, "negative token counts"),
    ({"turn": np.array([0, 1])}, "turn: 2 rows, expected 4"),
    ({"own_ids": np.zeros(0, dtype=np.int64), "dense_ids": np.bool_(True),
      "own_off": np.array([0, 2, 1 << 25, 1 << 26, 1 << 27])}, "a request of more than"),
    ({"parent": np.array([-1.0, 0, 1, -1])}, "parent: expected a 1-d int64 array"),
    ({"kvsim_npz_version": np.int64(7)}, "unknown kvsim npz version 7"),
    ({"block_tokens": np.int64(0)}, "block_tokens must be positive"),
    ({"dense_ids": np.array([True, False])}, "dense_ids: not a flag"),
])
def test_hostile_v2_is_one_line_naming_file_and_key(tmp_path: Path, change, message) -> None:
    p = _v2(tmp_path, **change)
    with pytest.raises(InputError) as e:
        load_trace(p)
    assert str(p) in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_hostile_files_at_the_cli(tmp_path: Path, capsys) -> None:
    p = tmp_path / "c.npz"  # version 2 but compressed: cannot be mapped
    members = {k: v for k, v in v2_members(Workload.from_requests([[1]]),
                                            PrefixBlocks.from_csr(np.array([0, 1]), np.array([1]))).items()}
    np.savez_compressed(open(p, "wb"), **members)  # noqa: SIM115
    assert main(["trace", "stats", "--trace", str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "c.npz" in err[0] and "compressed" in err[0]
    trunc = tmp_path / "t.npz"
    good = _v2(tmp_path)
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert main(["trace", "stats", "--trace", str(trunc)]) == 2
    assert "t.npz" in capsys.readouterr().err


def test_npz_member_shape_larger_than_data(tmp_path: Path) -> None:
    sp = Spill(tmp_path / "a.bin", np.int64)
    sp.append([1, 2, 3])
    sp.count = 1000  # header claims more values than stored
    write_members(tmp_path / "x.npz", {"a": sp})
    with pytest.raises(InputError, match="member 'a': shape"):
        map_members(tmp_path / "x.npz")


def test_synth_npz_failure_leaves_nothing(fit, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never.npz"
    rc = main(["trace", "synth", "--fit", str(tmp_path / "missing.yaml"), "--out", str(out), "--requests", "10"])
    assert rc == 2
    with pytest.raises(InputError, match="no request fell inside the window"):
        synthesize(fit, out, requests=10, seed=1, duration_s=1e-9)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary, no spill folder
    rc = main(["trace", "synth", "--fit", "x.yaml", "--out", str(tmp_path / "a.jsonl"), "--requests", "10",
               "--store-ids"])
    assert rc == 2 and "--store-ids" in capsys.readouterr().err


def test_run_on_npz_equals_run_on_jsonl(fit, tmp_path: Path) -> None:
    _synth(fit, tmp_path / "s.jsonl")
    _synth(fit, tmp_path / "s.npz")
    reports = []
    for name in ("s.jsonl", "s.npz"):
        out = tmp_path / f"out-{name}"
        assert main(["run", "--mode", "single", "--policy", "lru", "--hit-rate-only", "--trace",
                     str(tmp_path / name), "--out", str(out), "--no-plot"]) == 0
        reports.append(json.loads((out / "report.json").read_text()))
    for r in reports:
        for m in (r["metrics"], *(p["metrics"] for p in r["policies"])):
            m.pop("sim_speed_req_s")
    a, b = ({k: r[k] for k in ("policies", "metrics", "workload")} for r in reports)
    assert a == b and a["policies"][0]["metrics"]["hit_rate"] > 0.3
