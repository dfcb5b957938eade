"""Prefill/decode disaggregation: setup, simulator, batching, prefill scheduling, KV transfer, request state."""
