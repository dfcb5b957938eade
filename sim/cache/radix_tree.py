"""SGLang-style radix tree of cached KV blocks with reference counts.

Block ids are prefix-identifying (``trace.workload``: the same id means the
same whole prefix), so every tree node is exactly one block and a block's
parent is the block before it in any request that holds it. The tree is the
KV memory of one model replica:

* ``match(blocks)``: longest cached prefix, in blocks (no side effect).
* ``lock(blocks, n)`` / ``unlock(blocks, n)``: a running request holds a
  reference on each of the first n nodes of its path (SGLang's
  ``inc_lock_ref``/``dec_lock_ref``). A node with a reference is never
  evicted; a node with children is never evicted either (leaves only), so
  a whole locked path stays resident.
* ``reserve(k)`` / ``unreserve(k)``: memory for KV that is being computed
  (not yet in the tree) or for decode growth; evicts unreferenced leaves as
  needed and fails without side effects when even evicting every
  unreferenced leaf would not make room.
* ``insert(blocks, start, end)``: the blocks a request computed enter the
  tree (consuming its reservation), referenced by that request.

Capacity counts nodes + reserved slots, in blocks. Eviction takes
unreferenced leaves in the order of a pluggable ``LeafOrder`` (LRU by
default); each evicted block is handed to ``on_evict`` so the owner can
spill it to DRAM/EIC. Every operation is O(blocks of the request) or
O(log n) per evicted block; nothing scans the tree.
"""
from __future__ import annotations

import heapq
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

from sim.policies.base import NEVER, AccessContext


class Node:
    """One cached block."""

    __slots__ = ("key", "parent", "children", "ref", "tick", "depth", "pos", "hits", "born", "ver")

    def __init__(self, key: int, parent: Node | None, depth: int, tick: int, pos: int) -> None:
        self.key = key
        self.parent = parent
        self.children = 0  # number of child nodes (ids are global, so a count is enough)
        self.ref = 0  # requests holding this node
        self.tick = tick  # access clock of the latest lock/insert
        self.depth = depth  # 0 = first block of a prompt
        self.pos = pos  # workload position of the latest access (policies read ctx arrays by it)
        self.hits = 0  # times matched by a later request
        self.born = tick  # access clock at insertion
        self.ver = 0  # invalidates stale heap entries of the leaf order

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Node({self.key}, depth={self.depth}, ref={self.ref}, children={self.children})"


# ------------------------------------------------------------------ eviction orders


class LeafOrder(ABC):
    """The order in which unreferenced leaves leave the tree."""

    name: ClassVar[str] = "base"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        self.capacity = capacity
        self.ctx = ctx
        # called with (key, position) of each node whose position the tree sets (lock, insert) when the order
        # reads positions lazily: a node pushed long after, an inner one its children left, may carry a released one
        self.positioned: Callable[[int, int], None] | None = None

    @abstractmethod
    def push(self, node: Node) -> None:
        """`node` became an evictable leaf (unreferenced, no children)."""

    @abstractmethod
    def forget(self, node: Node) -> None:
        """`node` is no longer an evictable leaf (referenced again, got a child, or evicted)."""

    @abstractmethod
    def pop(self) -> Node | None:
        """Remove and return the next victim among the evictable leaves (None if there is none)."""


LEAF_ORDERS: dict[str, type[LeafOrder]] = {}


def register_order(cls: type[LeafOrder]) -> type[LeafOrder]:
    LEAF_ORDERS[cls.name] = cls
    return cls


_DEPTH_BITS = 32  # keys pack (clock, -depth) into one int; depth < 2**32 blocks


class _HeapOrder(LeafOrder):
    """Evictable leaves in a heap keyed by ``key(node)``; stale entries are skipped lazily."""

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        super().__init__(capacity, ctx, **params)
        self._heap: list[tuple] = []
        self._seq = itertools.count()
        self._live = 0

    def key(self, node: Node):  # pragma: no cover - overridden
        raise NotImplementedError

    def push(self, node: Node) -> None:
        node.ver += 1
        heap = self._heap
        heapq.heappush(heap, (self.key(node), next(self._seq), node.ver, node))
        self._live += 1
        if len(heap) > 4 * self._live + 64:
            self._compact()

    def forget(self, node: Node) -> None:
        node.ver += 1
        self._live -= 1

    def pop(self) -> Node | None:
        heap = self._heap
        while heap:
            _k, _s, ver, node = heapq.heappop(heap)
            if ver == node.ver:
                node.ver += 1
                self._live -= 1
                return node
        return None

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[2] == e[3].ver]
        heapq.heapify(self._heap)


@register_order
class LruOrder(_HeapOrder):
    """Least recently locked first; deeper first on ties (a path is touched at one tick)."""

    name = "lru"

    def key(self, node: Node) -> int:
        return (node.tick << _DEPTH_BITS) - node.depth  # one int compares faster than a tuple


@register_order
class FifoOrder(_HeapOrder):
    """Oldest insertion first."""

    name = "fifo"

    def key(self, node: Node) -> int:
        return (node.born << _DEPTH_BITS) - node.depth


@register_order
class LfuOrder(_HeapOrder):
    """Fewest prefix hits first, then least recent."""

    name = "lfu"

    def key(self, node: Node) -> tuple:
        return (node.hits, (node.tick << _DEPTH_BITS) - node.depth)


@register_order
class BeladyOrder(_HeapOrder):
    """Furthest next use first (offline bound: reads ``ctx.next_use`` at the node's last access)."""

    name = "belady"
    ctx: AccessContext  # required here (checked in __init__)

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        if ctx is None:
            raise ValueError("belady needs the workload's AccessContext (next-use positions)")
        super().__init__(capacity, ctx, **params)

    def key(self, node: Node) -> tuple:
        nxt = int(self.ctx.next_use[node.pos]) if node.pos >= 0 else NEVER
        return (-nxt, -node.depth)


class PolicyOrder(LeafOrder):
    """Any policy of the ``sim.policies`` registry, fed only the evictable leaves.

    The policy sees a leaf when it becomes evictable (``insert``) and loses
    it when it stops being one (``remove``); its ``victim`` picks among them.
    A parent that becomes a leaf after its last child left enters the policy
    as a new key, so recency-based policies see it as fresh: the native
    ``lru``/``fifo``/``lfu``/``belady`` orders above are exact, this adapter
    is the policy's own approximation.
    """

    name = "policy"

    def __init__(self, capacity: int, ctx: AccessContext | None = None, policy: str = "lru", **params) -> None:
        from sim.policies import make_policy

        super().__init__(capacity, ctx)
        self.policy = make_policy(policy, max(1, capacity), ctx, **params)
        self.nodes: dict[int, Node] = {}
        if self.policy.keeps_positions:
            self.positioned = self.policy.keep_position

    def push(self, node: Node) -> None:
        self.nodes[node.key] = node
        self.policy.insert(node.key, max(0, node.pos))

    def forget(self, node: Node) -> None:
        if self.nodes.pop(node.key, None) is not None:
            self.policy.remove(node.key)

    def pop(self) -> Node | None:
        if not self.nodes:
            return None
        return self.nodes.pop(self.policy.victim())


def make_order(name: str, capacity: int, ctx: AccessContext | None = None, **params) -> LeafOrder:
    """A native leaf order by name, else the ``sim.policies`` policy of that name via PolicyOrder."""
    if name in LEAF_ORDERS:
        return LEAF_ORDERS[name](capacity, ctx, **params)
    import sim.policies  # noqa: F401  (registers every policy)
    from sim.policies.base import REGISTRY

    if name in REGISTRY:
        return PolicyOrder(capacity, ctx, policy=name, **params)
    known = sorted(set(LEAF_ORDERS) | set(REGISTRY))
    raise KeyError(f"unknown eviction order {name!r} (known: {', '.join(known)})")


# ------------------------------------------------------------------ the tree


class RadixTree:
    """Cached KV blocks of one replica; see the module docstring."""

    def __init__(self, capacity: int, order: str | LeafOrder = "lru", ctx: AccessContext | None = None,
                 on_evict: Callable[[list[tuple[int, int]]], None] | None = None, released: bool = False,
                 **params) -> None:
        """`released`: the replay releases access positions (AccessContext.accesses_done), so the order hears
        of each position the tree sets (LeafOrder.positioned)."""
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = int(capacity)
        self.order = order if isinstance(order, LeafOrder) else make_order(order, capacity, ctx, **params)
        self.nodes: dict[int, Node] = {}
        self.reserved = 0  # slots promised to KV not yet in the tree
        self.protected = 0  # nodes with ref > 0
        self.clock = 0  # access clock (one tick per lock/insert call)
        self.on_evict = on_evict
        self._positioned = self.order.positioned if released else None
        self.evictions = 0
        self.inserted = 0
        self.hit_blocks = 0

    # ---------------------------------------------------------- sizes
    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, key: int) -> bool:
        return key in self.nodes

    def free(self) -> int:
        """Slots neither used by a node nor reserved."""
        return self.capacity - len(self.nodes) - self.reserved

    def evictable(self) -> int:
        """Nodes that eviction could remove (no reference on them or any descendant)."""
        return len(self.nodes) - self.protected

    def available(self) -> int:
        """Slots a reservation could get: free + evictable."""
        return self.free() + self.evictable()

    # ---------------------------------------------------------- lookup
    def match(self, blocks: Sequence[int]) -> int:
        """Number of leading blocks of `blocks` cached in the tree."""
        nodes = self.nodes
        prev = None
        k = 0
        for b in blocks:
            n = nodes.get(b)
            if n is None or n.parent is not prev:
                break
            prev = n
            k += 1
        return k

    # ---------------------------------------------------------- references
    def lock(self, blocks: Sequence[int], n: int, pos0: int = -1, hit: bool = True) -> None:
        """Reference the first n blocks (they must be cached: n <= match(blocks)).

        ``pos0`` is the workload position of blocks[0] (positions feed the
        policies that read per-access arrays); ``hit`` counts the lock as
        prefix hits (LFU's counter).
        """
        if n <= 0:
            return
        self.clock += 1
        tick = self.clock
        nodes, order, positioned = self.nodes, self.order, self._positioned
        for k in range(n):
            node = nodes[blocks[k]]
            if node.ref == 0:
                if node.children == 0:
                    order.forget(node)
                self.protected += 1
            node.ref += 1
            node.tick = tick
            if pos0 >= 0:
                node.pos = pos0 + k
                if positioned is not None:
                    positioned(node.key, pos0 + k)
            if hit:
                node.hits += 1
        if hit:
            self.hit_blocks += n

    def unlock(self, blocks: Sequence[int], n: int) -> None:
        """Drop the references `lock`/`insert` took on the first n blocks."""
        nodes, order = self.nodes, self.order
        for k in range(n - 1, -1, -1):  # deepest first: it may become an evictable leaf
            node = nodes[blocks[k]]
            if node.ref <= 0:
                raise ValueError(f"unlock of block {blocks[k]} that holds no reference")
            node.ref -= 1
            if node.ref == 0:
                self.protected -= 1
                if node.children == 0:
                    order.push(node)

    # ---------------------------------------------------------- memory
    def reserve(self, k: int) -> bool:
        """Promise k slots, evicting unreferenced leaves as needed; False (no change) if impossible."""
        if k <= 0:
            return True
        if k > self.available():
            return False
        short = k - self.free()
        if short > 0:
            self.evict(short)
        self.reserved += k
        return True

    def fits(self, blocks: Sequence[int], n: int, k: int) -> bool:
        """Would ``reserve(k)`` succeed after ``lock(blocks, n)``? (no side effect)

        Locking takes the matched nodes that nobody references out of the
        evictable set, so they cannot make room for the reservation.
        """
        if k <= self.free():
            return True
        nodes = self.nodes
        newly = sum(1 for j in range(n) if nodes[blocks[j]].ref == 0)
        return k <= self.available() - newly

    def unreserve(self, k: int) -> None:
        if k < 0 or k > self.reserved:
            raise ValueError(f"unreserve({k}) with {self.reserved} reserved")
        self.reserved -= k

    def evict(self, k: int) -> list[tuple[int, int]]:
        """Evict up to k unreferenced leaves in the order's sequence; returns [(block id, position)]."""
        out: list[tuple[int, int]] = []
        nodes, order = self.nodes, self.order
        pop, push = order.pop, order.push
        n = 0
        while n < k:
            node = pop()
            if node is None:
                break
            del nodes[node.key]
            out.append((node.key, node.pos))
            n += 1
            parent = node.parent
            if parent is not None:
                parent.children -= 1
                if parent.children == 0 and parent.ref == 0:
                    push(parent)
        self.evictions += len(out)
        if out and self.on_evict is not None:
            self.on_evict(out)
        return out

    # ---------------------------------------------------------- insertion
    def insert(self, blocks: Sequence[int], start: int, end: int, pos0: int = -1) -> int:
        """Put blocks[start:end] in the tree, referenced by the caller; returns the nodes created.

        The caller holds a reference on blocks[:start] and reserved
        ``end - start`` slots; a block that another request inserted in the
        meantime is referenced instead of created and its slot is returned.
        """
        if end <= start:
            return 0
        if end - start > self.reserved:
            raise ValueError(f"insert of {end - start} blocks with only {self.reserved} reserved")
        nodes, order = self.nodes, self.order
        parent = nodes[blocks[start - 1]] if start > 0 else None
        if parent is not None and parent.ref <= 0:
            raise ValueError("insert below a prefix the caller does not reference")
        self.clock += 1
        tick = self.clock
        created = 0
        for k in range(start, end):
            b = blocks[k]
            node = nodes.get(b)
            if node is None:
                node = Node(b, parent, k, tick, pos0 + k if pos0 >= 0 else -1)
                nodes[b] = node
                if pos0 >= 0 and self._positioned is not None:
                    self._positioned(b, pos0 + k)
                if parent is not None:
                    parent.children += 1  # parent is referenced by the caller: not in the order
                created += 1
            else:
                if node.parent is not parent:
                    raise ValueError(f"block id {b} appears under two different prefixes")
                if node.ref == 0 and node.children == 0:
                    order.forget(node)
                node.tick = tick
            if node.ref == 0:
                self.protected += 1
            node.ref += 1
            parent = node
        self.reserved -= end - start
        self.inserted += created
        return created

    # ---------------------------------------------------------- checks
    def check(self) -> None:
        """Recount every invariant from scratch (tests only: O(n))."""
        children: dict[int, int] = {}
        for key, node in self.nodes.items():
            assert node.key == key
            if node.parent is not None:
                assert node.parent.key in self.nodes and self.nodes[node.parent.key] is node.parent
                children[node.parent.key] = children.get(node.parent.key, 0) + 1
            assert node.ref >= 0
        for key, node in self.nodes.items():
            assert node.children == children.get(key, 0), (key, node.children, children.get(key, 0))
        assert self.protected == sum(1 for n in self.nodes.values() if n.ref > 0)
        assert len(self.nodes) + self.reserved <= self.capacity
        assert self.reserved >= 0


__all__ = ["LEAF_ORDERS", "LeafOrder", "Node", "PolicyOrder", "RadixTree", "make_order", "register_order"]
