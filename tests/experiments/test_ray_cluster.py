"""Sweeps on a real multi-node Ray cluster: a head and a second raylet on this machine (`ray start --head`,
`ray start --address ...`, each with its own --temp-dir) stand in for two hosts. Points give the local
pool's results whether workers read the trace at its path or from Ray's object store, and a sweep whose
second node is killed mid-way keeps its finished points and completes on --resume. Each node offers
NODE_MEMORY_B of Ray's `memory` resource, which every task asks its estimate of: a point larger is refused
before anything runs."""
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from experiments.engine import run_sweep
from experiments.metrics import WALL_CLOCK_COLUMNS
from experiments.spec import load_spec
from sim.modes.memory import BASE_B, GiB
from tests.conftest import ROOT

ray = pytest.importorskip("ray", reason="ray is an optional extra (pip install 'ray>=2.9')")
pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))
# python engine: the shipped working directory has no numba cache, and compiling in every worker costs ~20 s
BASE = {"set": {"model.name": "llama-3-8b", "model.tp": 1, "hardware.gpus_per_node": 2, "cache.engine": "python",
                "hardware.dram.capacity_gib": 0.05, "hardware.ssd.capacity_gib": 0}}


# each node's `memory` resource: a process and 256 MiB (the tests' points and pods ask for less than 30 MiB more)
NODE_MEMORY_B = BASE_B + 256 * 1024**2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ray >= 2.59 authenticates local clusters with a token: the test's cluster gets its own, from the
# environment of its nodes and of this driver (never a token file of the machine).
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


def _start(args: list[str], temp: str) -> subprocess.Popen:
    # --block keeps `ray start` in the foreground: its process group holds the node's processes,
    # so the test ends exactly the processes it started (os.killpg), never a `ray stop` of the machine.
    return subprocess.Popen([RAY, "start", *args, "--num-cpus=1", f"--memory={NODE_MEMORY_B}",
                             f"--temp-dir={temp}", "--disable-usage-stats", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **AUTH})


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _alive_nodes(address: str) -> int:
    """Alive nodes of the cluster, asked from a fresh process (Ray reads its token settings at import)."""
    code = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))")
    r = subprocess.run([sys.executable, "-c", code, address], env={**os.environ, **AUTH}, capture_output=True,
                       text=True, timeout=60)
    return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0


@pytest.fixture(scope="module")
def cluster():
    if shutil.which(RAY) is None:
        pytest.skip("the `ray` command is not installed next to this Python")
    root = tempfile.mkdtemp(prefix="kvr", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _start(["--head", f"--port={port}", "--include-dashboard=false"], f"{root}/head")
    nodes = {"head": head}
    try:
        deadline = time.monotonic() + 60
        while True:
            if _alive_nodes(address) >= 1:
                break
            if time.monotonic() > deadline or head.poll() is not None:
                pytest.skip("`ray start --head` did not come up on this machine")
            time.sleep(1)
        nodes["worker"] = _start([f"--address={address}"], f"{root}/w1")
        while _alive_nodes(address) < 2:
            if time.monotonic() > deadline:
                pytest.skip("a second raylet did not join the cluster")
            time.sleep(1)
        yield {"address": address, "nodes": nodes}
    finally:
        for p in nodes.values():
            _kill(p)
        shutil.rmtree(root, ignore_errors=True)


def _spec(tmp_path: Path, workload: dict, hbm_gib: list[float]) -> Path:
    body = {"base": BASE, "workload": workload, "timing": False, "seeds": [1],
            "axes": {"hardware.hbm.capacity_gib": hbm_gib}}
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def _sweep(spec: Path, out: Path, *args: str, wait: bool = True):
    """The CLI as a user runs it against the cluster (a fresh process: Ray reads its token settings at import)."""
    cmd = [sys.executable, "main.py", "sweep", str(spec), "--out", str(out), "--no-plot", "--quiet", *args]
    env = {**os.environ, **AUTH}
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def _rows(d: Path) -> list[dict]:
    with (d / "points.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK_COLUMNS} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("traces")  # outside the repository: not shipped with the code
    shutil.copy(ROOT / "tests" / "data" / "mooncake_small.jsonl", d / "conv.jsonl")
    return d / "conv.jsonl"


def test_two_node_cluster_gives_the_local_results_from_a_path_or_the_object_store(cluster, trace, tmp_path):
    spec = _spec(tmp_path, {"trace": str(trace)}, [0.1, 0.3, 1, 3])  # 512-token blocks of 32 MiB
    local = run_sweep(load_spec(spec), out_dir=tmp_path / "local", workers=2)
    assert local.failed == 0
    addr = ["--backend", "ray", "--address", cluster["address"]]
    for name, extra in (("shared", []), ("shipped", ["--ship-traces"])):
        r = _sweep(spec, tmp_path / name, *addr, *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        assert _rows(tmp_path / name) == _rows(tmp_path / "local"), name
    # the shipped run's workers read a local copy of the object-store bytes
    copies = list(Path(tempfile.gettempdir()).glob("kvsim-traces/*/conv.jsonl"))
    assert copies and copies[0].read_bytes() == trace.read_bytes()


def test_pods_of_one_cluster_run_on_the_two_nodes_and_merge_to_the_in_process_result(cluster, tmp_path):
    sets = ["model.name=llama-3-8b", "model.tp=1", "hardware.gpus_per_node=8", "cluster.racks=4",
            "cluster.gpus_per_rack=16", "cluster.remote_ssd_capacity_gib=0", "hardware.hbm.capacity_gib=0.05",
            "synthetic.requests=300", "synthetic.sessions=30", "cache.engine=python"]
    args = [sys.executable, "main.py", "run", "--mode", "cluster", *[a for s in sets for a in ("--set", s)],
            "--pods", "2", "--quiet", "--no-plot"]
    env = {**os.environ, **AUTH}
    ref = subprocess.run([*args, "--report-json", str(tmp_path / "ref.json")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=240)
    par = subprocess.run([*args, "--backend", "ray", "--address", cluster["address"], "--out", str(tmp_path / "r")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert ref.returncode == par.returncode == 0, par.stderr[-2000:]
    a = json.loads((tmp_path / "ref.json").read_text())
    b = json.loads((tmp_path / "r" / "report.json").read_text())
    from tests.golden.harness import diff

    assert [d for d in diff(a, b) if not any(w in d for w in ("wall_s", "sim_speed_req_s", "started_utc"))] == []
    assert len(list((tmp_path / "r" / "pods").glob("pod-*.npz"))) == 2


def test_a_point_no_node_can_hold_is_refused_before_anything_is_written(cluster, tmp_path):
    # 200,000 requests: an estimate of about 2.6 GiB, over every node's 0.64 GiB
    spec = _spec(tmp_path, {"synthetic": {"kind": "multi_turn", "requests": 200_000, "sessions": 2000}}, [0.01])
    r = _sweep(spec, tmp_path / "out", "--backend", "ray", "--address", cluster["address"])
    assert r.returncode == 2, r.stderr[-2000:]
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --address: point ") and '({"hardware.hbm.capacity_gib": 0.01}, seed 1) needs an ' \
        'estimated ' in line
    assert f"(largest: {NODE_MEMORY_B / GiB:.2f} GiB of Ray's `memory` resource)" in line
    assert not (tmp_path / "out").exists()


# last: it kills the second node
def test_killed_node_loses_no_finished_point_and_resume_completes(cluster, tmp_path):
    spec = _spec(tmp_path, {"synthetic": {"kind": "multi_turn", "requests": 3000, "sessions": 100}},
                 [0.01 * (i + 1) for i in range(4)])
    out = tmp_path / "ray"
    addr = ["--backend", "ray", "--address", cluster["address"]]
    proc = _sweep(spec, out, *addr, wait=False)
    deadline = time.monotonic() + 180
    while not list((out / "points").glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    done_before = len(list((out / "points").glob("*.json")))
    assert proc.poll() is None and 1 <= done_before < 4  # killed mid-sweep: points still to run
    _kill(cluster["nodes"]["worker"])  # a point is done, others are running on both nodes
    _, err = proc.communicate(timeout=240)
    assert proc.returncode in (0, 1), err[-2000:]  # 1: some points failed, named in points.csv
    rows = _rows(out)
    assert len(rows) == 4 and sum(r["status"] == "ok" for r in rows) >= 1
    for r in rows:
        if r["status"] != "ok":
            assert f"point {r['point_id']}:" in r["error"] and "Ray" in r["error"]
    failed = sum(r["status"] != "ok" for r in rows)
    again = _sweep(spec, out, *addr, "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "sweep.json").read_text())["resume"]["reused"] == 4 - failed
    run_sweep(load_spec(spec), out_dir=tmp_path / "local", workers=2)
    assert _rows(out) == _rows(tmp_path / "local")
