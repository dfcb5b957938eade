"""trace convert --from sharegpt|openai|lmsys|wildchat: hand-computed token counts and block ids.

The approximation tokenizer makes a text of n UTF-8 bytes ceil(n / 4) tokens, so
every count below is computed by hand from the fixture strings.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main
from trace.converters.output import meta_path, read_meta
from trace.formats import load_trace

SYS_A = "a" * 32  # 8 tokens
SYS_B = "b" * 32  # 8 tokens, a different system prompt


def _conv(system: str, *turns: tuple[str, str]) -> dict:
    msgs = [{"from": "system", "value": system}]
    for user, reply in turns:
        msgs += [{"from": "human", "value": user}, {"from": "gpt", "value": reply}]
    return {"id": system[:3], "conversations": msgs}


def _convert(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["trace", "convert", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def sharegpt(tmp_path: Path) -> Path:
    data = [
        # 8 + 3 ("hello world", 11 bytes) = 11 input tokens, reply 5; then 11 + 5 + 2 = 18, reply 3
        _conv(SYS_A, ("hello world", "x" * 20), ("y" * 6, "z" * 9)),
        _conv(SYS_A, ("q" * 16, "r" * 4)),  # 8 + 4 = 12 input tokens, reply 1
        _conv(SYS_B, ("hello world", "x" * 20)),  # same user text, other system prompt
    ]
    p = tmp_path / "sg.json"
    p.write_text(json.dumps(data))
    return p


def test_sharegpt_turns_are_the_whole_context_so_far(sharegpt, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    rc, stdout, _ = _convert(capsys, "--from", "sharegpt", "--trace", str(sharegpt), "--out", str(out),
                             "--block-tokens", "4", "--seed", "3")
    assert rc == 0 and "wrote 4 requests" in stdout
    rows = sorted(_rows(out), key=lambda r: (r["session_id"], r["turn"]))
    assert [(r["session_id"], r["turn"], r["input_length"], r["output_length"]) for r in rows] == [
        (0, 0, 11, 5), (0, 1, 18, 3), (1, 0, 12, 1), (2, 0, 11, 5)]
    ids = [r["hash_ids"] for r in rows]
    assert [len(h) for h in ids] == [3, 5, 3, 3]  # ceil(input / 4)
    # The 8-token system prompt is 2 full blocks: equal in sessions 0 and 1, different in session 2.
    assert ids[0][:2] == ids[1][:2] == ids[2][:2]
    assert ids[2][:2] == [ids[0][0], ids[0][1]] and ids[3][0] != ids[0][0] and ids[3][1] != ids[0][1]
    # Turn 1 extends turn 0: the full blocks carry over; turn 0's partial block 2 (3 tokens) is full now, new id.
    assert ids[1][2] != ids[0][2]
    assert ids[0][2] != ids[2][2]  # "hello world" vs "qqq..." after the same system prompt
    # Session 2 = session 0's first turn after another system prompt: nothing in common (chained hashes).
    assert not set(ids[3]) & set(ids[0])
    # Every row loads back with its exact token count; the partial last block keeps 11 - 4*2 = 3 tokens.
    w, ls = load_trace(out)
    assert ls.rejected_total == 0 and w.block_tokens == 4
    assert sorted(w.input_tokens.tolist()) == [11, 11, 12, 18]
    assert rows[0]["input_length"] - 4 * (len(ids[0]) - 1) == 3
    meta = read_meta(out)
    assert meta["tokenizer"]["kind"] == "approximation" and meta["block_tokens"] == 4
    assert meta["arrivals"]["source"] == "poisson" and meta["arrivals"]["seed"] == 3


def test_trace_stats_shows_the_conversion(sharegpt, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert _convert(capsys, "--from", "sharegpt", "--trace", str(sharegpt), "--out", str(out))[0] == 0
    assert main(["trace", "stats", "--trace", str(out), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["conversion"]["from"] == "sharegpt" and d["stats"]["block_tokens"] == 16
    assert any("approximation" in n for n in d["load"]["notes"])
    assert d["stats"]["sessions"] == 3 and d["stats"]["requests"] == 4


def test_same_seed_same_file_other_seed_other_times(sharegpt, tmp_path, capsys):
    outs = []
    for i, seed in enumerate(("1", "1", "2")):
        o = tmp_path / f"o{i}.jsonl"
        assert _convert(capsys, "--from", "sharegpt", "--trace", str(sharegpt), "--out", str(o), "--seed", seed)[0] == 0
        outs.append(o.read_bytes())
    assert outs[0] == outs[1] and outs[0] != outs[2]


def _wordlevel(tmp_path: Path) -> Path:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({"[UNK]": 0, "you": 1, "are": 2, "kind": 3, "hi": 4, "there": 5}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    p = tmp_path / "tokenizer.json"
    tok.save(str(p))
    return p


def test_openai_jsonl_with_a_tokenizer_json(tmp_path, capsys):
    recs = [
        {"messages": [{"role": "system", "content": "you are kind"},
                      {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
                      {"role": "assistant", "content": "hi hi hi hi"},
                      {"role": "user", "content": "are you there friend"},
                      {"role": "assistant", "content": "yes"}]},
    ]
    src = tmp_path / "chat.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out = tmp_path / "out.jsonl"
    tok = _wordlevel(tmp_path)
    rc, _, _ = _convert(capsys, "--from", "openai", "--trace", str(src), "--out", str(out), "--tokenizer", str(tok),
                        "--block-tokens", "2")
    assert rc == 0
    rows = _rows(out)
    # words: system 3, user 2 -> 5 in, reply 4; then 5 + 4 + 4 ("friend" is [UNK]) = 13 in, reply 1 ("yes")
    assert [(r["input_length"], r["output_length"]) for r in rows] == [(5, 4), (13, 1)]
    assert [len(r["hash_ids"]) for r in rows] == [3, 7]
    assert rows[1]["hash_ids"][:2] == rows[0]["hash_ids"][:2]
    meta = read_meta(out)
    assert meta["tokenizer"]["kind"] == "huggingface" and len(meta["tokenizer"]["sha256"]) == 64


def test_lmsys_parquet(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    conv = [[{"role": "user", "content": "abcdefgh"}, {"role": "assistant", "content": "abcd"}],
            [{"role": "user", "content": "abcdefgh"}, {"role": "assistant", "content": "abcdefghi"}]]
    src = tmp_path / "lmsys.parquet"
    pq.write_table(pa.table({"conversation_id": ["c1", "c2"], "conversation": conv}), src)
    out = tmp_path / "out.jsonl"
    assert _convert(capsys, "--from", "lmsys", "--trace", str(src), "--out", str(out), "--block-tokens", "2")[0] == 0
    rows = sorted(_rows(out), key=lambda r: r["session_id"])
    assert [(r["input_length"], r["output_length"]) for r in rows] == [(2, 1), (2, 3)]
    assert rows[0]["hash_ids"] == rows[1]["hash_ids"]  # equal prompts, equal blocks across sessions


def test_wildchat_times_become_arrivals(tmp_path, capsys):
    def msg(role, text, ts):
        return {"role": role, "content": text, "timestamp": ts}

    recs = [
        {"conversation_hash": "h1", "conversation": [msg("user", "abcd", "2024-01-01T00:00:10Z"),
                                                     msg("assistant", "ok", "2024-01-01T00:00:11Z"),
                                                     msg("user", "more", "2024-01-01T00:01:00Z"),
                                                     msg("assistant", "ok", "2024-01-01T00:01:01Z")]},
        {"conversation_hash": "h2", "conversation": [msg("user", "abcd", "2024-01-01T00:00:05Z"),
                                                     msg("assistant", "ok", "2024-01-01T00:00:06Z")]},
    ]
    src = tmp_path / "wc.json"
    src.write_text(json.dumps(recs))
    out = tmp_path / "out.jsonl"
    assert _convert(capsys, "--from", "wildchat", "--trace", str(src), "--out", str(out))[0] == 0
    rows = _rows(out)
    assert [(r["timestamp"], r["session_id"], r["turn"]) for r in rows] == [(0, 1, 0), (5000, 0, 0), (55000, 0, 1)]
    assert read_meta(out)["arrivals"]["source"] == "dataset"


BAD_RECORDS = [
    {"id": "empty", "conversations": []},
    {"id": "norole", "conversations": [{"value": "x"}, {"from": "gpt", "value": "y"}]},
    {"id": "image", "conversations": [{"from": "human", "value": {"image": "..."}}, {"from": "gpt", "value": "y"}]},
    {"id": "alien", "conversations": [{"from": "martian", "value": "x"}]},
    {"id": "noreply", "conversations": [{"from": "human", "value": "x"}]},
    7,
]


def test_skipped_items_counted_by_reason_and_strict(tmp_path, capsys):
    src = tmp_path / "sg.json"
    src.write_text(json.dumps([_conv(SYS_A, ("hi", "yo")), *BAD_RECORDS]))
    out = tmp_path / "out.jsonl"
    assert _convert(capsys, "--from", "sharegpt", "--trace", str(src), "--out", str(out))[0] == 0
    meta = read_meta(out)
    assert meta["skipped"] == {"empty_conversation": 1, "missing_role": 1, "non_text_content": 1,
                               "unknown_role": 1, "no_assistant_reply": 1, "malformed_record": 1}
    assert meta["conversations_converted"] == 1 and meta["records_read"] == 7
    strict_out = tmp_path / "strict.jsonl"
    rc, _, err = _convert(capsys, "--from", "sharegpt", "--trace", str(src), "--out", str(strict_out), "--strict")
    assert rc == 2 and err.count("\n") == 1
    assert str(src) in err and "record 2: empty_conversation" in err
    assert not strict_out.exists() and not meta_path(strict_out).exists()


@pytest.mark.parametrize("name,content,needle", [
    ("trunc.json", '[{"id": "a", "conversations": [', "malformed JSON"),
    ("bad.jsonl", '{"messages": []}\n{"messages": [\n', "line 2: malformed JSON"),
    ("bad.parquet", "PAR1 this is not parquet PAR1", "malformed parquet"),
    ("notext.json", json.dumps([{"conversations": [{"from": "human", "value": ""}, {"from": "gpt", "value": ""}]}]),
     "no_text"),
])
def test_malformed_inputs_one_line_exit_2_no_output(tmp_path, capsys, name, content, needle):
    src = tmp_path / name
    src.write_text(content)
    out = tmp_path / "o" / "out.jsonl"
    fmt = "openai" if name.endswith(".jsonl") else "sharegpt"
    rc, _, err = _convert(capsys, "--from", fmt, "--trace", str(src), "--out", str(out))
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert str(src) in err and needle in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_bad_tokenizer_file(sharegpt, tmp_path, capsys):
    tok = tmp_path / "tokenizer.json"
    tok.write_text('{"model": "not a tokenizer"}')
    out = tmp_path / "out.jsonl"
    rc, _, err = _convert(capsys, "--from", "sharegpt", "--trace", str(sharegpt), "--out", str(out),
                          "--tokenizer", str(tok))
    assert rc == 2 and err.count("\n") == 1 and str(tok) in err and "tokenizer" in err
    assert not out.exists()


@pytest.mark.parametrize("args,where", [
    (["--tokenizer", "t.json"], "--tokenizer"),  # without --from
    (["--from", "sharegpt", "--to", "npz"], "--to"),
    (["--from", "nope"], "--from"),
    (["--from", "sharegpt", "--block-tokens", "0"], "--block-tokens"),
    (["--from", "sharegpt", "--session-rate", "0"], "--session-rate"),
])
def test_flags_refused_with_one_line(sharegpt, tmp_path, capsys, args, where):
    rc, _, err = _convert(capsys, "--trace", str(sharegpt), "--out", str(tmp_path / "o.jsonl"), *args)
    assert rc == 2 and err.startswith(f"error: {where}") and err.count("\n") == 1


def test_convert_without_from_still_converts_traces(sharegpt, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert _convert(capsys, "--from", "sharegpt", "--trace", str(sharegpt), "--out", str(out))[0] == 0
    npz = tmp_path / "out.npz"
    assert _convert(capsys, "--trace", str(out), "--out", str(npz), "--to", "npz")[0] == 0
    w, _ = load_trace(npz)
    assert len(w) == 4


def test_wildchat_parquet_timestamps_and_gzip_jsonl(tmp_path, capsys):
    import datetime as dt
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = dt.datetime(2024, 1, 1, 0, 0, 10)
    conv = [[{"role": "user", "content": "abcd", "timestamp": t0},
             {"role": "assistant", "content": "ok", "timestamp": t0 + dt.timedelta(seconds=2)},
             {"role": "user", "content": "more", "timestamp": t0 + dt.timedelta(seconds=30)},
             {"role": "assistant", "content": "fine", "timestamp": t0 + dt.timedelta(seconds=31)}]]
    src = tmp_path / "wc.parquet"
    pq.write_table(pa.table({"conversation_hash": ["h"], "timestamp": [t0], "conversation": conv}), src)
    out = tmp_path / "wc.jsonl"
    assert _convert(capsys, "--from", "wildchat", "--trace", str(src), "--out", str(out))[0] == 0
    # "abcd" 1 token; then 1 + 1 ("ok") + 1 ("more") = 3, 30 s after the first turn
    assert [(r["timestamp"], r["input_length"], r["output_length"]) for r in _rows(out)] == [(0, 1, 1), (30000, 3, 1)]
    gz = tmp_path / "o.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        msgs = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "yo"}]
        fh.write(json.dumps({"messages": msgs}))
    out2 = tmp_path / "o.jsonl"
    assert _convert(capsys, "--from", "openai", "--trace", str(gz), "--out", str(out2))[0] == 0
    assert [(r["input_length"], r["output_length"]) for r in _rows(out2)] == [(2, 1)]
