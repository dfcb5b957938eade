"""On a Ray cluster (--address) each task asks Ray for its estimated peak as Ray's `memory` resource, and a
task no alive node can hold is refused before anything is submitted (experiments.ray_backend). Ray itself is
stood in for by a fake that runs the tasks here and records what each asked for, so these tests need no
`ray` package (tests/experiments/test_ray_cluster.py runs the same path on real raylets)."""
import csv
import math

import pytest
import yaml

import main
from experiments import ray_backend
from experiments.engine import expand, run_sweep
from experiments.memory_fit import point_peaks
from experiments.metrics import WALL_CLOCK_COLUMNS
from experiments.spec import load_spec
from sim.errors import InputError
from sim.modes.memory import AT_ONCE, BASE_B, GiB, one_pod_b
from tests.experiments.fake_ray import FakeRay

BASE = {"set": {"model.name": "llama-3-8b", "model.tp": 1, "hardware.gpus_per_node": 1,
                "hardware.dram.capacity_gib": 0, "hardware.ssd.capacity_gib": 0, "cache.engine": "python"}}
ADDRESS = "10.0.0.1:6379"  # never contacted: the fake stands in for the cluster


@pytest.fixture
def fake(monkeypatch):
    def install(node_gib: list[float]) -> FakeRay:
        f = FakeRay(node_gib)
        monkeypatch.setattr(ray_backend, "_import_ray", lambda: f)
        return f

    return install


def _spec(tmp_path, requests: list[int]):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"name": "raymem", "base": BASE, "timing": False, "metrics": ["hit_rate"],
                                 "workload": {"synthetic": {"kind": "multi_turn", "requests": 150, "sessions": 15}},
                                 "axes": {"synthetic.requests": requests}}, sort_keys=False))
    return p


def _rows(d) -> list[dict]:
    with (d / "points.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in csv.DictReader(f)]


def test_sweep_points_ask_ray_for_their_estimates_and_give_the_local_results(tmp_path, fake):
    spec = _spec(tmp_path, [150, 3000])
    sweep = load_spec(spec)
    want = point_peaks(expand(sweep), False, "axes", lim=math.inf).peaks
    assert want[expand(sweep)[1].point_id] > want[expand(sweep)[0].point_id] > BASE_B  # per point, not one size
    f = fake([2.0, 8.0])
    ray = run_sweep(sweep, out_dir=tmp_path / "ray", backend="ray", address=ADDRESS)
    assert ray.failed == 0
    assert f.asked == {pid: int(b) for pid, b in want.items()}
    run_sweep(load_spec(spec), out_dir=tmp_path / "local", workers=1)
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")


def test_local_ray_asks_for_no_memory(tmp_path, fake):
    """No --address: the driver fitted the points to this machine (experiments.memory_fit.fit_sweep)."""
    f = fake([0.01])  # would refuse every point if it were asked
    assert run_sweep(load_spec(_spec(tmp_path, [150])), out_dir=tmp_path / "o", backend="ray").failed == 0
    assert list(f.asked.values()) == [None]


def test_a_point_no_node_can_hold_is_refused_before_any_is_submitted(tmp_path, fake, capsys):
    spec = _spec(tmp_path, [150, 3000])
    points = expand(load_spec(spec))
    peaks = point_peaks(points, False, "axes", lim=math.inf).peaks
    small, big = (peaks[p.point_id] for p in points)
    node = (small + big) / 2 / GiB  # the small point fits a node, the big one none
    f = fake([node / 2, node])
    out = tmp_path / "out"
    assert main.main(["sweep", str(spec), "--out", str(out), "--backend", "ray", "--address", ADDRESS,
                      "--quiet", "--no-plot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0] == (f"error: --address: point {points[1].point_id} ({{\"synthetic.requests\": 3000}}, seed 42) "
                      f"needs an estimated {big / GiB:.2f} GiB of "
                      f"memory, more than any node of the Ray cluster has (largest: {node:.2f} GiB of Ray's "
                      "`memory` resource), so no node could run it; lower its workload (synthetic.requests, a "
                      "shorter trace) or its cache sizes, or add a node with more memory (its `ray start "
                      "--memory` resource)")
    assert f.asked == {} and not out.exists()  # nothing submitted, nothing written


def _pod_cfg():
    from sim.config.schema import load_config

    sets = ["model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=8", "cluster.racks=4",
            "cluster.gpus_per_rack=16", "cluster.remote_ssd_capacity_gib=0", "hardware.hbm.capacity_gib=0.05",
            "synthetic.requests=300", "synthetic.sessions=30", "cache.engine=python"]
    return load_config(overrides=sets)


def test_pods_ask_ray_for_the_largest_pods_estimate_and_merge_to_the_in_process_result(fake, monkeypatch):
    from experiments.pods import pod_runner
    from sim.modes import runner
    from sim.modes.partition import Partition
    from sim.modes.runner import run_mode

    cfg = _pod_cfg()
    checked = []
    need = runner._cluster_need
    monkeypatch.setattr(runner, "_cluster_need", lambda *a, **kw: checked.append(need(*a, **kw)) or checked[-1])
    ref = run_mode(cfg, "cluster", timing=False, partition=Partition(2))
    f = fake([4.0])
    par = run_mode(cfg, "cluster", timing=False, partition=Partition(2),
                   pod_runner=pod_runner("ray", address=ADDRESS))
    # the largest pod's parts once, in a process of its own: what the driver checked, one pod's worth
    est = checked[-1].est
    pod = sum(b for k, b in est.parts.items() if k.startswith(AT_ONCE))
    assert set(f.asked) == {"prefix_aware/lru/pod0", "prefix_aware/lru/pod1"}
    assert set(f.asked.values()) == {int(pod + BASE_B)} and pod > 0
    strip = ("wall_s", "sim_speed_req_s", "started_utc")
    from tests.golden.harness import diff

    assert [d for d in diff(ref, par) if not any(w in d for w in strip)] == []


def test_one_pod_b_counts_the_largest_pod_once_whatever_runs_at_once():
    from sim.modes.memory import Estimate

    def est(at_once: int) -> Estimate:  # as sim.modes.runner._partition_estimate writes it
        e = Estimate()
        e.add("workload and its pods", 7 * GiB)
        e.add(AT_ONCE + "cache slots", at_once * 3 * GiB)
        e.add(AT_ONCE + "workload", at_once * 1 * GiB)
        if at_once > 1:
            e.add(AT_ONCE + "base", at_once * BASE_B)
        return e

    assert one_pod_b(est(1), 1) == one_pod_b(est(3), 3) == 4 * GiB + BASE_B


def test_a_pod_no_node_can_hold_is_refused_naming_it(fake, capsys):
    from experiments.pods import pod_runner
    from sim.modes.partition import Partition
    from sim.modes.runner import run_mode

    f = fake([0.3])  # under a process's base alone
    with pytest.raises(InputError) as e:
        run_mode(_pod_cfg(), "cluster", timing=False, partition=Partition(2),
                 pod_runner=pod_runner("ray", address=ADDRESS))
    msg = str(e.value)
    assert e.value.where == "--address" and f.asked == {}
    assert msg.startswith("--address: pod task prefix_aware/lru/pod0 (and 1 more) needs an estimated ")
    assert "(largest: 0.30 GiB of Ray's `memory` resource)" in msg
    assert "use more pods (--pods K, or cluster.pods) or a smaller workload" in msg


def test_the_driver_builds_no_workload_over_its_own_limit(tmp_path, fake, monkeypatch):
    """A point whose generation exceeds the driver's limit is not generated there (trace.source refuses it
    first); it asks Ray for the generation's estimate, a lower bound of its worker's peak."""
    import trace.synthetic as synthetic
    from sim.modes.memory import ENV, synthetic_estimate

    points = expand(load_spec(_spec(tmp_path, [10_000_000])))
    gen = synthetic_estimate(points[0].config.synthetic).total
    monkeypatch.setenv(ENV, str(gen / 2 / GiB))
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: pytest.fail("generated in the driver"))
    assert point_peaks(points, False, "axes", lim=math.inf).peaks == {points[0].point_id: gen}
