"""How long a prefill takes when its cached prefix's KV is still being loaded: layer-wise or not.

A request's cached prefix must reach HBM before the prefill can use it.
``cache.load_overlap`` says whether the load and the compute overlap:

* ``none``: the prefill starts when the whole prefix is in:
  ``done = max(start, D) + P``.
* ``layerwise``: the KV arrives one layer at a time and the prefill computes
  one layer at a time (LMCache / SGLang HiCache layer-wise loading). With
  ``L`` layers, a load of ``D`` seconds delivers layer ``l`` at ``l D / L``
  (the bytes are the same for every layer, the rate taken as constant over
  the load), and layer ``l`` of a prefill of ``P`` seconds takes ``P / L``
  and can start when layer ``l - 1`` is computed and layer ``l`` has arrived.
  With ``c_0 = start`` (the compute could start; 0 = at once)::

      c_l = max(c_{l-1}, l D / L) + P / L

  Unrolled, ``c_L = max(start + P, max_l (l D / L + (L - l + 1) P / L))``,
  and the inner term is linear in ``l``, so its maximum is at ``l = 1`` or
  ``l = L``::

      done = max(start + P, D / L + P, D + P / L)

  Load-bound (D > P): the compute trails the last layer by one layer's
  compute. Compute-bound: it waits only for the first layer.

All times are measured from the moment the load starts. ``ready_offset_s``
is the latest the compute may start without making ``done`` any later -
the time a request can join its GPU's queue without stalling it.
"""
from __future__ import annotations

from typing import Literal

Overlap = Literal["layerwise", "none"]
OVERLAPS: tuple[Overlap, ...] = ("layerwise", "none")


def _check(load_s: float, prefill_s: float, layers: int, overlap: str) -> None:
    if load_s < 0 or prefill_s < 0:
        raise ValueError(f"times must be >= 0 (load {load_s}, prefill {prefill_s})")
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    if overlap not in OVERLAPS:
        raise ValueError(f"unknown overlap {overlap!r} (known: {', '.join(OVERLAPS)})")


def prefill_done_s(load_s: float, prefill_s: float, layers: int, overlap: str = "layerwise",
                   start_s: float = 0.0) -> float:
    """Seconds from "load starts" to "prefill done" (see the module docstring)."""
    # _check's tests, inlined (the load-or-recompute choice calls this per cut per request)
    if load_s < 0 or prefill_s < 0 or layers < 1 or (overlap != "layerwise" and overlap != "none"):
        _check(load_s, prefill_s, layers, overlap)
    start_s = start_s if start_s > 0.0 else 0.0  # max(0.0, start_s) without the call (the same for -0.0, nan)
    if load_s == 0:
        return start_s + prefill_s
    if overlap == "none":
        return max(start_s, load_s) + prefill_s
    return max(start_s + prefill_s, load_s / layers + prefill_s, load_s + prefill_s / layers)


def ready_offset_s(load_s: float, prefill_s: float, layers: int, overlap: str = "layerwise") -> float:
    """Seconds after the load starts at which the compute can start without finishing later than
    ``prefill_done_s(load_s, prefill_s, layers, overlap)``: D for ``none``,
    ``max(D / L, D - P (L - 1) / L)`` layer-wise."""
    return prefill_done_s(load_s, prefill_s, layers, overlap) - prefill_s


__all__ = ["OVERLAPS", "Overlap", "prefill_done_s", "ready_offset_s"]
