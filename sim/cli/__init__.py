"""kvsim command line: parse, load config, call one library function, print/write.

Each command module registers its subparsers with ``add_parser(sub)`` and keeps
its heavy imports inside the command functions, so ``--help`` stays fast.
With no command, ``main`` runs the main job: the single-node policy comparison
on the built-in synthetic workload of config.yaml.
"""
from __future__ import annotations

import argparse
import sys

from sim.cli import calc, calibrate, learned, oracle, run, serve, sweep, trace_cmd
from sim.cli.common import EXIT_BAD_INPUT

# Registration order is the order of `python main.py --help`.
COMMANDS = (run, calc, trace_cmd, serve, learned, oracle, calibrate, sweep)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python main.py", epilog="--version prints the kvsim version and git commit.",
        description="kvsim: discrete-event simulator of the KV cache of LLM inference. "
                    "With no subcommand: the single-node policy comparison on the default workload.",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return ap


def parse_args(ap: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse, with "did you mean" for an unknown flag close to one the (sub)command knows."""
    import difflib

    args, extra = ap.parse_known_args(argv)
    if not extra:
        return args
    parser = ap  # the innermost (sub)command named in argv: its flags are the candidates
    for token in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and token in subs[0].choices:
            parser = subs[0].choices[token]
    known = [o for a in parser._actions for o in a.option_strings]
    words = []
    for token in extra:
        close = difflib.get_close_matches(token.split("=")[0], known, n=1, cutoff=0.7) if token.startswith("-") else []
        words.append(f"{token} (did you mean {close[0]}?)" if close else token)
    parser.error(f"unrecognized arguments: {' '.join(words)}")
    raise AssertionError("unreachable")  # parser.error exits


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit code: 0 ok, 1 a check failed, 2 bad input or a closed output pipe (one
    `error: ...` line), 130 ^C."""
    from sim.errors import InputError

    ap = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # `calibrate --trace ...` (no WHAT) is `calibrate estimator --trace ...`, as before `calibrate timing` existed.
    if argv[:1] == ["calibrate"] and (argv[1:2] or [""])[0] not in (*calibrate.WHATS, "-h", "--help"):
        argv.insert(1, "estimator")
    if argv[:1] == ["--version"]:
        from sim.version import git_commit, version

        print(f"kvsim {version()} (commit {git_commit() or 'unknown: not a git checkout'})")
        return 0
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        # `python main.py --quiet` etc.: the main job with run's options
        argv = ["run", "--compare", *argv]
    args = parse_args(ap, argv)
    try:
        if args.cmd is None:
            return run.cmd_default(args)
        return args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): one line instead of a traceback, as for any other input the
        # command cannot serve. Pointing stdout at /dev/null keeps the interpreter's final flush from
        # printing a second error.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        print("error: stdout: the reader closed the pipe (e.g. `| head`); the output was cut short", file=sys.stderr)
        return EXIT_BAD_INPUT
