"""Trace loaders: every format on a small fixture (with bad rows), sniffing,
gzip, strict mode, limits, synthetic block ids, conversion round trips, and
the real Mooncake trace when ../shared is present."""
from __future__ import annotations

import gzip
import shutil
import time

import numpy as np
import pytest

from sim.errors import InputError
from tests.conftest import DATA, MOONCAKE
from trace.blockids import ensure_prefix_ids, synthetic_block_ids
from trace.convert import write_workload
from trace.formats import choices, load_trace, names, sniff_format
from trace.rowio import REASONS
from trace.workload import Workload

SHARED_TRACES = MOONCAKE.parent
REAL_MOONCAKE = SHARED_TRACES / "mooncake_conversation.jsonl"

FIXTURES = {
    "mooncake": DATA / "mooncake_small.jsonl",
    "azure": DATA / "azure_conv_small.csv",
    "burstgpt": DATA / "burstgpt_small.csv",
    "splitwise": DATA / "splitwise_small.csv",
    "bailian": DATA / "bailian_small.jsonl",
}

ARRAYS = ("arrival_ms", "input_tokens", "output_tokens", "session_id", "turn", "block_offsets", "block_ids")


def same_workload(a: Workload, b: Workload) -> None:
    for k in ARRAYS:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert a.block_tokens == b.block_tokens
    assert a.synthetic_blocks == b.synthetic_blocks


def assert_prefix_identifying(w: Workload) -> None:
    """Same id => same parent id (hence the same whole prefix)."""
    parent_of: dict[int, int | None] = {}
    for i in range(len(w)):
        prev = None
        for b in w.blocks(i).tolist():
            assert parent_of.setdefault(b, prev) == prev, f"block {b} follows two prefixes"
            prev = b


# ----------------------------------------------------------------- per format


def test_mooncake_fixture():
    w, st = load_trace(FIXTURES["mooncake"], "mooncake")
    assert len(w) == 55 and st.loaded == 55 and st.rows_read == 61
    assert st.rejected == {
        "malformed_row": 1, "missing_field": 1, "negative_length": 1,
        "hash_ids_count_mismatch": 1, "timestamp_out_of_order": 1, "bad_value": 1,
    }
    assert [ln for ln, _ in st.examples] == [51, 52, 53, 54, 55, 56]
    assert w.block_tokens == 512 and not w.synthetic_blocks
    assert (w.session_id == -1).all() and (w.turn == -1).all()
    assert w.input_tokens[0] == 6758 and w.output_tokens[0] == 500
    np.testing.assert_array_equal(w.blocks(0), np.arange(14))
    np.testing.assert_array_equal(w.n_blocks(), -(-w.input_tokens // 512))
    assert (np.diff(w.arrival_ms) >= 0).all()
    assert w.arrival_ms[-1] == 15000.0
    assert_prefix_identifying(w)


def test_azure_fixture():
    w, st = load_trace(FIXTURES["azure"], "azure")
    assert len(w) == 6 and st.rows_read == 12
    assert st.rejected == {
        "negative_length": 1, "bad_value": 2, "malformed_row": 1,
        "timestamp_out_of_order": 1, "missing_field": 1,
    }
    # 7-digit fractions, relative to the first row, across midnight.
    assert w.arrival_ms[0] == 0.0
    assert w.arrival_ms[1] == pytest.approx(4314.579, abs=1e-6)
    assert w.arrival_ms[4] == pytest.approx((5 * 3600 + 44 * 60 + 13.3194099) * 1000, abs=1e-3)
    assert w.arrival_ms[5] == pytest.approx((5 * 3600 + 44 * 60 + 13.8194100) * 1000, abs=1e-3)
    assert list(w.input_tokens) == [374, 396, 879, 1500, 32, 64]
    assert w.synthetic_blocks and w.block_tokens == 16
    assert any("synthetic" in n for n in st.notes)
    # No sessions: every block is unique.
    assert len(np.unique(w.block_ids)) == len(w.block_ids)
    np.testing.assert_array_equal(w.n_blocks(), -(-w.input_tokens // 16))


def test_burstgpt_fixture_sessions_share_prefixes():
    w, st = load_trace(FIXTURES["burstgpt"], "burstgpt")
    assert st.rejected == {
        "failed_request": 1, "negative_length": 1, "timestamp_out_of_order": 1,
        "bad_value": 1, "malformed_row": 1,
    }
    assert len(w) == 6
    assert list(w.session_id) == [0, 1, 0, -1, 0, 1]
    assert list(w.turn) == [0, 0, 1, -1, 2, 1]
    assert list(w.arrival_ms) == [5000.0, 118000.0, 134000.0, 140000.0, 150000.0, 180000.0]
    assert w.synthetic_blocks and w.block_tokens == 16
    s1 = [w.blocks(i) for i in (0, 2, 4)]  # inputs 472, 1360, 2100
    # Full blocks shared up to the shorter prompt; the partial last block is not.
    np.testing.assert_array_equal(s1[1][:29], s1[0][:29])
    assert s1[0][29] not in set(s1[1].tolist())
    np.testing.assert_array_equal(s1[2][:85], s1[1][:85])
    # Nothing shared across sessions or with the session-less request.
    other = set(w.blocks(1).tolist()) | set(w.blocks(3).tolist()) | set(w.blocks(5).tolist())
    assert not other & set(np.concatenate(s1).tolist())
    assert not set(w.blocks(3).tolist()) & (set(w.blocks(1).tolist()) | set(w.blocks(5).tolist()))
    assert_prefix_identifying(w)


def test_burstgpt_without_session_column_has_no_sharing(tmp_path):
    p = tmp_path / "BurstGPT_1.csv"
    p.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "0,ChatGPT,472,18,490,Conversation log\n"
        "1,ChatGPT,472,18,490,Conversation log\n"
        "2,GPT-4,1000,0,1000,API log\n"
        "3,GPT-4,33,5,38,API log\n"
    )
    assert sniff_format(p) == "burstgpt"
    w, st = load_trace(p)
    assert len(w) == 3 and st.rejected == {"failed_request": 1}
    assert (w.session_id == -1).all()
    assert len(np.unique(w.block_ids)) == len(w.block_ids) == 30 + 30 + 3


def test_splitwise_fixture():
    w, st = load_trace(FIXTURES["splitwise"], "splitwise")
    assert st.rejected == {"negative_length": 1, "malformed_row": 1, "timestamp_out_of_order": 1, "bad_value": 1}
    assert list(w.arrival_ms) == [0.0, 350.0, 1250.0, 2000.0]
    assert list(w.input_tokens) == [1020, 2048, 333, 0]
    assert list(w.n_blocks()) == [64, 128, 21, 0]
    assert len(np.unique(w.block_ids)) == len(w.block_ids)
    assert w.synthetic_blocks


def test_bailian_fixture_sessions_and_turns():
    w, st = load_trace(FIXTURES["bailian"], "bailian")
    assert st.rejected == {
        "malformed_row": 1, "hash_ids_count_mismatch": 1, "missing_field": 1, "timestamp_out_of_order": 1,
    }
    assert len(w) == 7 and w.block_tokens == 16 and not w.synthetic_blocks
    # chat ids 1, 2, 3(->1), 4(->3->1), 5(->99 unseen), 9(->5->99), 10(->2)
    assert list(w.session_id) == [1, 2, 1, 1, 99, 99, 2]
    assert list(w.turn) == [0, 0, 1, 2, 1, 2, 1]  # the file's turns are 1-based
    # The row spelled timestamp_ms / prompt_length / completion_length.
    assert w.arrival_ms[5] == 4000.0 and w.input_tokens[5] == 50 and w.output_tokens[5] == 7
    assert list(w.arrival_ms[:3]) == [0.0, 500.0, 1250.0]
    assert any("1" in n and "0-based" in n for n in st.notes)
    np.testing.assert_array_equal(w.blocks(3), [1, 2, 10, 11, 20, 21, 22])
    assert_prefix_identifying(w)


def test_bailian_turn_from_chain_depth_without_turn_field(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_text(
        '{"chat_id": 1, "parent_chat_id": -1, "timestamp": 0, "input_length": 16, "output_length": 1'
        ', "hash_ids": [1]}\n'
        '{"chat_id": 2, "parent_chat_id": 1, "timestamp": 1, "input_length": 32, "output_length": 1'
        ', "hash_ids": [1, 2]}\n'
        '{"chat_id": 3, "parent_chat_id": 7, "timestamp": 2, "input_length": 16, "output_length": 1'
        ', "hash_ids": [3]}\n'
        '{"chat_id": 4, "parent_chat_id": 3, "timestamp": 3, "input_length": 16, "output_length": 1'
        ', "hash_ids": [4]}\n'
    )
    w, _ = load_trace(p)
    assert list(w.session_id) == [1, 1, 7, 7]
    assert list(w.turn) == [0, 1, -1, -1]  # depth unknown below an unseen parent


def test_per_block_hashes_are_rekeyed_by_prefix(tmp_path):
    # Content-only hashes: id 5 follows 1 in one request and 2 in another.
    p = tmp_path / "b.jsonl"
    p.write_text(
        '{"chat_id": 1, "parent_chat_id": -1, "timestamp": 0, "input_length": 32, "output_length": 1'
        ', "hash_ids": [1, 5]}\n'
        '{"chat_id": 2, "parent_chat_id": -1, "timestamp": 1, "input_length": 32, "output_length": 1'
        ', "hash_ids": [2, 5]}\n'
        '{"chat_id": 3, "parent_chat_id": -1, "timestamp": 2, "input_length": 48, "output_length": 1'
        ', "hash_ids": [1, 5, 6]}\n'
    )
    w, st = load_trace(p)
    assert any("prefix-identifying" in n for n in st.notes)
    assert_prefix_identifying(w)
    assert w.blocks(0)[1] != w.blocks(1)[1]
    np.testing.assert_array_equal(w.blocks(2)[:2], w.blocks(0))


# ------------------------------------------------------------ sniffing, gzip


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_auto_sniffing(fmt):
    assert sniff_format(FIXTURES[fmt]) == fmt
    w_auto, _ = load_trace(FIXTURES[fmt])
    w_fmt, _ = load_trace(FIXTURES[fmt], fmt)
    same_workload(w_auto, w_fmt)


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_gzip_input(fmt, tmp_path):
    src = FIXTURES[fmt]
    plain, st_plain = load_trace(src, fmt)
    gz = tmp_path / (src.name + ".gz")
    with open(src, "rb") as fi, gzip.open(gz, "wb") as fo:
        shutil.copyfileobj(fi, fo)
    bare = tmp_path / "no_suffix"  # gzip found by magic bytes, not the name
    shutil.copy(gz, bare)
    for p in (gz, bare):
        assert sniff_format(p) == fmt
        w, st = load_trace(p)
        same_workload(plain, w)
        assert st.rejected == st_plain.rejected
    assert load_trace(gz)[0].name == plain.name


def test_truncated_gzip_is_input_error(tmp_path):
    src = FIXTURES["mooncake"]
    gz = tmp_path / "m.jsonl.gz"
    gz.write_bytes(gzip.compress(src.read_bytes())[:-200])
    with pytest.raises(InputError, match="m.jsonl.gz"):
        load_trace(gz, "mooncake")


def test_formats_registry():
    assert set(names()) == {"mooncake", "azure", "burstgpt", "splitwise", "anolis", "bailian", "npz"}
    assert choices()[0] == "auto"
    assert "failed_request" in REASONS and "timestamp_out_of_order" in REASONS


# ------------------------------------------------------------ strict, errors


@pytest.mark.parametrize(
    "fmt,line,reason",
    [
        ("mooncake", 51, "malformed_row"),
        ("azure", 5, "negative_length"),
        ("burstgpt", 3, "failed_request"),
        ("splitwise", 4, "negative_length"),
        ("bailian", 4, "malformed_row"),
    ],
)
def test_strict_names_file_and_line(fmt, line, reason):
    with pytest.raises(InputError) as ei:
        load_trace(FIXTURES[fmt], strict=True)
    msg = str(ei.value)
    assert FIXTURES[fmt].name in msg and f"line {line}:" in msg and reason in msg
    assert ei.value.where == str(FIXTURES[fmt])


def test_strict_passes_clean_file(tmp_path):
    p = tmp_path / "clean.jsonl"
    p.write_text("".join(FIXTURES["mooncake"].read_text().splitlines(True)[:50]))
    w, st = load_trace(p, strict=True)
    assert len(w) == 50 and st.rejected_total == 0


def test_input_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(InputError, match="nope.jsonl.*not found"):
        load_trace(missing)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.jsonl.*empty"):
        load_trace(empty)
    with pytest.raises(InputError, match="empty.jsonl.*empty"):
        load_trace(empty, "mooncake")
    header_only = tmp_path / "h.csv"
    header_only.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    with pytest.raises(InputError, match="h.csv.*no data rows"):
        load_trace(header_only)
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="other.csv.*cannot detect"):
        load_trace(other)
    with pytest.raises(InputError, match="other.csv.*lacks the column"):
        load_trace(other, "splitwise")
    with pytest.raises(InputError, match="unknown trace format 'parquet'"):
        load_trace(FIXTURES["mooncake"], "parquet")
    with pytest.raises(InputError, match="directory"):
        load_trace(tmp_path)
    # Wrong explicit format: every row rejected -> one clear error, not an empty workload.
    with pytest.raises(InputError, match="no valid requests.*malformed_row"):
        load_trace(FIXTURES["azure"], "mooncake")
    with pytest.raises(InputError, match="limit"):
        load_trace(FIXTURES["mooncake"], limit=0)


def test_unknown_json_schema(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"foo": 1}\n')
    with pytest.raises(InputError, match="x.jsonl.*unrecognized JSON"):
        sniff_format(p)


def test_limit_stops_early():
    w, st = load_trace(FIXTURES["mooncake"], limit=10)
    assert len(w) == 10 and st.rows_read == 10 and st.loaded == 10
    w, st = load_trace(FIXTURES["mooncake"], limit=52)  # reads past the 6 bad rows
    assert len(w) == 52 and st.rows_read == 58 and st.rejected_total == 6
    full, _ = load_trace(FIXTURES["mooncake"])
    same_workload(full.head(52), w)


# ------------------------------------------------------------ block id helpers


def test_synthetic_block_ids_sessions_and_uniqueness():
    inp = np.array([40, 48, 100, 40, 0, 16, 33])
    sess = np.array([7, 7, 7, -1, 7, 3, 3])
    offsets, ids = synthetic_block_ids(inp, sess, 16)
    w = Workload("t", np.arange(7.0), inp, np.ones(7), sess, offsets, ids, 16)
    np.testing.assert_array_equal(w.n_blocks(), [3, 3, 7, 3, 0, 1, 3])
    b = [w.blocks(i).tolist() for i in range(7)]
    assert b[1][:2] == b[0][:2] and b[0][2] != b[1][2]  # 40 = 2 full + partial
    assert b[2][:3] == b[1][:3]  # 48 = 3 full blocks
    assert not set(b[3]) & set(sum(b[:3], []))  # no session: unique
    assert b[6][0] == b[5][0] and not set(b[5]) & set(sum(b[:4], []))  # other session
    assert_prefix_identifying(w)
    again = synthetic_block_ids(inp, sess, 16)
    np.testing.assert_array_equal(again[1], ids)  # deterministic
    # Distinct (session, index) pairs and fresh blocks never collide.
    keyed = {(int(s), k) for i, s in enumerate(sess) if s >= 0 for k in range(int(inp[i]) // 16)}
    fresh = int(len(ids)) - sum(int(inp[i]) // 16 for i in range(7) if sess[i] >= 0)
    assert len(np.unique(ids)) == len(keyed) + fresh


def test_ensure_prefix_ids_keeps_good_ids():
    offsets = np.array([0, 3, 5])
    ids = np.array([0, 1, 2, 0, 3])
    out, bad = ensure_prefix_ids(offsets, ids)
    assert bad == 0 and out is ids
    out, bad = ensure_prefix_ids(np.array([0, 2, 4]), np.array([0, 1, 2, 1]))
    assert bad == 1 and out[1] != out[3]


# ------------------------------------------------------------ conversion


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
@pytest.mark.parametrize("out", ["mooncake", "npz"])
def test_convert_round_trip(fmt, out, tmp_path):
    w, _ = load_trace(FIXTURES[fmt], fmt)
    suffix = ".npz" if out == "npz" else ".jsonl"
    p = write_workload(w, tmp_path / f"conv{suffix}", out)
    assert p.exists()
    assert sniff_format(p) == ("npz" if out == "npz" else "mooncake")
    w2, st2 = load_trace(p)
    same_workload(w, w2)
    assert st2.rejected_total == 0


def test_convert_gz_jsonl_and_npz_limit(tmp_path):
    w, _ = load_trace(FIXTURES["mooncake"])
    p = write_workload(w, tmp_path / "out.jsonl.gz", "mooncake")
    assert p.read_bytes()[:2] == b"\x1f\x8b"
    same_workload(w, load_trace(p)[0])
    q = write_workload(w, tmp_path / "out.npz", "auto")
    w3, st3 = load_trace(q, limit=5)
    assert len(w3) == 5 and st3.loaded == 5
    same_workload(w.head(5), w3)


def test_convert_errors(tmp_path):
    w, _ = load_trace(FIXTURES["mooncake"])
    with pytest.raises(InputError, match="cannot write trace format 'csv'"):
        write_workload(w, tmp_path / "x.csv", "csv")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="cannot write"):
        write_workload(w, tmp_path / "afile" / "dir.npz", "npz")
    made = write_workload(w, tmp_path / "new" / "dir" / "t.npz", "npz")  # missing folders are created
    assert made.exists() and [p.name for p in made.parent.iterdir()] == ["t.npz"]
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(InputError, match="bad.npz"):
        load_trace(bad)


# ------------------------------------------------------------ the real trace


@pytest.mark.skipif(not REAL_MOONCAKE.exists(), reason=f"real trace absent: {REAL_MOONCAKE}")
def test_real_mooncake_trace_loads_fast_and_clean():
    t0 = time.perf_counter()
    w, st = load_trace(REAL_MOONCAKE)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"loading took {elapsed:.2f} s"
    assert len(w) == 12031 and st.rows_read == 12031 and st.rejected_total == 0
    assert w.input_tokens.mean() == pytest.approx(12035, rel=0.01)
    assert w.output_tokens.mean() == pytest.approx(343, rel=0.01)
    assert w.block_tokens == 512 and not w.synthetic_blocks
    assert not any("prefix-identifying" in n for n in st.notes)


def test_workload_from_requests_defaults():
    from trace.workload import Workload

    w = Workload.from_requests([[1, 2], [1, 2, 3]], block_tokens=4)
    assert w.block_offsets.tolist() == [0, 2, 5] and w.block_ids.tolist() == [1, 2, 1, 2, 3]
    assert w.arrival_ms.tolist() == [0.0, 1.0] and w.input_tokens.tolist() == [8, 12]
    assert w.output_tokens.tolist() == [1, 1] and w.session_id.tolist() == [-1, -1]
