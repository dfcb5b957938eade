"""A sweep's memory is checked by its driver before any point runs (experiments.memory_fit)."""
import csv

import pytest
import yaml

import main
from experiments.engine import expand, run_sweep
from experiments.memory_fit import fit_workers
from experiments.metrics import WALL_CLOCK_COLUMNS
from experiments.spec import load_spec
from sim.errors import InputError
from sim.modes.memory import BASE_B, SLOT_B, GiB
from sim.modes.runner import run_mode
from tests.experiments.fake_ray import FakeRay
from trace.source import workload_from_config

# as tests/experiments/test_experiments_engine.py: one worker, HBM only
BASE = {"set": {"model.name": "llama-3-8b", "model.tp": 1, "hardware.gpus_per_node": 1,
                "hardware.dram.capacity_gib": 0, "hardware.ssd.capacity_gib": 0}}
TINY = {"synthetic": {"kind": "multi_turn", "requests": 150, "sessions": 15}}
ENV = "KVSIM_MEMORY_LIMIT_GIB"


def _spec(tmp_path, axes: dict, name: str = "mem"):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({"name": name, "base": BASE, "workload": TINY, "timing": False,
                                 "metrics": ["hit_rate"], "axes": axes}, sort_keys=False))
    return p


def _sim_rows(d) -> list[dict]:
    with (d / "points.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in csv.DictReader(f)]


def test_fit_workers_hand_computed():
    g = GiB
    assert fit_workers([3 * g, 2 * g, 2 * g, 1 * g], 4, 5 * g) == 2  # 3 + 2 = 5 fits, + 2 does not
    assert fit_workers([3 * g, 2 * g, 2 * g, 1 * g], 4, 4.9 * g) == 1
    assert fit_workers([1 * g, 2 * g, 1 * g], 8, 100 * g) == 3  # never more than the points
    assert fit_workers([1 * g] * 6, 4, 3.5 * g) == 3


def test_a_point_over_the_limit_refuses_the_sweep_before_generating(tmp_path, monkeypatch, capsys):
    # 10M synthetic requests: generation 10M x 140 B + workload 10M x 80 B + 400 MiB, about 2.4 GiB
    spec = _spec(tmp_path, {"synthetic.requests": [150, 10_000_000]})
    big = expand(load_spec(spec))[1]
    monkeypatch.setenv(ENV, "1.0")
    out = tmp_path / "out"
    assert main.main(["sweep", str(spec), "--out", str(out), "--workers", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"point {big.point_id} ({{\"synthetic.requests\": 10000000}}, seed 42)" in err[0]
    assert "generating 10,000,000 synthetic requests needs an estimated 2.4 GiB" in err[0]
    assert "over the 1.0 GiB limit; lower synthetic.requests, or raise KVSIM_MEMORY_LIMIT_GIB" in err[0]
    assert f"{spec}:" in err[0] and "Traceback" not in err[0]
    assert not out.exists()  # nothing written, not even the folder


def test_a_replay_over_the_limit_is_named_and_an_existing_sweep_is_kept(tmp_path, monkeypatch, capsys):
    # Both points generate the same 150 requests (33 kB); the replay's cache slots follow the HBM capacity
    # (2,000 tokens: 125 slots x 96 B) or, at 800,000 tokens, the workload's distinct blocks (5,182): 0.5 MB.
    spec = _spec(tmp_path, {"kv_capacity_tokens": [2000, 800_000]})
    points = expand(load_spec(spec))
    w, _ = workload_from_config(points[1].config)
    assert w.prefix_blocks().n_unique() == 5182
    out = tmp_path / "out"
    (out / "points").mkdir(parents=True)  # a finished sweep's files, which --overwrite would clear first
    for name in ("points.csv", "sweep.json", "checksums.json", "points/abc.json"):
        (out / name).write_text(name)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setenv(ENV, str((BASE_B + 256 * 1024) / GiB))  # 40 kB of replay fits, 0.5 MB does not
    assert main.main(["sweep", str(spec), "--out", str(out), "--overwrite", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"point {points[1].point_id} ({{\"kv_capacity_tokens\": 800000}}, seed 42): replaying 150 requests " \
           "on one node needs an estimated 0.4 GiB of memory (GiB: cache slots 0.0" in err[0]
    assert "lower synthetic.requests, or raise KVSIM_MEMORY_LIMIT_GIB" in err[0]
    assert 5182 * SLOT_B > 256 * 1024 > 125 * SLOT_B + 150 * (80 + 164)
    # --overwrite did not clear the finished sweep: the refusal came first
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_too_many_points_at_once_run_fewer_with_the_same_results(tmp_path, monkeypatch, capsys):
    # four points of ~400 MiB each (the interpreter and engine; the 150 requests add < 0.1 MiB): under a
    # 1 GiB limit 2 fit at once (800 MiB), 3 do not (1,200 MiB)
    spec = _spec(tmp_path, {"policies.eviction": ["lru", "fifo"], "kv_capacity_tokens": [2000, 8000]})
    monkeypatch.setenv(ENV, "1.0")
    out = tmp_path / "fit"
    res = run_sweep(load_spec(spec), out_dir=out, workers=4)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("sweep: 4 points at once would need up to 1.56 GiB together (largest 0.39 GiB), over "
                             "the 1.00 GiB limit; running 2 at once (0.78 GiB at most)")
    assert (res.ran, res.failed) == (4, 0)
    assert 1 <= len(res.workload_loads) <= 2  # the worker processes that ran points
    # the same numbers as each point run directly (as the sweep gave before: test_experiments_engine)
    for p, row in zip(expand(load_spec(spec)), _sim_rows(out), strict=True):
        w, _ = workload_from_config(p.config)
        rep = run_mode(p.config, "single", workload=w, policies=[p.config.policies.eviction], timing=False)
        assert rep["metrics"]["hit_rate"] == float(row["hit_rate"])


def test_the_driver_check_names_the_spec_line(tmp_path, monkeypatch):
    spec = _spec(tmp_path, {"synthetic.requests": [10_000_000]})
    monkeypatch.setenv(ENV, "1.0")
    with pytest.raises(InputError) as e:
        run_sweep(load_spec(spec), out_dir=tmp_path / "o", workers=1)
    assert e.value.where.startswith(f"{spec}:")


def test_pd_ratio_checks_each_run_and_runs_fewer_at_once_when_they_do_not_fit(monkeypatch, capsys):
    from experiments.pd_ratio import run_pd_ratio
    from sim.config import config_with, load_config
    from sim.modes.runner import pd_need
    from tests.conftest import ROOT
    from trace.formats import load_trace

    cfg = load_config(overrides=["model.name=llama-3-8b", "model.tp=1", "pd.gpus_per_rack=8"])
    w, _ = load_trace(ROOT / "tests" / "data" / "mooncake_small.jsonl")
    # each run: `run --mode pd`'s estimate of its one deployment, + the workload copy its worker unpickles
    runs = [pd_need(config_with(cfg, {"pd.prefill_ratio": p, "pd.decode_ratio": d}), w, "lru", ("pd",)).est.total
            + w.nbytes() for p, d in [(1, 1), (1, 2)]]
    one, both = max(runs), sum(runs)
    lim = (one + both) / 2  # one run fits, two do not
    monkeypatch.setenv(ENV, str(lim / GiB))
    a = run_pd_ratio(cfg, w, ratios=[(1, 1), (1, 2)], baseline=False, workers=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"experiment pd-ratio: 2 runs at once would need up to {both / GiB:.2f} GiB together (largest "
                   f"{one / GiB:.2f} GiB), over the {lim / GiB:.2f} GiB limit; running 1 at once ({one / GiB:.2f} GiB "
                   "at most); set --workers (experiments.workers) or KVSIM_MEMORY_LIMIT_GIB to choose"]
    monkeypatch.setenv(ENV, "100")
    b = run_pd_ratio(cfg, w, ratios=[(1, 1), (1, 2)], baseline=False, workers=2)
    assert capsys.readouterr().err == ""
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(a["rows"]) == strip(b["rows"])
    # a run that cannot fit alone refuses the experiment before any runs
    monkeypatch.setenv(ENV, str(min(runs) * 0.5 / GiB))
    with pytest.raises(InputError, match="as PD needs an estimated"):
        run_pd_ratio(cfg, w, ratios=[(1, 1), (1, 2)], baseline=False, workers=1)


def _ray_in_process(seen: list):
    """run_ray's stand-in: records the CPUs it was given and runs the points here (experiments.worker)."""
    from experiments.worker import run_point

    def run_ray(tasks, *, workers, address, on_result, ship_traces=False, memory=None, change=""):
        seen.append((workers, address))
        for t in tasks:
            on_result(run_point(t))

    return run_ray


def test_ray_local_instance_gets_fewer_cpus_and_a_cluster_is_left_to_its_workers(tmp_path, monkeypatch, capsys):
    import experiments.ray_backend as rb

    seen: list = []
    monkeypatch.setattr(rb, "run_ray", _ray_in_process(seen))
    monkeypatch.setattr(rb, "_import_ray", lambda: FakeRay([64.0]))  # a connected cluster of one 64 GiB node
    monkeypatch.setenv(ENV, "1.0")
    spec = _spec(tmp_path, {"kv_capacity_tokens": [2000, 4000, 8000]})
    res = run_sweep(load_spec(spec), out_dir=tmp_path / "local", workers=3, backend="ray")
    assert seen == [(2, None)] and res.failed == 0  # this machine: 2 of ~0.39 GiB fit under 1 GiB
    assert capsys.readouterr().err.startswith("sweep: 3 points at once")
    # joining a cluster: the driver's bound is not the nodes' (each point asks Ray for its estimate:
    # tests/experiments/test_ray_memory.py); each worker still checks its own machine
    big = _spec(tmp_path, {"kv_capacity_tokens": [2000, 800_000]}, "big")
    monkeypatch.setenv(ENV, str((BASE_B + 256 * 1024) / GiB))
    res = run_sweep(load_spec(big), out_dir=tmp_path / "remote", workers=2, backend="ray", address="auto")
    assert seen[1] == (2, "auto") and (res.ran, res.failed) == (2, 1)
    failed = [r for r in res.rows if r["status"] != "ok"]
    assert str(failed[0]["kv_capacity_tokens"]) == "800000"
    assert "replaying 150 requests on one node needs an estimated 0.4 GiB" in failed[0]["error"]


def test_a_pd_point_is_refused_on_run_mode_pds_own_estimate(tmp_path, monkeypatch, capsys):
    from sim.modes.runner import pd_need
    from tests.conftest import ROOT

    trace = ROOT / "tests" / "data" / "mooncake_small.jsonl"
    p = tmp_path / "pd.yaml"
    p.write_text(yaml.safe_dump({"name": "pd", "base": BASE, "workload": {"trace": str(trace)}, "mode": "pd",
                                 "metrics": ["hit_rate"], "axes": {"pd.prefill_ratio": [1]}}))
    (pt,) = expand(load_spec(p))
    w, _ = workload_from_config(pt.config)
    need = pd_need(pt.config, w, pt.config.policies.eviction)  # what `run --mode pd` checks (tests/modes)
    assert "as PD and colocated" in need.what
    monkeypatch.setenv(ENV, str(need.est.total * 0.999 / GiB))
    out = tmp_path / "o"
    assert main.main(["sweep", str(p), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{need.what} needs an estimated" in err and "set trace.limit" in err and not out.exists()
    monkeypatch.setenv(ENV, str(need.est.total * 1.001 / GiB))
    assert main.main(["sweep", str(p), "--out", str(out), "--quiet"]) == 0


def test_a_worker_keeps_other_workloads_within_its_budget(monkeypatch):
    """experiments.worker: the workloads of earlier points stay cached only within `cache_b` bytes (and five of
    them), the one in use always; a budget of 0 rebuilds each workload its point does not share."""
    from experiments import worker
    from sim.config.schema import load_config

    monkeypatch.setattr(worker, "_WORKLOADS", type(worker._WORKLOADS)())
    monkeypatch.setitem(worker.STATS, "workload_loads", 0)
    a, b = (load_config(overrides=[f"synthetic.requests={n}", "synthetic.sessions=15"]) for n in (150, 300))
    wa = worker.load_workload(a, cache_b=0)
    assert worker.load_workload(a, cache_b=0) is wa  # the one in use is kept whatever the budget
    worker.load_workload(b, cache_b=0)  # a's workload is dropped before b's is built
    assert list(worker._WORKLOADS.values())[0] is not wa and len(worker._WORKLOADS) == 1
    assert worker.load_workload(a, cache_b=0) is not wa and worker.STATS["workload_loads"] == 3
    wa = list(worker._WORKLOADS.values())[0]
    size = wa.nbytes()
    wb = worker.load_workload(b, cache_b=size)  # a (size bytes) fits the budget: kept
    assert worker.load_workload(a, cache_b=size) is wa and worker.STATS["workload_loads"] == 4
    assert wb.nbytes() > size  # b does not fit it: dropped when a is back in use
    assert [id(v) for v in worker._WORKLOADS.values()] == [id(wa)]
    monkeypatch.setattr(worker, "MAX_CACHED_WORKLOADS", 2)  # one other at most, whatever the bytes
    worker.load_workload(b, cache_b=10**12)
    c = load_config(overrides=["synthetic.requests=450", "synthetic.sessions=15"])
    worker.load_workload(c, cache_b=10**12)
    assert len(worker._WORKLOADS) == 2 and all(v is not wa for v in worker._WORKLOADS.values())


def test_each_peak_counts_the_workloads_its_worker_may_keep(tmp_path, monkeypatch):
    """experiments.memory_fit: a point's peak is its own estimate plus the other workloads its worker may keep,
    at most cache_b, lowered so the largest own peak plus it fits the limit; one workload: nothing added."""
    from experiments import worker
    from experiments.memory_fit import point_peaks

    points = expand(load_spec(_spec(tmp_path, {"synthetic.requests": [150, 300]})))
    sizes = [workload_from_config(p.config)[0].nbytes() for p in points]
    own = point_peaks(points[:1], False, "axes").peaks | point_peaks(points[1:], False, "axes").peaks
    assert point_peaks(points[:1], False, "axes").cache_b == worker.CACHE_B  # far under the machine's limit
    sp = point_peaks(points, False, "axes")
    assert sp.cache_b == worker.CACHE_B
    assert [sp.peaks[p.point_id] for p in points] == [own[points[0].point_id] + sizes[1],
                                                      own[points[1].point_id] + sizes[0]]
    top = max(own.values())
    monkeypatch.setenv(ENV, str((top + sizes[0] // 2) / GiB))  # half of the smaller workload left over
    sp = point_peaks(points, False, "axes")
    assert sp.cache_b == int(float(str((top + sizes[0] // 2) / GiB)) * GiB - top)
    assert [sp.peaks[p.point_id] for p in points] == [own[points[0].point_id] + sp.cache_b,
                                                      own[points[1].point_id] + sp.cache_b]
    assert max(sp.peaks.values()) <= top + sizes[0] // 2 + 1


def test_a_sweep_tells_its_workers_what_they_may_keep(tmp_path, monkeypatch):
    """The driver's cache_b reaches every task, and a worker honours it: workloads alternating between points
    are built once each with room to keep them, once per point without. The tasks run in this process
    (experiments.worker.run_point, a fresh cache), so the count depends on nothing but the order of points."""
    import experiments.engine as eng
    from experiments import worker

    spec = _spec(tmp_path, {"policies.eviction": ["lru", "fifo"], "synthetic.requests": [150, 300]})
    sent: list[list[int]] = []

    def in_process(tasks, workers, on_result, *a, **k):
        sent.append([t["cache_b"] for t in tasks])
        for t in tasks:
            on_result(worker.run_point(t))

    def sweep(name: str):
        monkeypatch.setattr(worker, "_WORKLOADS", type(worker._WORKLOADS)())
        monkeypatch.setitem(worker.STATS, "workload_loads", 0)
        return run_sweep(load_spec(spec), out_dir=tmp_path / name, workers=1)

    monkeypatch.setattr(eng, "run_local", in_process)
    res = sweep("keep")
    assert (res.failed, list(res.workload_loads.values())) == (0, [2]), res.rows
    monkeypatch.setattr("experiments.worker.CACHE_B", 0)
    res = sweep("drop")
    assert (res.failed, list(res.workload_loads.values())) == (0, [4]), res.rows
    assert sent == [[256 * 1024**2] * 4, [0] * 4]
    assert _sim_rows(tmp_path / "keep") == _sim_rows(tmp_path / "drop")


def test_a_workers_build_count_is_its_highest_whatever_order_results_arrive_in(tmp_path, monkeypatch):
    """Futures that finish together come back as a set (run_local): the count a process reports grows, so its
    largest is what it built. Measured under load: a pool's last two results came back swapped and the sweep
    reported 3 builds for 4."""
    import experiments.engine as eng
    from experiments import worker

    spec = _spec(tmp_path, {"policies.eviction": ["lru", "fifo"], "synthetic.requests": [150, 300]})

    def swapped(tasks, workers, on_result, *a, **k):
        out = []
        for t in tasks:
            out.append(worker.run_point(t))
        for r in out[:2] + out[:1:-1]:  # the last two in reverse
            on_result(r)

    monkeypatch.setattr(worker, "_WORKLOADS", type(worker._WORKLOADS)())
    monkeypatch.setitem(worker.STATS, "workload_loads", 0)
    monkeypatch.setattr("experiments.worker.CACHE_B", 0)
    monkeypatch.setattr(eng, "run_local", swapped)
    res = run_sweep(load_spec(spec), out_dir=tmp_path / "o", workers=1)
    assert (res.failed, list(res.workload_loads.values())) == (0, [4])
