"""Configuration layer: the pydantic schema (``schema``), model specs (``models``), GPU specs (``gpus``),
KV sizes (``kv_sizes``), units.

The package re-exports the schema's public names, so ``from sim.config import load_config`` works.
"""
from sim.config.schema import DEFAULT_CONFIG, Config, SyntheticCfg, config_hash, config_with, current_key, load_config

__all__ = ["DEFAULT_CONFIG", "Config", "SyntheticCfg", "config_hash", "config_with", "current_key", "load_config"]
