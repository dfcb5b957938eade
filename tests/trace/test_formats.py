"""The trace format registry: the npz round trip through the CLI, a format
registered from outside the package, and auto-detection of every fixture."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import main as cli
from sim.config import load_config
from sim.errors import InputError
from tests.conftest import DATA
from trace import formats
from trace.convert import write_workload
from trace.source import workload_from_config
from trace.workload import LoadStats, Workload

# What auto-detection chose for each fixture before formats became a registry.
DETECTED = {
    "anolis_trace.jsonl": "anolis",
    "azure_conv_small.csv": "azure",
    "bailian_small.jsonl": "bailian",
    "bailian_synth.jsonl": "bailian",
    "burstgpt_small.csv": "burstgpt",
    "mooncake_small.jsonl": "mooncake",
    "splitwise_small.csv": "splitwise",
}


def hit_rate(report: Path) -> float:
    return json.loads(report.read_text())["policies"][0]["metrics"]["hit_rate"]


def test_names_keep_their_order():
    assert formats.names() == ("mooncake", "azure", "burstgpt", "splitwise", "anolis", "bailian", "npz")
    assert formats.choices() == ("auto", *formats.names())


def test_npz_round_trip_through_the_cli(tmp_path):
    src = DATA / "mooncake_small.jsonl"
    npz = tmp_path / "x.npz"
    assert cli.main(["trace", "convert", "--trace", str(src), "--to", "npz", "--out", str(npz)]) == 0
    rates = []
    for trace, fmt in ((src, "mooncake"), (npz, "npz")):
        report = tmp_path / f"{fmt}.json"
        rc = cli.main(["run", "--trace", str(trace), "--trace-format", fmt, "--hit-rate-only", "--no-plot",
                       "--report-json", str(report)])
        assert rc == 0
        rates.append(hit_rate(report))
    assert rates[0] == rates[1] > 0


def test_every_registered_name_is_a_valid_trace_format():
    for name in formats.choices():
        assert load_config(overrides=[f"trace.format={name}"]).trace.format == name
    with pytest.raises(InputError, match=r"trace\.format: Input should be 'auto', 'mooncake'.* or 'npz'"):
        load_config(overrides=["trace.format=parquet"])


def _toy_load(path: Path, *, strict: bool = False, limit: int | None = None) -> tuple[Workload, LoadStats]:
    # One request per line: its block ids, space separated.
    rows = [[int(b) for b in line.split()] for line in path.read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    return Workload.from_requests(rows, name=path.stem), LoadStats(source=str(path), rows_read=len(rows),
                                                                   loaded=len(rows))


TOY = SimpleNamespace(NAME="toy", ORDER=99, SUFFIXES=(".toy",), sniff=lambda head: False, load=_toy_load)


@pytest.fixture
def toy_format():
    formats.register(TOY)
    yield TOY
    formats.unregister(TOY.NAME)


def test_a_registered_format_is_accepted_by_config_and_loads(toy_format, tmp_path):
    p = tmp_path / "w.toy"
    p.write_text("1 2 3\n1 2 4\n5\n")
    assert "toy" in formats.names()
    cfg = load_config(overrides=["trace.format=toy", f"trace.path={json.dumps(str(p))}", "trace.limit=2"])
    w, st = workload_from_config(cfg)
    assert len(w) == 2 and st.loaded == 2
    assert w.blocks(1).tolist() == [1, 2, 4]
    assert formats.sniff_format(p) == "toy"  # by its suffix


def test_register_refuses_a_taken_name_or_a_partial_format():
    with pytest.raises(ValueError, match="taken"):
        formats.register(SimpleNamespace(NAME="mooncake", ORDER=1, SUFFIXES=(), sniff=None, load=None))
    with pytest.raises(TypeError, match="lacks"):
        formats.register(SimpleNamespace(NAME="half"))


@pytest.mark.parametrize("name", sorted(DETECTED))
def test_auto_detection_of_every_fixture(name, tmp_path):
    assert formats.sniff_format(DATA / name) == DETECTED[name]
    gz = tmp_path / "no_suffix"  # gzip found by magic bytes
    with open(DATA / name, "rb") as fi, gzip.open(gz, "wb") as fo:
        shutil.copyfileobj(fi, fo)
    assert formats.sniff_format(gz) == DETECTED[name]


def test_fixtures_cover_tests_data():
    traces = {p.name for p in DATA.iterdir() if p.suffix in (".jsonl", ".csv")}
    assert traces == set(DETECTED)
    with pytest.raises(InputError, match="cannot detect"):
        formats.sniff_format(DATA / "make_bailian_synth.py")


def test_npz_is_detected_by_suffix_or_zip_magic(tmp_path):
    w, _ = formats.load_trace(DATA / "mooncake_small.jsonl")
    bare = write_workload(w, tmp_path / "workload.bin", "npz")
    assert formats.sniff_format(bare) == "npz"
    # The suffix decides before the contents, as it always did.
    text = tmp_path / "text.npz"
    shutil.copy(DATA / "mooncake_small.jsonl", text)
    assert formats.sniff_format(text) == "npz"
