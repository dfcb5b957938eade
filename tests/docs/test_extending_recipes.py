"""docs/EXTENDING.md's recipes work as written: each test runs the doc's own code block.

The code blocks are read from the doc and executed as a module, so a recipe that
drifts from the code fails here. Every toy is unregistered after its test.
"""
from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import sim.cli
from sim.config import load_config
from sim.errors import InputError
from sim.modes.single import run_single
from sim.policies.base import REGISTRY
from sim.routing.registry import ROUTERS, names
from trace import formats
from trace.source import workload_from_config
from trace.workload import Workload

DOC = Path(__file__).resolve().parents[2] / "docs" / "EXTENDING.md"
BLOCK_BYTES = 16 * 131072  # llama-3-8b fp16, 16-token blocks
GiB = 1024**3


def recipe(heading: str, name: str) -> types.ModuleType:
    """The first python block under `## heading` in EXTENDING.md, executed as module `name`."""
    text = DOC.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    mod = types.ModuleType(name)
    sys.modules[name] = mod  # dataclasses and pickling look modules up by name
    try:
        exec(compile(code, f"{DOC}:{heading}", "exec"), mod.__dict__)
    finally:
        sys.modules.pop(name, None)
    return mod


def _node_cfg(*sets: str):
    return load_config(overrides=["model.name=llama-3-8b", "model.kv_dtype=fp16",
                                  "model.tp=1", "hardware.gpu=h100-sxm", *sets])


# ------------------------------------------------------------------ an eviction policy


@pytest.fixture
def doc_policy():
    mod = recipe("An eviction policy", "doc_recipe_policy")  # @register runs here
    try:
        yield mod.MRU
    finally:
        REGISTRY.pop(mod.MRU.name, None)


def test_policy_recipe_runs_on_the_python_reference_and_changes_decisions(doc_policy):
    name = doc_policy.name
    assert REGISTRY[name] is doc_policy
    # HBM of 2 blocks, one worker, no lower tiers: [3] evicts 1 under LRU, 2 under MRU.
    cfg = _node_cfg("hardware.gpus_per_node=1", "cluster.router=round_robin", "cache.engine=auto",
                    f"hardware.hbm.capacity_gib={2 * BLOCK_BYTES / GiB}", "hardware.dram.capacity_gib=0",
                    "hardware.ssd.capacity_gib=0")
    w = Workload.from_requests([[1], [2], [3], [1], [2]], arrival_ms=np.arange(5) * 1000.0, name="doc")
    lru = run_single(cfg, w, "lru", timing=False)
    mine = run_single(cfg, w, name, timing=False)
    assert type(mine.cache.hbm[0].policy) is doc_policy  # auto fell back to the Python reference
    assert mine.hit_blocks[:, 0].tolist() != lru.hit_blocks[:, 0].tolist()
    assert mine.hit_blocks[3, 0] == 1 and lru.hit_blocks[3, 0] == 0


def test_policy_recipe_is_refused_by_the_compiled_engine(doc_policy):
    cfg = _node_cfg("hardware.gpus_per_node=1", "cache.engine=compiled")
    w = Workload.from_requests([[1], [2]], name="doc")
    with pytest.raises(InputError) as e:
        run_single(cfg, w, doc_policy.name, timing=False)
    assert e.value.where == "cache.engine" and "no compiled kernel" in str(e.value)


# ------------------------------------------------------------------ a router


@pytest.fixture
def doc_router():
    mod = recipe("A router", "doc_recipe_router")
    try:
        yield mod.LastWorker
    finally:
        ROUTERS.pop(mod.LastWorker.name, None)


def test_router_recipe_serves_its_scope_and_picks_the_worker(doc_router):
    name = doc_router.name
    assert name in names("node") and name not in names("cluster")
    w = Workload.from_requests([[1, 2], [3], [4, 5], [6]], name="doc")
    base = ("hardware.gpus_per_node=4",)
    rr = run_single(_node_cfg(*base, "cluster.router=round_robin"), w, "lru", timing=False)
    mine = run_single(_node_cfg(*base, f"cluster.router={name}"), w, "lru", timing=False)
    assert len(set(rr.worker.tolist())) > 1
    assert set(mine.worker.tolist()) == {3}


# ------------------------------------------------------------------ a trace format


@pytest.fixture
def doc_format():
    mod = recipe("A trace format", "doc_recipe_format")
    formats.register(mod)
    try:
        yield mod
    finally:
        formats.unregister(mod.NAME)


def test_trace_format_recipe_loads_through_the_config(doc_format, tmp_path):
    p = tmp_path / "tiny.mytrace"
    rows = [{"ts": 0.0, "in": 40, "out": 3}, {"ts": 0.5, "in": 20, "out": 1}, {"ts": 1.0, "in": 16, "out": 2}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert doc_format.NAME in formats.names()
    assert formats.sniff_format(p) == doc_format.NAME
    cfg = load_config(overrides=[f"trace.path={json.dumps(str(p))}"])  # trace.format=auto
    w, st = workload_from_config(cfg)
    assert st.loaded == 3 and len(w) == 3
    assert w.input_tokens.tolist() == [40, 20, 16] and w.arrival_ms.tolist() == [0.0, 500.0, 1000.0]
    # and by name, with the sniffer deciding on a file without the suffix
    q = tmp_path / "tiny.jsonl"
    q.write_text(p.read_text())
    assert formats.sniff_format(q) == doc_format.NAME
    cfg = load_config(overrides=[f"trace.path={json.dumps(str(q))}", f"trace.format={doc_format.NAME}"])
    assert len(workload_from_config(cfg)[0]) == 3


# ------------------------------------------------------------------ a CLI command


def test_cli_recipe_is_listed_and_runs(monkeypatch, capsys):
    mod = recipe("A CLI command", "doc_recipe_cli")
    monkeypatch.setattr(sim.cli, "COMMANDS", (*sim.cli.COMMANDS, mod))
    assert "hello" in sim.cli.build_parser().format_help()
    assert sim.cli.main(["hello", "--name", "docs"]) == 0
    assert capsys.readouterr().out == "hello docs\n"


def test_the_toys_are_gone():
    assert "mru" not in REGISTRY and "last_worker" not in ROUTERS and "mytrace" not in formats.names()
    assert all(m.__name__ != "doc_recipe_cli" for m in sim.cli.COMMANDS)
