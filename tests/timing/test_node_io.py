"""NodeIO: a request's load step (parts, recompute, layer-wise ready and prefill end) by hand."""
import pytest
import simpy

from sim.config import load_config
from sim.timing.node_io import NodeIO

GB = 1e9


def _io(env, **over):
    sets = [f"{k}={v}" for k, v in over.items()]
    cfg = load_config(overrides=["hardware.dram.bandwidth_gb_s=10", "hardware.dram.latency_us=0",
                                 "hardware.ssd.bandwidth_gb_s=1", "hardware.ssd.latency_us=0", *sets])
    return NodeIO(env, cfg, n_workers=1, gpus_per_worker=1, block_bytes=int(1 * GB), layers=4)


def _run_request(env, io, tokens, blocks, inp, cost, t_gpu_free=0.0):
    out = {}

    def proc():
        ld = io.start_load(0, tokens, blocks, inp, cost)
        ready = ld.ready()
        if ready is not None:
            yield ready
        out["ready"] = env.now
        if env.now < t_gpu_free:
            yield env.timeout(t_gpu_free - env.now)
        yield from ld.prefill(ld.choice.prefill_s)
        out["done"] = env.now
        out["load"] = ld.load_s
        out["choice"] = ld.choice

    env.process(proc())
    env.run()
    return out


def per_token(s):
    return lambda new, cached: new * s


def test_dram_and_ssd_parts_load_concurrently_layerwise():
    # DRAM 2 blocks (2 GB at 10 GB/s = 0.2 s), SSD 1 block (1 GB at 1 GB/s = 1 s): load D = 1 s.
    # 100 new tokens at 10 ms = P = 1 s; L = 4: ready at max(D/L, D - P(L-1)/L) = 0.25;
    # done = max(0.25 + 1, 0.25 + 1, 1 + 0.25) = 1.25.
    env = simpy.Environment()
    io = _io(env)
    out = _run_request(env, io, (0, 200, 100), (2, 1), 400, per_token(0.01))
    assert not out["choice"].recomputed
    assert out["ready"] == pytest.approx(0.25)
    assert out["done"] == pytest.approx(1.25)
    assert out["load"] == pytest.approx(1.0)
    s = io.summary()
    assert s["tier_io"]["dram"]["read_bytes"] == 2 * GB and s["tier_io"]["ssd"]["read_bytes"] == 1 * GB


def test_gpu_busy_until_after_the_load_then_full_prefill():
    env = simpy.Environment()
    io = _io(env, **{"cache.load_overlap": "none"})
    out = _run_request(env, io, (0, 200, 100), (2, 1), 400, per_token(0.01), t_gpu_free=3.0)
    assert out["ready"] == pytest.approx(1.0) and out["done"] == pytest.approx(4.0)


def test_slow_ssd_part_is_recomputed_and_not_read():
    # SSD part: 10 blocks = 10 s; recomputing its 100 tokens costs 0.1 s -> recompute; DRAM part loaded.
    env = simpy.Environment()
    io = _io(env)
    out = _run_request(env, io, (0, 200, 100), (2, 10), 400, per_token(0.001))
    c = out["choice"]
    assert c.recomputed and c.tokens_used == 200 and c.recomputed_tokens == 100
    s = io.summary()
    assert s["recomputed_prefixes"] == 1 and s["recomputed_tokens"] == 100
    assert s["tier_io"]["ssd"]["read_bytes"] == 0 and s["tier_io"]["dram"]["read_bytes"] == 2 * GB
    # load 0.2 s, P = 0.2 s (200 new tokens): done = max(0.05 + 0.2, 0.2 + 0.05) = 0.25
    assert out["done"] == pytest.approx(0.25)


def test_always_loads_everything():
    env = simpy.Environment()
    io = _io(env, **{"cache.load_policy": "always"})
    out = _run_request(env, io, (0, 200, 100), (2, 10), 400, per_token(0.001))
    assert not out["choice"].recomputed and out["load"] == pytest.approx(10.0)


def test_write_backs_slow_ssd_reads_only_by_their_share():
    # a 10 GB write-back on the NVMe (write bw = read bw = 1 GB/s) is running; a 1 GB SSD load then
    # gets 0.9 GB/s: 1/0.9 s
    env = simpy.Environment()
    io = _io(env, **{"cache.load_overlap": "none"})
    io.write_back(0, 0, 10)
    out = _run_request(env, io, (0, 0, 100), (0, 1), 400, per_token(1.0))
    assert out["load"] == pytest.approx(1 / 0.9)
    assert io.summary()["tier_io"]["ssd"]["write_bytes"] == 10 * GB
