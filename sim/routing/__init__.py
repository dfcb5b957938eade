"""Routing layer: routers that pick a worker, GPU or replica for a request.

Every public module of this package is imported here, so the routers each
defines register themselves (``sim.routing.registry``): adding a router is
adding one file.
"""
import importlib
import pkgutil

# Sorted by module name, so the registry's order does not depend on the file system.
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")
