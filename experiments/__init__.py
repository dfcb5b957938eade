"""Experiment sweeps: a YAML spec -> a grid of config overrides -> one report per point.

* ``spec``: the spec schema (pydantic, unknown keys rejected) and loading.
* ``axes``: axis values (lists, ranges), config-key validation, derived keys.
* ``engine``: point expansion, deterministic point ids, local process pool,
  resume, failure recording, progress.
* ``worker``: what one process does for one point (workload cache per process).
* ``modes``: point evaluators (the ``sim.modes.runner`` modes + the ``oracle`` bounds).
* ``results``: points.csv / parquet / per-point JSON.
* ``ray_backend``: the same points on a Ray cluster (optional extra).
* ``plots``: PNGs of a finished sweep.
* ``console``: what ``python main.py sweep`` prints (progress bar, summary table).
* ``specs/``: the standard studies.
* ``pd_ratio``: ``python main.py experiment pd-ratio`` (PD mode, issue 6; separate from sweeps).
"""
