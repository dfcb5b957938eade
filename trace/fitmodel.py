"""The fitted workload model of ``trace fit`` / ``trace synth``: a readable, editable YAML file.

Distributions are empirical: a quantile table ``{p0: v, p1: v, ..., p100: v}``
at the probabilities of :data:`PROBS`, sampled by inverse CDF with linear
interpolation between neighbouring quantiles (:func:`sample`). Editing a
table edits the distribution; the keys must stay increasing in p and the
values non-decreasing.

Reading a fit file checks every key :func:`load_fit` needs; a missing or
bad one is one InputError naming the file and the key path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from sim.errors import InputError
from sim.io_safe import atomic_write_text, read_text_file

FIT_VERSION = 1
# Quantile probabilities (percent) of every distribution table: dense in the tails,
# where the p95 of lengths and the long think times live.
PROBS = (0, 1, 2, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90,
         92, 94, 95, 96, 97, 98, 99, 99.5, 99.9, 100)
MAX_FIT_BYTES = 20 * 1024 * 1024


def _pkey(p: float) -> str:
    return f"p{p:g}"


def quantile_table(values: np.ndarray, digits: int = 3) -> dict[str, float] | None:
    """{p0: min, ..., p100: max} of `values`; None when empty."""
    a = np.asarray(values, dtype=np.float64)
    if len(a) == 0:
        return None
    q = np.percentile(a, PROBS)
    return {_pkey(p): round(float(v), digits) for p, v in zip(PROBS, q, strict=True)}


def table_arrays(table: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities 0-1, values) of a quantile table, checked: keys pN, increasing p from 0 to 100,
    non-decreasing finite values."""
    if not isinstance(table, dict) or len(table) < 2:
        raise InputError("must be a quantile table {p0: value, ..., p100: value}", where=where)
    ps, vs = [], []
    for k, v in table.items():
        try:
            p = float(str(k)[1:]) if str(k).startswith("p") else float("nan")
        except ValueError:
            p = float("nan")
        if not 0 <= p <= 100:
            raise InputError(f"key {k!r} is not pN with 0 <= N <= 100", where=where)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise InputError(f"{k}: {v!r} is not a finite number", where=where)
        ps.append(p)
        vs.append(float(v))
    order = np.argsort(ps, kind="stable")
    p_arr, v_arr = np.array(ps)[order] / 100.0, np.array(vs)[order]
    if p_arr[0] != 0 or p_arr[-1] != 1 or np.any(np.diff(p_arr) <= 0):
        raise InputError("needs p0 and p100 and distinct probabilities", where=where)
    if np.any(np.diff(v_arr) < 0):
        raise InputError("values must not decrease with p", where=where)
    return p_arr, v_arr


def sample(table: tuple[np.ndarray, np.ndarray], u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws for uniforms `u` in [0, 1) from a checked table."""
    p, v = table
    return np.interp(u, p, v)


def histogram_arrays(hist: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, probabilities) of a {value: count} histogram with positive integer values."""
    if not isinstance(hist, dict) or not hist:
        raise InputError("must be a non-empty histogram {value: count}", where=where)
    vals, cnts = [], []
    for k, c in hist.items():
        try:
            kv = int(k)
        except (TypeError, ValueError):
            raise InputError(f"key {k!r} is not an integer", where=where) from None
        if kv < 1 or isinstance(c, bool) or not isinstance(c, (int, float)) or not c >= 0:
            raise InputError(f"{k}: needs a value >= 1 and a count >= 0", where=where)
        vals.append(kv)
        cnts.append(float(c))
    tot = sum(cnts)
    if tot <= 0:
        raise InputError("all counts are zero", where=where)
    return np.array(vals, dtype=np.int64), np.array(cnts) / tot


# ---------------------------------------------------------------- file I/O

def save_fit(fit: dict, path: str | Path) -> Path:
    """Write the fit YAML atomically (temporary name, rename on success)."""
    text = "# kvsim workload fit (python main.py trace fit); edit freely, see README 'Fit and scale'\n"
    text += yaml.safe_dump(fit, sort_keys=False, default_flow_style=None, width=100)
    return atomic_write_text(path, text)


def _get(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise InputError(f"missing key {key!r}", where=where)
    return d[key]


def _num(d: dict, key: str, where: str, lo: float | None = None, hi: float | None = None) -> float:
    v = _get(d, key, where)
    w = f"{where}.{key}"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise InputError(f"{v!r} is not a finite number", where=w)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InputError(f"{v!r} is outside [{lo}, {hi}]", where=w)
    return float(v)


def load_fit(path: str | Path) -> dict:
    """Read and check a fit file; returns the parsed model (plain dicts) with checked arrays under '_'."""
    p = str(path)
    text = read_text_file(path, "--fit", MAX_FIT_BYTES)
    try:
        fit = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{line}not valid YAML", where=p) from None
    if not isinstance(fit, dict):
        raise InputError("not a kvsim fit file (expected a mapping)", where=p)
    version = _get(fit, "kvsim_fit", p)
    if version != FIT_VERSION:
        raise InputError(f"kvsim_fit: version {version!r} is not {FIT_VERSION}", where=p)
    src = _get(fit, "source", p)
    bt = int(_num(src, "block_tokens", f"{p}: source", lo=1))
    ps = _get(fit, "prefix_structure", p)
    wp = f"{p}: prefix_structure"
    observed = _get(ps, "observed", wp)
    roots = _get(ps, "roots", wp)
    if not isinstance(roots, list):
        raise InputError("must be a list", where=f"{wp}.roots")
    ids = set()
    depth_of: dict[int, int] = {}
    for k, r in enumerate(roots):
        wr = f"{wp}.roots[{k}]"
        rid = int(_num(r, "id", wr, lo=0))
        depth = int(_num(r, "depth_blocks", wr, lo=1))
        _num(r, "sessions", wr, lo=0)
        parent = _get(r, "parent", wr)
        if parent is not None and parent not in depth_of:
            raise InputError(f"parent {parent!r} is not an earlier root id", where=f"{wr}.parent")
        if parent is not None and depth_of[parent] >= depth:
            raise InputError("must be deeper than its parent root", where=f"{wr}.depth_blocks")
        ids.add(rid)
        depth_of[rid] = depth
    private = _num(ps, "private_sessions", wp, lo=0)
    if roots and not observed:
        raise InputError("observed is false but roots are listed", where=wp)
    if sum(float(r["sessions"]) for r in roots) + private <= 0:
        raise InputError("no sessions: every root has 0 sessions and private_sessions is 0", where=wp)
    ss = _get(fit, "sessions", p)
    wss = f"{p}: sessions"
    cont = _get(ss, "continuation", wss)
    wc = f"{wss}.continuation"
    arr = _get(fit, "arrivals", p)
    wa = f"{p}: arrivals"
    profile = _get(arr, "rate_profile", wa)
    if not isinstance(profile, list) or not profile or any(
            isinstance(x, bool) or not isinstance(x, (int, float)) or not x >= 0 for x in profile) \
            or sum(profile) <= 0:
        raise InputError("must be a non-empty list of non-negative numbers, not all 0", where=f"{wa}.rate_profile")
    fit["_"] = {
        "block_tokens": bt,
        "turns": histogram_arrays(_get(ss, "turns", wss), f"{wss}.turns"),
        "first_new_tokens": table_arrays(_get(ss, "first_new_tokens", wss), f"{wss}.first_new_tokens"),
        "think_time_s": table_arrays(_get(ss, "think_time_s", wss), f"{wss}.think_time_s"),
        "extend_share": _num(cont, "extend_share", wc, lo=0, hi=1),
        "branch_keep_share": table_arrays(_get(cont, "branch_keep_share", wc), f"{wc}.branch_keep_share"),
        "new_tokens": table_arrays(_get(cont, "new_tokens", wc), f"{wc}.new_tokens"),
        "output_tokens": table_arrays(_get(fit, "output_tokens", p), f"{p}: output_tokens"),
        "session_rate_per_s": _num(arr, "session_rate_per_s", wa, lo=0),
        "bin_s": _num(arr, "bin_s", wa, lo=1e-3),
        "gap_cv": _num(arr, "gap_cv", wa, lo=0.0),
        "warmup_s": _num(arr, "warmup_s", wa, lo=0.0),
        "profile": np.asarray(profile, dtype=np.float64),
        "private_sessions": private,
    }
    if fit["_"]["session_rate_per_s"] <= 0:
        raise InputError("must be > 0", where=f"{wa}.session_rate_per_s")
    return fit
