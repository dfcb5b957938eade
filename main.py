#!/usr/bin/env python3
"""kvsim command line; the commands live in sim.cli.

Run `python main.py --help` for the subcommands. With no arguments it runs
the main job: the single-node policy comparison on the built-in synthetic
workload of config.yaml.
"""
import sys

from sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
