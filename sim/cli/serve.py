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

    _check_port_free(args.host, args.port)
    return serve(args.host, args.port, args.results_dir)


def _check_port_free(host: str, port: int) -> None:
    """A busy port or an unusable address is bad input (one line, exit 2), not uvicorn's startup failure (3)."""
    import socket

    from sim.errors import InputError

    if not 0 < port < 65536:
        return  # serve() names the range
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise InputError(f"cannot resolve {host!r}: {getattr(e, 'strerror', None) or e}", where="--host") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "busy"
        try:
            s.bind(addr)
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror}", where="--port") from None
