"""sim.engine.timed_step's compiled functions give the Python model's floats bit for bit.

Every float is compared by its IEEE bytes (so 0.0 and -0.0 differ), every int by value and type. The
Python side is always called with Python ints and floats, as the engine calls it (numpy scalars would take
numpy's power instead of libm's).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.config import load_config
from sim.engine import timed_step as ts
from sim.replica.histogram import IterationHistogram
from sim.replica.step import DecodeLine
from sim.timing.load_policy import PrefixPart, choose_prefix, hbm_only
from sim.timing.overlap import prefill_done_s, ready_offset_s
from sim.timing.step_cost import StepModel

CONFIGS = {
    "llama8b-tp1": ["model.name=llama-3-8b", "model.tp=1"],
    "llama8b-roofline": ["model.name=llama-3-8b", "model.tp=1", "compute.ridge_softness=0"],
    "llama70b-tp2-h100": ["model.name=llama-3-70b", "model.tp=2", "hardware.gpu=h100-sxm"],
    "llama70b-tp4-pp2": ["model.name=llama-3-70b", "model.tp=4", "model.pp=2", "compute.ridge_softness=0.5",
                         "compute.iteration_overhead_ms=0.3"],
    "mixtral-tp2-h100": ["model.name=mixtral-8x7b", "model.tp=2", "hardware.gpu=h100-sxm"],
    "deepseek-v3-fp8": ["model.name=deepseek-v3", "model.tp=8", "hardware.gpu=h200", "compute.dtype=fp8",
                        "compute.iteration_overhead_ms=0.25"],
    "llama8b-fp8-l40s": ["model.name=llama-3-8b", "model.tp=1", "hardware.gpu=l40s", "compute.dtype=fp8",
                         "compute.ridge_softness=1"],
}
STEPS = {name: StepModel.from_config(load_config(overrides=ov)) for name, ov in CONFIGS.items()}
ARRAYS = {name: ts.step_array(s) for name, s in STEPS.items()}
MODELS = st.sampled_from(sorted(STEPS))

FEW = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(x, y) -> bool:
    """Bit-identical floats, or equal ints of Python's int type."""
    if isinstance(x, int):
        return isinstance(y, int) and x == y
    return isinstance(y, float) and np.float64(x).tobytes() == np.float64(y).tobytes()


def assert_same(py, jit) -> None:
    py, jit = tuple(py), tuple(jit)
    assert len(py) == len(jit) and all(same(a, b) for a, b in zip(py, jit, strict=True)), (py, jit)


def test_the_catalogue_covers_the_cases():
    s = STEPS
    assert s["mixtral-tp2-h100"]._E > s["mixtral-tp2-h100"]._k > 0 and s["deepseek-v3-fp8"]._E > 0
    assert s["llama8b-tp1"]._E == 0 and s["llama8b-tp1"].tp == 1
    assert s["llama70b-tp2-h100"].tp == 2 and s["llama70b-tp2-h100"]._comm_tok_s > 0
    assert s["llama70b-tp4-pp2"].pp == 2
    assert s["deepseek-v3-fp8"]._peak == s["deepseek-v3-fp8"].gpu.fp8_tflops * 1e12
    assert s["llama8b-fp8-l40s"]._peak == 733e12
    assert {m.params.ridge_softness for m in s.values()} >= {0.0, 0.5, 0.84, 1.0}
    assert s["deepseek-v3-fp8"]._overhead_s > 0


# ---------------------------------------------------------------- StepModel

@FEW
@given(MODELS, st.one_of(st.integers(1, 300), st.integers(1, 1 << 24)))
def test_linear_comm_one(name, T):
    assert_same(STEPS[name]._linear_comm_one(T), ts.linear_comm_one(ARRAYS[name], T))


@pytest.mark.parametrize("name", sorted(STEPS))
def test_linear_comm_one_by_hand(name):
    for T in (1, 2, 3, 7, 64, 255, 256, 257, 1000, 4096, 65535, 65536, 65537, 1 << 20, (1 << 24) + 1):
        assert_same(STEPS[name]._linear_comm_one(T), ts.linear_comm_one(ARRAYS[name], T))


KV = st.one_of(st.integers(0, 10**7).map(float), st.floats(0, 1e7, allow_nan=False), st.just(0.0))
CHUNKS = st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 100000)), max_size=8)


def iteration_jit(S, chunks, B, K):
    new = np.array([n for n, _ in chunks] or [0], dtype=np.int64)
    cached = np.array([c for _, c in chunks] or [0], dtype=np.int64)
    return ts.iteration_s(S, new, cached, len(chunks), B, K)


@MANY
@given(MODELS, CHUNKS, st.integers(0, 512), KV)
def test_iteration_s(name, chunks, B, K):
    assert_same([STEPS[name].iteration_s(chunks, B, K)], [iteration_jit(ARRAYS[name], chunks, B, K)])


@pytest.mark.parametrize("name", sorted(STEPS))
def test_iteration_s_by_hand(name):
    step, S = STEPS[name], ARRAYS[name]
    cases = [([], 0, 0.0), ([], 0, 5.0), ([(0, 0)], 0, 0.0), ([(0, 100)], 1, 0.0), ([], 1, 1.0), ([], 512, 1e7),
             ([(1, 0)], 0, 0.0), ([(8192, 0)], 0, 0.0), ([(2048, 30000), (0, 5), (1, 99999)], 37, 123456.5),
             ([(20000, 100000)] * 8, 512, 9999999.5)]
    for chunks, B, K in cases:
        assert_same([step.iteration_s(chunks, B, K)], [iteration_jit(S, chunks, B, K)])


@MANY
@given(MODELS, st.one_of(st.integers(0, 20000), st.integers(0, 1 << 21)), st.integers(0, 10**6))
def test_prefill_s(name, n, c):
    assert_same([STEPS[name].prefill_s(n, c)], [ts.prefill_s(ARRAYS[name], n, c)])


@MANY
@given(MODELS, st.integers(-3, 512))
def test_decode_line(name, B):
    assert_same(STEPS[name].decode_line(B), ts.decode_line(ARRAYS[name], B))


# ---------------------------------------------------------------- DecodeLine

@st.composite
def lines(draw):
    """(a, b, B): a model's decode line at its batch, or an arbitrary one (B = 0 included)."""
    B = draw(st.integers(0, 512))
    if B > 0 and draw(st.booleans()):
        a, b = STEPS[draw(MODELS)].decode_line(B)
    else:
        a = draw(st.floats(1e-5, 1.0))
        b = draw(st.one_of(st.just(0.0), st.floats(1e-12, 1e-6)))
    return a, b, B


@MANY
@given(lines(), st.integers(0, 5000), KV)
def test_span(line, k, K):
    a, b, B = line
    assert_same([DecodeLine(a, b).span(k, B, K)], [ts.span(a, b, k, B, K)])


@MANY
@given(lines(), KV, st.one_of(st.floats(0, 100), st.just(0.0), st.integers(0, 5000)), st.integers(-2, 2))
def test_done_by(line, K, dt, ulps):
    """dt arbitrary, or (an int) a span's exact end moved by a few ulps: the boundaries of the loops."""
    a, b, B = line
    line_py = DecodeLine(a, b)
    if isinstance(dt, int):
        dt = line_py.span(dt, B, K)
        for _ in range(abs(ulps)):
            dt = math.nextafter(dt, math.inf if ulps > 0 else -math.inf)
    assert_same([line_py.done_by(dt, B, K)], [ts.done_by(a, b, dt, B, K)])


def test_span_past_2_to_53():
    """batch x k x (k - 1) above 2^53: Python's int -> float conversion and numba's round alike."""
    for k in (2**26 + 1, 2**26 + 3, 10**8 + 1):
        for B in (3, 511):
            assert B * k * (k - 1) > 2**53
            assert_same([DecodeLine(1e-3, 3e-9).span(k, B, 7.5)], [ts.span(1e-3, 3e-9, k, B, 7.5)])


# ---------------------------------------------------------------- overlap

TIMES = st.one_of(st.just(0.0), st.floats(0, 10), st.floats(1e-9, 1e-3))


@MANY
@given(TIMES, TIMES, st.integers(1, 128), st.booleans(),
       st.one_of(st.just(0.0), st.just(-0.0), st.floats(-1, 10)))
def test_overlap(load, pre, layers, none, start):
    overlap = "none" if none else "layerwise"
    assert_same([prefill_done_s(load, pre, layers, overlap, start)],
                [ts.prefill_done_s(load, pre, layers, none, start)])
    assert_same([ready_offset_s(load, pre, layers, overlap)], [ts.ready_offset_s(load, pre, layers, none)])


# ---------------------------------------------------------------- load policy

LOADS = st.one_of(st.just(0.0), st.sampled_from([1e-3, 0.01, 0.05]), st.floats(0, 1))


@st.composite
def prefixes(draw):
    """(input tokens, three parts' tokens summing to at most it, their loads): empty parts and equal loads."""
    n = draw(st.integers(0, 200000))
    tokens = []
    for _ in range(3):
        rest = n - sum(tokens)
        tokens.append(draw(st.one_of(st.just(0), st.just(rest), st.integers(0, rest))))
    return n, tokens, [0.0, draw(LOADS), draw(LOADS)]


def choose_both(name, n, tokens, loads, layers, none, faster):
    parts = [PrefixPart(tokens[0]), PrefixPart(tokens[1], loads[1]), PrefixPart(tokens[2], loads[2])]
    py = choose_prefix(parts, n, STEPS[name].prefill_s, layers=layers, overlap="none" if none else "layerwise",
                       policy="faster" if faster else "always")
    jit = ts.choose_prefix3(ARRAYS[name], np.array(tokens, dtype=np.int64), np.array(loads, dtype=np.float64), n,
                            layers, none, faster)
    return py, jit


@MANY
@given(MODELS, prefixes(), st.integers(1, 128), st.booleans(), st.booleans())
def test_choose_prefix(name, prefix, layers, none, faster):
    n, tokens, loads = prefix
    assert_same(*choose_both(name, n, tokens, loads, layers, none, faster))


@FEW
@given(MODELS, st.integers(0, 200000), st.data())
def test_hbm_only(name, n, data):
    h = data.draw(st.one_of(st.just(0), st.just(n), st.integers(0, n)))
    assert_same(hbm_only(h, n, STEPS[name].prefill_s, 3), ts.hbm_only3(ARRAYS[name], h, n))


@pytest.mark.parametrize("none", [True, False])
def test_choose_prefix_tie_goes_to_loading(none):
    """Two cuts with the very same done time: both keep the later cut (3, loading everything)."""
    name, n, tokens, layers = "llama8b-tp1", 20000, [1000, 3000, 4000], 32
    step = STEPS[name]
    pre2, pre3 = step.prefill_s(n - 4000, 4000), step.prefill_s(n - 8000, 8000)
    l1 = 0.02
    # done(cut 3) = load2 + pre3 (load2 > l1 is the larger load), done(cut 2) = l1 + pre2; walk load2 over
    # the floats around the solution until the two are equal
    target = prefill_done_s(l1, pre2, layers, "none" if none else "layerwise")
    l2 = target - pre3 if none else target - pre3 / layers
    for _ in range(64):
        done3 = prefill_done_s(l2, pre3, layers, "none" if none else "layerwise")
        if done3 == target:
            break
        l2 = math.nextafter(l2, -math.inf if done3 > target else math.inf)
    assert done3 == target and l2 > l1
    py, jit = choose_both(name, n, tokens, [0.0, l1, l2], layers, none, True)
    assert py.parts_used == 3
    assert_same(py, jit)


def test_choose_prefix_skips_empty_parts():
    for tokens in ([0, 0, 0], [5, 0, 0], [5, 0, 7], [0, 9, 0], [0, 0, 100000]):
        for loads in ([0.0, 0.0, 0.0], [0.0, 5.0, 1e-9], [0.0, 1e-9, 5.0]):
            for none in (True, False):
                for faster in (True, False):
                    assert_same(*choose_both("mixtral-tp2-h100", 100000, tokens, loads, 40, none, faster))


# ---------------------------------------------------------------- histogram

H0 = IterationHistogram()
N_EDGES = H0.n_bins + 1


@st.composite
def durations(draw):
    """Seconds from 1e-7 to 100, or a bin edge moved by up to 3 ulps."""
    if draw(st.booleans()):
        return draw(st.floats(1e-7, 100))
    x = H0._edges[draw(st.integers(0, N_EDGES - 1))]
    for _ in range(draw(st.integers(-3, 3)) % 7):
        x = math.nextafter(x, math.inf if draw(st.booleans()) else -math.inf)
    return x


OPS = st.one_of(
    st.tuples(st.just("add"), durations()),
    st.tuples(st.just("prog"), durations(),
              st.one_of(st.just(0.0), st.floats(1e-9, 1e-6), st.floats(1e-6, 0.1), st.floats(0.1, 10)),
              st.one_of(st.integers(0, 3), st.integers(1, 5000))),
)


def replay(ops):
    h = IterationHistogram()
    counts, tot, acc, edges, log_lo = ts.hist_arrays(h)
    for op in ops:
        if op[0] == "add":
            h.add(op[1])
            ts.hist_add(counts, tot, acc, log_lo, op[1])
        else:
            h.add_progression(op[1], op[2], op[3])
            ts.hist_add_progression(counts, tot, acc, edges, log_lo, op[1], op[2], op[3])
    return h, counts, tot, acc


@FEW
@given(st.lists(OPS, max_size=30))
def test_histogram(ops):
    h, counts, tot, acc = replay(ops)
    assert np.array_equal(h.counts, counts) and h.total == tot[0]
    assert same(h.sum_s, float(acc[0]))
    back = IterationHistogram()
    ts.hist_into(back, counts, int(tot[0]), float(acc[0]))
    assert back.summary_ms() == h.summary_ms() and back._c == h._c


def test_histogram_every_edge():
    """Each bin edge and its neighbouring floats land in the Python's bin (log10 as CPython's)."""
    ops = []
    for x in H0._edges:
        ops += [("add", math.nextafter(x, -math.inf)), ("add", x), ("add", math.nextafter(x, math.inf))]
    ops += [("add", 1e-6), ("add", 1e-7), ("add", 1e3), ("add", 5e3), ("prog", 1e-6, 1e-6, 2000),
            ("prog", 0.001, 0.0, 7), ("prog", 0.001, 1e-300, 9), ("prog", 50.0, 100.0, 100)]
    h, counts, tot, acc = replay(ops)
    assert np.array_equal(h.counts, counts) and h.total == tot[0] and same(h.sum_s, float(acc[0]))


def test_step_array_names_every_slot():
    names = [n for n in ts.__all__ if n.isupper() and n != "N_STEP"]
    assert sorted(getattr(ts, n) for n in names) == list(range(ts.N_STEP))
