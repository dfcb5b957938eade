"""Session prefetch (sim.timing.prefetch): hand-computed cases, idle-link priority, accounting invariants."""
import pytest
import simpy

from sim.config import load_config
from sim.modes.single import run_single
from sim.timing.priority_link import PriorityLink
from tests.conftest import micro_workload

BLOCK_BYTES = 16 * 131072  # llama-3-8b fp16, 16-token blocks
GiB = 1024**3
BW = 25e9


# The model and the one DRAM link every prefetch test prices by hand (25 GB/s, 10 us, no host bridge),
# shared by the single, cluster and PD cases (tests/modes/test_prefetch_cluster_pd.py).
LINK_SETS = [
    "model.name=llama-3-8b", "model.kv_dtype=fp16", "model.tp=1", "hardware.gpu=h100-sxm",
    "hardware.dram.bandwidth_gb_s=25", "hardware.dram.latency_us=10", "hardware.host_bridge_gb_s=0",
    "cache.load_policy=always", "cache.load_overlap=none",
]


def _cfg(hbm_blocks: int, dram_blocks: int = 1024):
    sets = [
        *LINK_SETS, "hardware.gpus_per_node=1", f"hardware.hbm.capacity_gib={hbm_blocks * BLOCK_BYTES / GiB}",
        f"hardware.dram.capacity_gib={dram_blocks * BLOCK_BYTES / GiB}", "hardware.ssd.capacity_gib=0",
        "cluster.router=session_affinity",
    ]
    return load_config(overrides=sets)


def _two_turns():
    # session 0: turns at 0, 10, 20 s, each extending the last. One-turn sessions 1.. arrive every second with
    # 4 new blocks each: the 12-block HBM keeps a block about 3 s after its last use (the retention horizon:
    # 12 blocks / 39 blocks in 10 s), so session 0's context is down in DRAM long before its next turn.
    # The prefetch is issued half a horizon (1.5 s) before the predicted turn (at 20 s) and takes a quarter of
    # the HBM at most (3 blocks: all of the context).
    reqs, arr, sess = [[1, 2]], [0.0], [0]
    for k, t in enumerate([*range(1, 10), *range(11, 20)]):
        if t == 11:
            reqs.append([1, 2, 3])
            arr.append(10.0)
            sess.append(0)
        reqs.append([100 + 4 * k + j for j in range(4)])
        arr.append(float(t))
        sess.append(k + 1)
    reqs.append([1, 2, 3, 4])
    arr.append(20.0)
    sess.append(0)
    return micro_workload(reqs, arr, sessions=sess, outputs=[1] * len(reqs))


LAST = 20  # session 0's third turn (the last request)


def test_prefetch_turns_a_dram_load_into_hbm_hits():
    w = _two_turns()
    lru = run_single(_cfg(12), w, "lru", timing=True)
    pre = run_single(_cfg(12), w, "session_prefetch", timing=True)
    # without prefetch turn 3 finds its 3-block context in DRAM; with it, in HBM
    assert lru.hit_blocks[LAST].tolist() == [0, 3, 0]
    assert pre.hit_blocks[LAST].tolist() == [3, 0, 0]
    # ... and its TTFT drops by exactly the load: 10 us latency + 3 blocks over 25 GB/s
    load_s = 10e-6 + 3 * BLOCK_BYTES / BW
    assert lru.ttft_s[LAST] - pre.ttft_s[LAST] == pytest.approx(load_s, rel=1e-6)
    assert pre.load_s[LAST] == 0.0
    p = pre.prefetch
    assert p["prefetched_blocks"] == 3 and p["prefetch_used_blocks"] == 3 and p["prefetch_wasted_blocks"] == 0
    assert p["prefetch_bytes"] == 3 * BLOCK_BYTES
    # the other requests are untouched
    for i in range(LAST):
        assert lru.ttft_s[i] == pytest.approx(pre.ttft_s[i])


def test_prefetch_needs_room_and_a_prediction():
    # session 0's second turn follows its first: no think time of its own yet, nothing to predict
    w = micro_workload([[1, 2], list(range(10, 22)), [1, 2, 3]], [0.0, 5.0, 10.0], sessions=[0, 1, 0],
                       outputs=[1, 1, 1])
    pre = run_single(_cfg(12), w, "session_prefetch", timing=True)
    assert pre.prefetch["prefetched_blocks"] == 0 and pre.prefetch["prefetches_issued"] == 0


def late_turn_workload():
    """As _two_turns, but session 0's third turn comes at 40 s, not at the predicted 20 s: one-turn sessions
    keep arriving every second and push the prefetched context out again -> wasted."""
    w = _two_turns()
    reqs = [w.block_ids[w.block_offsets[i]:w.block_offsets[i + 1]].tolist() for i in range(LAST)]
    arr = (w.arrival_ms[:LAST] / 1000).tolist()
    sess = w.session_id[:LAST].tolist()
    for k, t in enumerate(range(20, 40)):
        reqs.append([1000 + 4 * k + j for j in range(4)])
        arr.append(float(t))
        sess.append(100 + k)
    reqs.append([1, 2, 3, 4])
    arr.append(40.0)
    sess.append(0)
    return micro_workload(reqs, arr, sessions=sess, outputs=[1] * len(reqs))


def test_accounting_invariant_and_waste():
    late = late_turn_workload()
    p = run_single(_cfg(12), late, "session_prefetch", timing=True).prefetch
    assert p["prefetched_blocks"] >= 3
    assert p["prefetch_wasted_blocks"] >= 3 and p["prefetch_used_blocks"] == 0
    assert p["prefetched_blocks"] == p["prefetch_used_blocks"] + p["prefetch_wasted_blocks"] \
        + p["prefetch_resident_blocks"]


def test_prefetch_is_deterministic():
    w = _two_turns()
    a = run_single(_cfg(12), w, "session_prefetch", timing=True)
    b = run_single(_cfg(12), w, "session_prefetch", timing=True)
    assert a.prefetch == b.prefetch and a.ttft_s.tolist() == b.ttft_s.tolist()


# ---------------------------------------------------------------- the idle-priority link class
def _link():
    env = simpy.Environment()
    return env, PriorityLink(env, 1e9, 1e9, writeback_share=0.1)


def test_prefetch_alone_gets_the_read_bandwidth():
    env, link = _link()
    done = []
    link.serve(2e9, "prefetch").callbacks.append(lambda _e: done.append(env.now))
    env.run()
    assert done == [pytest.approx(2.0)]


def test_demand_read_never_waits_behind_prefetch():
    env, link = _link()
    t = {}
    link.serve(2e9, "prefetch").callbacks.append(lambda _e: t.setdefault("pf", env.now))

    def read():
        yield env.timeout(0.5)
        ev = link.serve(1e9, "read")
        yield ev
        t["read"] = env.now

    env.process(read())
    env.run()
    # the read takes exactly 1 s as if alone; the prefetch pauses for it: 0.5 s + 1 s paused + 1.5 s
    assert t["read"] == pytest.approx(1.5)
    assert t["pf"] == pytest.approx(3.0)


def test_prefetch_waits_for_write_backs_too():
    env, link = _link()
    t = {}
    link.serve(1e9, "write").callbacks.append(lambda _e: t.setdefault("w", env.now))
    link.serve(1e9, "prefetch").callbacks.append(lambda _e: t.setdefault("pf", env.now))
    env.run()
    assert t["w"] == pytest.approx(1.0)  # the write has the link to itself
    assert t["pf"] == pytest.approx(2.0)
