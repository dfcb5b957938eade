"""Simulation modes: single node, cluster, prefill/decode disaggregation; ``runner`` dispatches by name."""
