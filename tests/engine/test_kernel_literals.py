"""The cluster kernels call their non-inlined kernels with no bare constant (static check of the source).

Numba types a bare constant argument (`1`, `False`, `EP_GPU`, or a counter still holding its first `0`
during inference) as a literal and compiles the callee once per literal value: on a cold cache the cluster
engine compiled ``_below_dram`` 5 times and ``record_move`` 13, 94 s CPU instead of 40. The kernels pass
``I64(...)`` / ``np.bool_(...)`` instead (``sim.engine.cluster_kernels``).
"""
from __future__ import annotations

import ast

from tests.conftest import ROOT

FILES = ("sim/engine/cluster_kernels.py", "sim/engine/cluster_state.py")


def _jitted(tree: ast.Module) -> dict[str, bool]:
    """name -> inlined, for every @njit function of a module."""
    out = {}
    for f in tree.body:
        if isinstance(f, ast.FunctionDef):
            for d in f.decorator_list:
                if isinstance(d, ast.Call) and getattr(d.func, "id", "") == "njit":
                    out[f.name] = any(k.arg == "inline" for k in d.keywords)
    return out


def _constant_name(n: str) -> bool:
    """EP_GPU, FROM_HBM: module constants; S, T, MV, CR: the kernels' arrays (one or two capitals)."""
    return n.isupper() and len(n) > 2


def literal_args(source: str, kernels: set[str]) -> list[str]:
    """Calls to `kernels` (by name or attribute) passing a bare constant, a constant's name or a
    local first set to a bare constant."""
    found = []
    for f in ast.parse(source).body:
        if not isinstance(f, ast.FunctionDef):
            continue
        # counters: set to a bare constant, then only added to (a local also set to other values is unified)
        const_locals, other = set(), set()
        for n in ast.walk(f):
            if isinstance(n, ast.Assign):
                for t in ast.walk(ast.Module(body=[ast.Expr(x) for x in n.targets], type_ignores=[])):
                    if isinstance(t, ast.Name):
                        (const_locals if isinstance(n.value, ast.Constant) else other).add(t.id)
        const_locals -= other
        for c in ast.walk(f):
            if not isinstance(c, ast.Call):
                continue
            name = c.func.id if isinstance(c.func, ast.Name) else getattr(c.func, "attr", "")
            if name not in kernels:
                continue
            for a in c.args:
                if (isinstance(a, ast.Constant) or isinstance(a, ast.UnaryOp) and isinstance(a.operand, ast.Constant)
                        or isinstance(a, ast.Name) and (_constant_name(a.id) or a.id in const_locals)):
                    found.append(f"{f.name}: {name}(... {ast.unparse(a)} ...) line {c.lineno}")
    return found


def _kernels() -> set[str]:
    names = set()
    for p in (*FILES, "sim/engine/hashtab.py"):
        names |= {n for n, inlined in _jitted(ast.parse((ROOT / p).read_text())).items() if not inlined}
    return names


def test_cluster_kernels_pass_no_literal_to_a_kernel():
    kernels = _kernels()
    assert {"_below_dram", "_demote", "record_move", "add_near"} <= kernels
    for p in FILES:
        assert literal_args((ROOT / p).read_text(), kernels) == [], p


def test_the_check_finds_each_kind_of_literal():
    src = """
def k(S, n):
    c = 0
    c += n
    d = 0
    d, e = n, 1
    _below_dram(S, 1, I64(2), EP_GPU, c, d, -1, np.bool_(False), False, n)
    hashtab.add_near(S, 1)
"""
    assert [s.split("(... ")[1].split(" ...")[0] for s in literal_args(src, {"_below_dram", "add_near"})] == [
        "1", "EP_GPU", "c", "-1", "False", "1"]
