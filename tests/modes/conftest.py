"""Fixtures shared by the mode tests."""
from __future__ import annotations

import pytest

from sim.routing.base import Router
from sim.routing.registry import scope


@pytest.fixture
def fixed_router(monkeypatch):
    """A cluster router named "fixed" sending request i to ``plan[i]`` (set ``fixed_router.plan``)."""

    class Fixed(Router):
        name = "fixed"
        plan: list[int] = []

        def choose(self, req, blocks, session):
            return self.plan[req]

    monkeypatch.setitem(scope("cluster"), "fixed", Fixed)
    return Fixed
