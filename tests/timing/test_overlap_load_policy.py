"""Layer-wise overlap and the load-or-recompute choice, against hand-computed cases."""
import pytest

from sim.timing.load_policy import PrefixPart, choose_prefix
from sim.timing.overlap import prefill_done_s, ready_offset_s


def test_none_is_load_then_prefill():
    assert prefill_done_s(2.0, 3.0, 80, "none") == 5.0
    assert prefill_done_s(2.0, 3.0, 80, "none", start_s=4.0) == 7.0  # GPU free only at 4 s


def test_layerwise_compute_bound_waits_for_the_first_layer():
    # D = 1, P = 4, L = 4: layers arrive at 0.25, 0.5, 0.75, 1; compute 1 s per layer from 0.25
    # -> 4.25 = D/L + P (unrolled by hand: c1=1.25, c2=2.25, c3=3.25, c4=4.25)
    assert prefill_done_s(1.0, 4.0, 4) == pytest.approx(4.25)


def test_layerwise_load_bound_trails_the_last_layer():
    # D = 4, P = 1, L = 4: arrivals at 1, 2, 3, 4; each layer's 0.25 s compute follows its arrival
    # -> 4.25 = D + P/L
    assert prefill_done_s(4.0, 1.0, 4) == pytest.approx(4.25)


def test_layerwise_matches_the_layer_recursion():
    for d, p, L, s in [(3.0, 2.0, 7, 0.0), (0.5, 9.0, 3, 1.0), (5.0, 5.0, 10, 2.0), (2.0, 1.0, 1, 0.0)]:
        c = s
        for layer in range(1, L + 1):
            c = max(c, layer * d / L) + p / L
        assert prefill_done_s(d, p, L, "layerwise", start_s=s) == pytest.approx(c)


def test_one_layer_is_no_overlap_and_no_load_is_just_prefill():
    assert prefill_done_s(2.0, 3.0, 1) == pytest.approx(5.0)
    assert prefill_done_s(0.0, 3.0, 80) == 3.0


def test_ready_offset():
    # D = 4, P = 2, L = 4: done = max(2 + 1, 4 + 0.5) = 4.5 -> compute may start at 2.5 = D - P(L-1)/L
    assert ready_offset_s(4.0, 2.0, 4) == pytest.approx(2.5)
    assert ready_offset_s(1.0, 8.0, 4) == pytest.approx(0.25)  # compute-bound: D/L
    assert ready_offset_s(4.0, 2.0, 4, "none") == 4.0


def _linear(per_token):
    return lambda new, cached: new * per_token


def test_slow_ssd_part_is_recomputed():
    # 1000 input tokens: 100 in HBM, 400 in DRAM (load 0.1 s), 400 on SSD (load 10 s); 1 ms/token.
    # always load: max(0.1, 10) = 10 s load, P = 0.1 -> none: 10.1
    # cut after DRAM: load 0.1, P = 0.5 -> 0.6; HBM only: P = 0.9 -> 0.9. Best: recompute the SSD part.
    parts = [PrefixPart(100), PrefixPart(400, 0.1), PrefixPart(400, 10.0)]
    c = choose_prefix(parts, 1000, _linear(1e-3), layers=1, overlap="none")
    assert (c.parts_used, c.tokens_used, c.recomputed_tokens, c.recomputed) == (2, 500, 400, True)
    assert c.done_s == pytest.approx(0.6)
    a = choose_prefix(parts, 1000, _linear(1e-3), layers=1, overlap="none", policy="always")
    assert (a.tokens_used, a.recomputed, a.done_s) == (900, False, pytest.approx(10.1))


def test_fast_dram_part_is_loaded():
    parts = [PrefixPart(0), PrefixPart(800, 0.05)]
    c = choose_prefix(parts, 1000, _linear(1e-3), layers=80, overlap="layerwise")
    # load: max(0.05/80 + 0.2, 0.05 + 0.2/80) = 0.200625 vs recompute 1.0
    assert (c.tokens_used, c.recomputed) == (800, False)
    assert c.done_s == pytest.approx(0.05 / 80 + 0.2)


def test_ties_go_to_loading():
    # load 0.4 s + prefill 0.1 (none) = 0.5 = recomputing all 500 tokens at 1 ms
    parts = [PrefixPart(0), PrefixPart(400, 0.4)]
    c = choose_prefix(parts, 500, _linear(1e-3), layers=1, overlap="none")
    assert (c.tokens_used, c.recomputed) == (400, False)


def test_overlap_can_make_a_load_worth_it():
    # load 0.6 s of 400 tokens, 1 ms/token, 500 input: none -> 0.7 > 0.5 (recompute);
    # layerwise L=10 -> max(0.06 + 0.1, 0.6 + 0.01) = 0.61 > 0.5 still recompute; load 0.45 -> 0.46 < 0.5 load
    parts = [PrefixPart(0), PrefixPart(400, 0.6)]
    assert choose_prefix(parts, 500, _linear(1e-3), layers=10, overlap="none").recomputed
    assert choose_prefix(parts, 500, _linear(1e-3), layers=10).recomputed
    parts = [PrefixPart(0), PrefixPart(400, 0.45)]
    assert choose_prefix(parts, 500, _linear(1e-3), layers=10, overlap="none").recomputed  # 0.55 > 0.5
    assert not choose_prefix(parts, 500, _linear(1e-3), layers=10).recomputed  # 0.46 < 0.5


def test_bad_input():
    with pytest.raises(ValueError):
        choose_prefix([], 10, _linear(1.0), layers=1)
    with pytest.raises(ValueError):
        choose_prefix([PrefixPart(20)], 10, _linear(1.0), layers=1)
    with pytest.raises(ValueError):
        choose_prefix([PrefixPart(1)], 10, _linear(1.0), layers=1, policy="sometimes")
