"""Radix tree: hypothesis property tests against a brute-force model, plus hand-made cases."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.cache.radix_tree import LEAF_ORDERS, RadixTree, make_order

# ------------------------------------------------------------------ helpers


class Ids:
    """Prefix-identifying block ids: one id per distinct token prefix (as Mooncake hash_ids)."""

    def __init__(self) -> None:
        self.by_prefix: dict[tuple, int] = {}
        self.prefix: dict[int, tuple] = {}

    def blocks(self, tokens) -> list[int]:
        out = []
        for k in range(1, len(tokens) + 1):
            p = tuple(tokens[:k])
            if p not in self.by_prefix:
                self.by_prefix[p] = len(self.by_prefix)
                self.prefix[self.by_prefix[p]] = p
            out.append(self.by_prefix[p])
        return out


def lcp(a, b) -> int:
    k = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        k += 1
    return k


ops = st.lists(
    st.one_of(
        st.tuples(st.just("req"), st.lists(st.integers(0, 2), min_size=1, max_size=6)),
        st.tuples(st.just("release"), st.integers(0, 50)),
        st.tuples(st.just("evict"), st.integers(1, 4)),
        st.tuples(st.just("match"), st.lists(st.integers(0, 2), min_size=0, max_size=7)),
    ),
    max_size=60,
)


def run_model(capacity: int, script, order: str = "lru"):
    """Drive a tree with the request protocol of the simulators and check it after every step.

    For LRU every eviction batch is compared with a brute-force replay of
    the rule on the model's own state: repeatedly remove the unreferenced
    leaf with the oldest access (deepest first on ties).
    """
    ids = Ids()
    held: list[tuple[list[int], int]] = []  # (blocks, n referenced) per running request
    locking: list[int] = []  # blocks referenced by the request being admitted (not in `held` yet)
    tick: dict[int, int] = {}  # the model's own access clock per block id (one tick per lock/insert call)
    evicted_batches = []

    def expected_lru(batch):
        present = set(tree.nodes) | set(batch)
        refd = {b for blocks, n in held for b in blocks[:n]} | set(locking)
        out = []
        for _ in batch:
            parents = {ids.by_prefix[ids.prefix[k][:-1]] for k in present if len(ids.prefix[k]) > 1}
            leaves = [k for k in present if k not in refd and k not in parents]
            v = min(leaves, key=lambda k: (tick[k], -len(ids.prefix[k])))
            out.append(v)
            present.remove(v)
        return out

    def on_evict(ev):
        batch = [k for k, _ in ev]
        evicted_batches.append(batch)
        if order == "lru":
            assert batch == expected_lru(batch)

    tree = RadixTree(capacity, order, on_evict=on_evict)
    clock = 0
    for op, arg in script:
        before = len(evicted_batches)
        if op == "req":
            blocks = ids.blocks(arg)
            m = tree.match(blocks)
            need = len(blocks) - m
            fits = tree.fits(blocks, m, need)
            if fits:
                tree.lock(blocks, m)
                if m:
                    clock += 1
                    for b in blocks[:m]:
                        tick[b] = clock
                locking[:] = blocks[:m]
                assert tree.reserve(need)
                tree.insert(blocks, m, len(blocks))
                if need:
                    clock += 1
                    for b in blocks[m:]:
                        tick[b] = clock
                locking.clear()
                held.append((blocks, len(blocks)))
            else:
                # fits() said no: then a reservation after locking must fail too (no side effects)
                snapshot = (len(tree), tree.reserved, tree.protected)
                tree.lock(blocks, m, hit=False)
                assert not tree.reserve(need)
                tree.unlock(blocks, m)
                assert (len(tree), tree.reserved, tree.protected) == snapshot
                if m:
                    clock += 1
                    for b in blocks[:m]:
                        tick[b] = clock
        elif op == "release" and held:
            blocks, n = held.pop(arg % len(held))
            tree.unlock(blocks, n)
        elif op == "evict":
            tree.evict(arg)
        elif op == "match":
            blocks = ids.blocks(arg) if arg else []
            stored = [ids.prefix[k] for k in tree.nodes]
            brute = max((lcp(p, tuple(arg)) for p in stored), default=0)
            assert tree.match(blocks) == brute
        # ---- invariants after every step
        tree.check()
        assert len(tree) + tree.reserved <= capacity
        for blocks, n in held:  # never evict a referenced (locked) node
            assert all(b in tree for b in blocks[:n])
        for batch in evicted_batches[before:]:
            locked = {b for blocks, n in held for b in blocks[:n]}
            assert not locked & set(batch)
            for b in batch:  # a leaf when it left: nothing left in the tree extends its prefix
                p = ids.prefix[b]
                assert not any(len(ids.prefix[k]) > len(p) and ids.prefix[k][: len(p)] == p for k in tree.nodes)
    return tree, held


# ------------------------------------------------------------------ properties


@settings(max_examples=250, deadline=None)
@given(st.integers(1, 12), ops)
def test_lru_tree_against_brute_force(capacity, script):
    run_model(capacity, script, "lru")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 10), ops, st.sampled_from(["fifo", "lfu", "s3fifo", "arc"]))
def test_other_orders_keep_the_invariants(capacity, script, order):
    # s3fifo / arc come from the sim.policies registry through the PolicyOrder adapter
    run_model(capacity, script, order)


# ------------------------------------------------------------------ hand-made cases


def test_match_lock_insert_evict_by_hand():
    t = RadixTree(4)
    a = [1, 2, 3]
    assert t.reserve(3)
    t.insert(a, 0, 3)
    assert (len(t), t.reserved, t.protected) == (3, 0, 3)
    assert t.match([1, 2, 3, 4]) == 3 and t.match([1, 2, 9]) == 2 and t.match([7]) == 0
    # a second request shares [1, 2] and adds 5: 5 slots needed in 4 -> only 1 free, nothing evictable
    b = [1, 2, 5]
    t.lock(b, 2)
    assert not t.fits(b, 0, 2) and t.reserve(1)
    t.insert(b, 2, 3)
    assert len(t) == 4 and t.evictable() == 0
    assert not t.reserve(1)  # every node referenced
    t.unlock(a, 3)  # node 3 is now an unreferenced leaf; 1, 2 still held by b
    assert t.evictable() == 1
    assert t.reserve(1)  # evicts 3
    assert 3 not in t and t.evictions == 1
    t.unreserve(1)
    t.unlock(b, 3)
    assert t.evictable() == 3
    assert t.evict(10) == [(5, -1), (2, -1), (1, -1)]  # leaf first, then the parents that became leaves


def test_lru_order_and_deepest_first_on_ties():
    t = RadixTree(10)
    for seq in ([1, 2], [3], [1, 4]):
        m = t.match(seq)
        t.lock(seq, m)
        t.reserve(len(seq) - m)
        t.insert(seq, m, len(seq))
        t.unlock(seq, len(seq))
    # ticks: [1,2] at insert, [3] later, [1] re-locked with [4] last -> order 2, 3, then 4 (deeper than 1), then 1
    assert [k for k, _ in t.evict(4)] == [2, 3, 4, 1]


def test_insert_of_a_block_another_request_added_returns_the_slot():
    t = RadixTree(5)
    t.reserve(2)
    t.reserve(2)
    assert t.insert([1, 2], 0, 2) == 2
    assert t.insert([1, 2], 0, 2) == 0  # both exist: referenced, slots returned
    assert t.reserved == 0 and len(t) == 2 and t.nodes[1].ref == 2


def test_inconsistent_ids_are_refused():
    t = RadixTree(5)
    t.reserve(2)
    t.insert([1, 2], 0, 2)
    t.reserve(2)
    with pytest.raises(ValueError, match="two different prefixes"):
        t.insert([3, 2], 0, 2)


def test_make_order_names():
    assert {"lru", "fifo", "lfu", "belady"} <= set(LEAF_ORDERS)
    assert make_order("s3fifo", 4).name == "policy"
    with pytest.raises(KeyError, match="unknown eviction order"):
        make_order("nope", 4)
