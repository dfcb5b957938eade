"""The compiled engines call their non-inlined kernels with no bare constant (static check of the source).

Numba types a bare constant argument (`1`, `False`, `EP_GPU`, or a counter still holding its first `0`
during inference) as a literal and compiles the callee once per literal value: on a cold cache the cluster
engine compiled ``_below_dram`` 5 times and ``record_move`` 13, 94 s CPU instead of 40; the node engine
compiled ``fetch_rec`` 3 times and ``lookup_from``, ``_push_down``, ``_demote``, ``tier_put_absent``,
``hbm_prefix_rec``, ``_account``, ``_pf_swap``, ``_bucket_new`` twice (``benchmarks/compile_signatures.py``).
The kernels pass ``I64(...)`` / ``np.bool_(...)`` instead (``sim.engine.slots.I64``).
"""
from __future__ import annotations

import ast

from tests.conftest import ROOT

CLUSTER = ("sim/engine/cluster_kernels.py", "sim/engine/cluster_state.py")
# every other file with compiled code under sim/engine and trace (the node engine and the block lists it
# reads), found by content so a new kernel file is checked too
NODE = tuple(sorted(str(p.relative_to(ROOT)) for d in ("sim/engine", "trace") for p in (ROOT / d).glob("*.py")
                    if "@njit" in p.read_text() and str(p.relative_to(ROOT)) not in CLUSTER))
FILES = CLUSTER + NODE


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
        # counters: a local ever set to a bare constant (`n = 0`, `a = b = 0`), even if set to other values
        # later: in a loop (`nev = 0; ... nev = put(..., nev)`) numba first types the call with the literal
        const_locals = set()
        for n in ast.walk(f):
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant):
                const_locals |= {t.id for t in n.targets if isinstance(t, ast.Name)}
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
    for p in FILES:
        names |= {n for n, inlined in _jitted(ast.parse((ROOT / p).read_text())).items() if not inlined}
    return names


def test_cluster_kernels_pass_no_literal_to_a_kernel():
    kernels = _kernels()
    assert {"_below_dram", "_demote", "record_move", "add_near"} <= kernels
    for p in CLUSTER:
        assert literal_args((ROOT / p).read_text(), kernels) == [], p


def test_node_kernels_pass_no_literal_to_a_kernel():
    assert {"sim/engine/node_ops.py", "sim/engine/replay.py", "trace/next_use.py"} <= set(NODE)
    kernels = _kernels()
    assert {"fetch_rec", "lookup_from", "tier_put_absent", "_push_down", "_demote", "hbm_prefix_rec",
            "_account", "_pf_swap", "_bucket_new"} <= kernels
    for p in NODE:
        assert literal_args((ROOT / p).read_text(), kernels) == [], p


def test_the_check_finds_each_kind_of_literal():
    src = """
def k(S, n):
    c = 0
    c += n
    d = e = 0
    for j in range(n):
        d = put(S, d)
    f = g = I64(0)
    M[c + n] = 0
    _below_dram(S, 1, I64(2), EP_GPU, c, d, -1, np.bool_(False), False, n, f, M)
    hashtab.add_near(S, 1)
"""
    assert [s.split("(... ")[1].split(" ...")[0] for s in literal_args(src, {"_below_dram", "add_near", "put"})] == [
        "1", "EP_GPU", "c", "d", "-1", "False", "1", "d"]
