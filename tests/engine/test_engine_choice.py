"""cache.engine resolution (sim.engine.choice), shared by every mode."""
from __future__ import annotations

import pytest

from sim.engine.choice import ENGINES, resolve_engine
from sim.errors import InputError


def test_resolve_engine() -> None:
    assert ENGINES == ("auto", "compiled", "python")
    assert resolve_engine("auto", "lru", True)
    assert not resolve_engine("auto", "learned", False)
    assert resolve_engine("compiled", "lru", True)
    assert not resolve_engine("python", "lru", True)
    assert not resolve_engine("python", "learned", False)
    with pytest.raises(InputError, match=r"cache.engine: policy 'learned' has no compiled kernel \(compiled: lru\)"):
        resolve_engine("compiled", "learned", False, compiled="lru")
    with pytest.raises(InputError, match="has no compiled cluster cache"):
        resolve_engine("compiled", "lfu", False, kernel="compiled cluster cache")
    with pytest.raises(InputError, match="unknown cache engine 'fast'"):
        resolve_engine("fast", "lru", True)
