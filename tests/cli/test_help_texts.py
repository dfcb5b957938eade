"""Every command's and subcommand's --help formats: a stray '%' in a help string (argparse
%-formats them) crashed `run --help` with a traceback."""
import argparse

from sim.cli import build_parser


def _parsers(p: argparse.ArgumentParser, path: str = "main.py"):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_help_formats():
    seen = []
    for path, p in _parsers(build_parser()):
        text = p.format_help()
        assert "usage:" in text, path
        seen.append(path)
    assert "main.py run" in seen and len(seen) > 10
