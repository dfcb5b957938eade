"""Golden reports: every mode's outputs, field by field, except wall-clock fields.

These pin results across refactors: a change that alters a number fails here
with the list of fields that moved.
"""
from __future__ import annotations

import json

import pytest

from tests.golden.cases import CASES, MOONCAKE
from tests.golden.harness import DATA, diff, run_case


def _params():
    for name, case in CASES.items():
        marks = [pytest.mark.slow] if case.get("needs_mooncake") else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_params()))  # a list: pytest deprecates generators here
def test_golden_report(name, tmp_path, monkeypatch):
    case = CASES[name]
    if case.get("needs_mooncake") and not MOONCAKE.exists():
        pytest.skip(f"{MOONCAKE} absent")
    monkeypatch.chdir(DATA.parents[2])
    expected = json.loads((DATA / f"{name}.json").read_text())
    actual = json.loads(json.dumps(run_case(case, tmp_path), sort_keys=True))
    problems = diff(expected, actual)
    assert not problems, f"{len(problems)} fields differ:\n" + "\n".join(problems[:40])


def test_diff_names_each_moved_field():
    exp = {"a": {"b": [1, 2.5]}, "c": "x"}
    act = {"a": {"b": [1, 2.50001]}, "d": "x"}
    assert diff(exp, act) == ["/c: missing", "/d: unexpected", "/a/b[1]: 2.5 != 2.50001"]
