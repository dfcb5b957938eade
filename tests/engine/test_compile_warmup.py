"""tests.compile_warmup: when the suite warms the numba cache up, and that every part runs (warm: seconds)."""
from __future__ import annotations

import pytest

import sim.engine.cluster_cache as cc
from tests import compile_warmup


class _Config:
    def __init__(self, n, source=pytest.Config.ArgsSource.TESTPATHS, worker=False):
        self._n, self.args_source = n, source
        if worker:
            self.workerinput = {}

    def getoption(self, name, default=None):
        return self._n if name == "numprocesses" else default


def test_only_the_controller_of_a_whole_suite_run_on_a_cold_cache_warms_up(monkeypatch):
    monkeypatch.delenv(compile_warmup.OFF, raising=False)
    compiled = {"node_ops": False, "cluster_kernels": False}
    monkeypatch.setattr("sim.engine.is_compiled", lambda m: compiled[m])
    assert compile_warmup.wanted(_Config(2))
    assert not compile_warmup.wanted(_Config(2, worker=True))  # an xdist worker
    assert not compile_warmup.wanted(_Config(0))  # -n 0: one process gains nothing
    assert not compile_warmup.wanted(_Config(None))  # xdist absent
    assert not compile_warmup.wanted(_Config(2, pytest.Config.ArgsSource.ARGS))  # a few tests named
    compiled["node_ops"] = True
    assert compile_warmup.wanted(_Config(2))  # the cluster engine still missing
    compiled["cluster_kernels"] = True
    assert not compile_warmup.wanted(_Config(2))  # warm cache
    compiled["node_ops"] = False
    monkeypatch.setenv(compile_warmup.OFF, "1")
    assert not compile_warmup.wanted(_Config(2))


@pytest.mark.parametrize("part", sorted(compile_warmup.PARTS))
def test_every_part_runs_and_leaves_the_engine_as_it_was(part):
    narrow = cc._INT32_MAX
    assert compile_warmup.main([part]) == 0  # cluster_wide raises if its records stayed int32
    assert cc._INT32_MAX == narrow
    assert sorted(p for parts in compile_warmup.SPLIT for p in parts) == sorted(compile_warmup.PARTS)


def test_a_failing_part_is_reported_not_raised(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(compile_warmup, "SPLIT", (("no_such_part",),))
    compile_warmup.run_parts(said.append)
    assert "compile warm-up no_such_part failed (exit 1: KeyError: 'no_such_part')" in said[1]
    assert said[-1].startswith("compile warm-up done in")
