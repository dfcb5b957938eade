"""`serve`: the web UI (calculators and the reports under results/)."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="web UI: calculators and the reports under results/")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--results-dir", default="results", help="directory of JSON reports and sweeps to show")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from web.app import serve

    return serve(args.host, args.port, args.results_dir)  # a busy port is one line, exit 2 (web.app)
