"""ARC, Adaptive Replacement Cache (Megiddo & Modha, FAST 2003).

Resident lists T1 (seen once recently) and T2 (seen at least twice), ghost
lists B1/B2 (keys only, recently evicted from T1/T2), all OrderedDicts in LRU
order (oldest first), and the adaptive target ``p`` for |T1|.
Invariants: |T1|+|B1| <= c and |T1|+|T2|+|B1|+|B2| <= 2c.

The paper's REQUEST(x) is split across the tier's calls:

* ``touch``  - case I: x moves to the MRU end of T2.
* ``victim`` - REPLACE(x, p): evict T1's LRU into B1 when T1 is non-empty and
  (|T1| > p, or x is in B2 and |T1| == p, or T2 is empty); else T2's LRU
  into B2.
* ``insert`` - cases II/III (x in B1/B2: adapt p, x goes to T2) and IV
  (x is new: trim the ghost lists as the paper does, x goes to T1).

In the paper p adapts *before* REPLACE, and REPLACE looks at x; but
``victim()`` has no argument. So ``admit(x, pos)`` (which the tier calls on a
miss before making room; it always returns True here) remembers x as the
pending key and the p it would adapt to, and ``victim()`` uses both: with a
tier that calls admit -> victim* -> insert (as ``sim.policies.replay`` does)
this is exact ARC. Without the admit call, victim() uses the current p and no
x (p then adapts one miss late, at insert). When the cache is full and x is new
with |T1| == c the paper drops T1's LRU without a ghost; here victim() moves it
to B1 and insert() trims it again, same end state.

``remove(key)`` (promotion, invalidation) drops the key without a ghost entry.
"""
from __future__ import annotations

from collections import OrderedDict

from sim.policies.base import AccessContext, Policy, register


@register
class ARC(Policy):
    name = "arc"
    wants_incoming = True

    def __init__(self, capacity: int, ctx: AccessContext | None = None, **params) -> None:
        super().__init__(capacity, ctx, **params)
        self.p = 0.0
        self.t1: OrderedDict[int, None] = OrderedDict()
        self.t2: OrderedDict[int, None] = OrderedDict()
        self.b1: OrderedDict[int, None] = OrderedDict()
        self.b2: OrderedDict[int, None] = OrderedDict()
        self._pending: int | None = None  # key of the miss being served (from admit)
        self._pending_p = 0.0  # p after adapting to that miss

    def _adapted_p(self, key: int) -> float:
        """p after a request for non-resident `key` (unchanged unless a ghost hit)."""
        nb1, nb2 = len(self.b1), len(self.b2)
        if key in self.b1:
            return min(float(self.capacity), self.p + (1.0 if nb1 >= nb2 else nb2 / nb1))
        if key in self.b2:
            return max(0.0, self.p - (1.0 if nb2 >= nb1 else nb1 / nb2))
        return self.p

    def admit(self, key: int, pos: int) -> bool:
        if key not in self.t1 and key not in self.t2:
            self._pending = key
            self._pending_p = self._adapted_p(key)
        return True

    def touch(self, key: int, pos: int) -> None:
        self._pending = None  # a hit: whatever admit() announced was not served
        t1 = self.t1
        if key in t1:
            del t1[key]
            self.t2[key] = None
        else:
            self.t2.move_to_end(key)

    def victim(self) -> int:
        t1, t2 = self.t1, self.t2
        if not t1 and not t2:
            raise IndexError(f"{self.name}: victim() on an empty policy")
        x = self._pending
        p = self._pending_p if x is not None else self.p
        n1 = len(t1)
        if t1 and (not t2 or n1 > p or (n1 == p and x is not None and x in self.b2)):
            key = t1.popitem(last=False)[0]
            self.b1[key] = None
        else:
            key = t2.popitem(last=False)[0]
            self.b2[key] = None
        return key

    def insert(self, key: int, pos: int) -> None:
        c = self.capacity
        b1, b2 = self.b1, self.b2
        if key in b1 or key in b2:
            self.p = self._pending_p if key == self._pending else self._adapted_p(key)
            if key in b1:
                del b1[key]
            else:
                del b2[key]
            self.t2[key] = None
        else:
            t1 = self.t1
            if len(t1) + len(b1) >= c:
                if b1:
                    b1.popitem(last=False)
            elif len(t1) + len(self.t2) + len(b1) + len(b2) >= 2 * c and b2:
                b2.popitem(last=False)
            t1[key] = None
        self._pending = None

    def remove(self, key: int) -> None:
        if key in self.t1:
            del self.t1[key]
        else:
            self.t2.pop(key, None)

    def __contains__(self, key: int) -> bool:
        return key in self.t1 or key in self.t2

    def __len__(self) -> int:
        return len(self.t1) + len(self.t2)
