"""Validation-table loader and the metric -> step-cost mapping, checked by hand."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sim.errors import InputError
from sim.timing.validation import COLUMNS, Point, _parse_row, config_step_model, load_points, predict_ms

GOOD = {
    "id": "r1", "source_url": "https://example.org/t", "source_table": "Table 1", "engine": "vLLM",
    "gpu": "h100-sxm", "model": "llama-3-8b", "weight_dtype": "fp16", "kv_dtype": "fp16", "compute_dtype": "fp16",
    "tp": "1", "pp": "1", "metric": "step_ms", "prompt_tokens": "128", "cached_tokens": "0", "batch": "4",
    "context": "1000", "output_tokens": "100", "concurrency": "4", "measured_ms": "12.5", "split": "validation",
    "quote": "| 4 | 12.5 |", "notes": "",
}


def _write(tmp_path: Path, rows: list[dict[str, str]], columns: Sequence[str] = COLUMNS) -> Path:
    import csv
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def test_load_good_row(tmp_path):
    (p,) = load_points(_write(tmp_path, [GOOD]))
    assert (p.tp, p.batch, p.context, p.measured_ms, p.metric) == (1, 4, 1000, 12.5, "step_ms")
    assert "model.name=llama-3-8b" in p.overrides() and "compute.dtype=fp16" in p.overrides()


@pytest.mark.parametrize("change, message", [
    ({"batch": "four"}, "column 'batch' must be a whole number"),
    ({"measured_ms": "n/a"}, "column 'measured_ms' must be a number"),
    ({"measured_ms": "0"}, "must be > 0"),
    ({"metric": "tpot_ms"}, "unknown metric 'tpot_ms'"),
    ({"split": "test"}, "unknown split 'test'"),
    ({"tp": "0"}, "must be >= 1"),
])
def test_bad_row_names_file_and_line(tmp_path, change, message):
    path = _write(tmp_path, [GOOD, {**GOOD, "id": "r2", **change}])
    with pytest.raises(InputError) as e:
        load_points(path)
    assert str(e.value).startswith(f"{path}:3: ") and message in str(e.value)


def test_missing_column_and_duplicate_id(tmp_path):
    path = _write(tmp_path, [GOOD], columns=[c for c in COLUMNS if c != "context"])
    with pytest.raises(InputError, match=r"t\.csv:1: missing column\(s\) context"):
        load_points(path)
    with pytest.raises(InputError, match=r"t\.csv:3: duplicate id 'r1'"):
        load_points(_write(tmp_path, [GOOD, GOOD]))
    with pytest.raises(InputError, match="cannot read"):
        load_points(tmp_path / "absent.csv")


class LinearStep:
    """iteration = 1 ms per token through the model + 0.001 ms per KV token read + 0.5 ms per prefill
    token-pair term n*(c + n/2) / 1e6, + 2 ms overhead; easy to evaluate by hand."""

    def iteration_s(self, prefill=(), decode_batch=0, decode_kv_tokens=0.0):
        tokens = decode_batch + sum(n for n, _ in prefill)
        attn = sum(n * (c + n / 2) for n, c in prefill) / 1e6 * 0.5
        return (tokens * 1.0 + decode_kv_tokens * 0.001 + attn + 2.0) / 1e3


def _point(**kw: object) -> Point:
    return _parse_row({**GOOD, **{k: str(v) for k, v in kw.items()}}, "t.csv:2")


def test_metrics_map_to_the_step_api_by_hand():
    f = lambda p: LinearStep()  # noqa: E731
    # step: 4 tokens + 4 x 1000 KV x 0.001 + 2 = 10 ms
    assert predict_ms(_point(metric="step_ms", batch=4, context=1000), f) == pytest.approx(10.0)
    # prefill 2000 new on 48 cached: 2000 + 2000 x (48 + 1000) / 1e6 x 0.5 + 2 = 2003.048 ms
    assert predict_ms(_point(metric="prefill_ms", prompt_tokens=2048, cached_tokens=48, batch=1), f) \
        == pytest.approx(2003.048)
    # itl, C = 3, I = 100, O = 10, context 105: decode = 3 + 0.315 + 2 = 5.315;
    # mixed adds 100 tokens + 100 x 50 / 1e6 x 0.5 = 100.0025; itl = (10 x 5.315 + 2 x 100.0025) / 10
    p = _point(metric="itl_ms", concurrency=3, prompt_tokens=100, output_tokens=10, context=105)
    assert predict_ms(p, f) == pytest.approx((10 * 5.315 + 2 * 100.0025) / 10)
    # at concurrency 1 no other request's prefill falls between a request's tokens: ITL = one decode step
    p1 = _point(metric="itl_ms", concurrency=1, prompt_tokens=100, output_tokens=10, context=105)
    assert predict_ms(p1, f) == pytest.approx(1 + 0.105 + 2)


def test_default_factory_goes_through_the_config():
    p = _point(metric="step_ms", batch=8, context=512)
    base = predict_ms(p)
    more = predict_ms(p, lambda q: config_step_model(q, extra_overrides=["compute.iteration_overhead_ms=6"]))
    # the shipped iteration overhead is replaced by 6 ms: exactly the difference
    from sim.config import load_config
    shipped = load_config().compute.iteration_overhead_ms
    assert more - base == pytest.approx(6.0 - shipped)
    bad = _point(model="no-such-model")
    with pytest.raises(InputError, match="no-such-model"):
        predict_ms(bad)
