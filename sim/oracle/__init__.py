"""Offline oracles: hit-rate bounds of a trace, capacity planning, the
heuristic estimator, its calibration and the correctness audit.

Modules: access (per-access arrays), replays (content / Belady / LRU),
flow (exact min-cost-flow optimum), bounds (the four bounds + the proof),
buckets, capacity, analysis (pools x tiers -> report), planning, estimator,
calibrate, audit (naive references), outputs (CSV/JSON/markdown EN+ZH),
commands (one entry point per CLI subcommand).
"""
