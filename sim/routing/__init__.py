"""Routing layer: routers that pick a worker, GPU or replica for a request.

Importing the package registers the built-in routers (sim.routing.registry).
"""
from sim.routing import blind, cache_aware, pd  # noqa: F401  (registers the built-in routers)
