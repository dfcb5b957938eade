"""Runs above report.exact_quantiles_max_requests: the report's quantiles come from sketches (within 1% of
the exact run), the per-request file is streamed (same content as the batch writer) and atomic."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import main
import sim.report.request_stream as request_stream
import sim.report.requests as requests_mod
import sim.report.single as report_single
from sim.report.sink import EXACT, SKETCH, ExactSink, SketchSink, latency_metrics
from tests.conftest import ROOT

SMALL = ROOT / "tests" / "data" / "mooncake_small.jsonl"
MODES = {
    "single": ["--policy", "lru,fifo"],
    "cluster": ["--preset", "smoke"],
    "pd": ["--set", "model.name=llama-3-8b", "--set", "model.tp=1", "--set", "pd.gpus_per_rack=8"],
}
TINY = ["--set", "report.exact_quantiles_max_requests=1"]
TOL = 0.01 * (1 + 1e-9)


def _run(tmp_path, mode: str, name: str, suffix: str, extra=()) -> tuple[dict, object]:
    out, rj = tmp_path / f"{name}{suffix}", tmp_path / f"{name}.json"
    code = main.main(["run", "--mode", mode, "--trace", str(SMALL), *MODES[mode], "--no-plot", "--quiet",
                      "--report-json", str(rj), "--requests-out", str(out), *extra])
    assert code == 0
    return json.loads(rj.read_text()), out


def _dists(obj, path=""):
    """Every {mean, p50, p90, p99} block in a report's metrics, by path."""
    if isinstance(obj, dict):
        if set(obj) == {"mean", "p50", "p90", "p99"}:
            yield path, obj
        for k, v in obj.items():
            yield from _dists(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _dists(v, f"{path}[{i}]")


def _close(exact, sk, path="") -> None:
    """Same report but for the dists (quantiles within 1%, means to float rounding) and the markers."""
    if isinstance(exact, dict):
        assert set(exact) == set(sk), path
        for k in exact:
            if k in ("config_hash", "config", "wall_s", "started_utc", "sim_speed_req_s"):
                continue
            if k == "quantiles":
                assert (exact[k], sk[k]) == (EXACT, SKETCH), path
                continue
            _close(exact[k], sk[k], f"{path}/{k}")
    elif isinstance(exact, list):
        assert len(exact) == len(sk), path
        for i, (a, b) in enumerate(zip(exact, sk, strict=True)):
            _close(a, b, f"{path}[{i}]")
    elif isinstance(exact, float) and path.rsplit("/", 1)[-1] in ("p50", "p90", "p99"):
        assert abs(sk - exact) <= TOL * abs(exact), (path, exact, sk)
    elif isinstance(exact, float) and ("mean" in path or "share" in path):
        assert sk == pytest.approx(exact, rel=1e-9, abs=1e-12), path
    else:
        assert exact == sk, path


@pytest.mark.parametrize("mode", list(MODES))
def test_sketched_run_matches_the_exact_run(mode, tmp_path, monkeypatch):
    monkeypatch.setattr(requests_mod, "CSV_CHUNK_ROWS", 7)  # several chunks per run, both paths
    exact, f_exact = _run(tmp_path, mode, "exact", ".csv")
    sk, f_sk = _run(tmp_path, mode, "sketch", ".csv", TINY)
    assert exact["metrics"]["quantiles"] == EXACT and sk["metrics"]["quantiles"] == SKETCH
    assert len(list(_dists(exact["metrics"]))) >= 6
    _close(exact["policies"], sk["policies"])
    # the streamed per-request file has the batch writer's bytes
    assert f_sk.read_bytes() == f_exact.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_streamed_parquet_has_the_batch_content(tmp_path, monkeypatch):
    monkeypatch.setattr(request_stream, "ROW_GROUP_ROWS", 10)  # several row groups per run
    _, f_exact = _run(tmp_path, "single", "exact", ".parquet")
    _, f_sk = _run(tmp_path, "single", "sketch", ".parquet", TINY)
    a, b = pq.read_table(f_exact), pq.read_table(f_sk)
    assert a.schema == b.schema and a.to_pydict() == b.to_pydict()
    assert pq.ParquetFile(f_sk).metadata.num_row_groups > 2


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_failure_mid_run_leaves_no_file(suffix, tmp_path, monkeypatch):
    calls = []
    real = report_single.single_requests

    def second_run_fails(*args):  # the first policy's rows are already streamed when the second fails
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*args)

    monkeypatch.setattr(report_single, "single_requests", second_run_fails)
    out = tmp_path / "sub" / f"req{suffix}"
    with pytest.raises(RuntimeError, match="boom"):
        main.main(["run", "--trace", str(SMALL), "--policy", "lru,fifo", "--no-plot", "--quiet",
                   "--report-json", str(tmp_path / "r.json"), "--requests-out", str(out), *TINY])
    assert len(calls) == 2
    assert list(tmp_path.rglob("*")) == []  # no file, no temporary, no folder


def test_sinks_merge_to_the_whole():
    rng = np.random.default_rng(5)
    n = 4000
    parts = {"load": rng.exponential(0.01, n), "queue": rng.lognormal(-3, 2, n), "prefill": rng.gamma(2, 0.05, n)}
    ttft = parts["load"] + parts["queue"] + parts["prefill"]
    ttft[::97] = np.nan  # unserved requests
    chunk = {"ttft": ttft, "tpot": rng.lognormal(-4, 1, n), "e2e": ttft + 1.0, **parts}
    halves = [{k: v[:1500] for k, v in chunk.items()}, {k: v[1500:] for k, v in chunk.items()}]
    for kind in (ExactSink, SketchSink):
        whole, a, b = kind(), kind(), kind()
        whole.add(chunk)
        a.add(halves[0])
        b.add(halves[1])
        a.merge(b)
        lw, lm = latency_metrics(whole, parts), latency_metrics(a, parts)
        if kind is ExactSink:
            assert lw == lm  # the concatenation is the whole array
        else:
            for (pw, dw), (_, dm) in zip(_dists(lw), _dists(lm), strict=True):
                for q in ("p50", "p90", "p99"):
                    assert dm[q] == dw[q], pw  # merged sketches have the whole's buckets
                assert dm["mean"] == pytest.approx(dw["mean"], rel=1e-12)
            back = SketchSink.from_dict(json.loads(json.dumps(a.to_dict())))
            assert latency_metrics(back, parts) == lm
    # the sketch's breakdown is the exact one within the bound
    ex, sk = ExactSink(), SketchSink()
    ex.add(chunk)
    sk.add(chunk)
    _close({"quantiles": EXACT, **{k: v for k, v in latency_metrics(ex, parts).items() if k != "quantiles"}},
           {"quantiles": SKETCH, **{k: v for k, v in latency_metrics(sk, parts).items() if k != "quantiles"}})


def test_a_sketch_sink_merges_an_exact_one():
    rng = np.random.default_rng(8)
    chunk = {"ttft": rng.lognormal(-2, 1, 500), "tpot": rng.lognormal(-4, 1, 500), "e2e": rng.lognormal(0, 1, 500),
             "queue": rng.lognormal(-3, 1, 500)}
    ex, sk, whole = ExactSink(), SketchSink(), SketchSink()
    ex.add(chunk)
    sk.merge(ex)
    whole.add(chunk)
    assert latency_metrics(sk, ["queue"]) == latency_metrics(whole, ["queue"])
    assert all(sk.sketches[k].same_buckets(whole.sketches[k]) for k in chunk)
