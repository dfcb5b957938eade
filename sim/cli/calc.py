"""`calc kv | hit-rate | reuse | latency`: the closed-form calculators."""
from __future__ import annotations

import argparse
import json
import sys

from sim.cli.common import EXIT_BAD_INPUT, EXIT_OK, make_console, split_list
from sim.config.kv_sizes import DEFAULT_RESERVE_GIB

DTYPES = ["fp32", "fp16", "bf16", "fp8", "int4"]
MAX_POINTS = 1000  # sensitivity points (each one a full hit-rate evaluation)


def add_parser(sub) -> None:
    p = sub.add_parser("calc", help="closed-form calculators (kv memory, hit rate, reuse break-even, step latency)")
    csub = p.add_subparsers(dest="calc_cmd", metavar="CALC", required=True)
    k = csub.add_parser("kv", help="KV bytes per token/block/request, memory budget, max concurrency")
    k.add_argument("--model", default="llama-3-70b", help="model preset or path to a HuggingFace config.json")
    k.add_argument("--gpu", default="h100-sxm", help="GPU preset")
    k.add_argument("--dtype", default="fp16", choices=DTYPES, help="KV dtype")
    k.add_argument("--weight-dtype", default="fp16", choices=DTYPES)
    k.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    k.add_argument("--pp", type=int, default=1, help="pipeline-parallel degree")
    k.add_argument("--contexts", default=None, help="context lengths, e.g. 1K,8K,32K,128K (default 1K..128K)")
    k.add_argument("--block-tokens", type=int, default=16, help="tokens per KV block (paged allocation)")
    k.add_argument("--reserve-gb", type=float, default=DEFAULT_RESERVE_GIB,
                   help="GiB per GPU kept for activations and CUDA graphs (4)")
    k.add_argument("--json", action="store_true", help="JSON instead of tables")
    k.add_argument("--list", action="store_true", help="list model and GPU presets")
    p.set_defaults(func=cmd_calc)

    # Defaults live in sim.analytic.inputs, so None = not given.
    h = csub.add_parser("hit-rate", help="Little's-law hit-rate estimate of a multi-turn chat workload")
    h.add_argument("--model", default=None, help="model preset or path to a HuggingFace config.json (llama-3-70b)")
    h.add_argument("--gpu", default=None, help="GPU preset (h100-sxm)")
    h.add_argument("--gpus", type=int, default=None, help="GPUs serving the workload (8)")
    h.add_argument("--tp", default=None, type=_tp_arg,
                   help="tensor-parallel degree or auto (default auto: smallest power of two leaving half the "
                        "memory to KV)")
    h.add_argument("--pp", type=int, default=None, help="pipeline-parallel degree (1)")
    h.add_argument("--dtype", dest="kv_dtype", default=None, choices=DTYPES, help="KV dtype (fp16)")
    h.add_argument("--weight-dtype", default=None, choices=DTYPES)
    h.add_argument("--arrival-rate", type=float, default=None, help="new conversations per second (2)")
    h.add_argument("--turns", type=float, default=None, help="turns per conversation (5)")
    h.add_argument("--turns-dist", default=None, choices=["fixed", "geometric"],
                   help="conversation lengths: all = --turns (fixed), or geometric with that mean")
    h.add_argument("--interval-s", type=float, default=None, help="seconds between turns (60)")
    h.add_argument("--prompt-tokens", type=int, default=None, help="new user tokens per turn (400)")
    h.add_argument("--response-tokens", type=int, default=None, help="generated tokens per turn (200)")
    h.add_argument("--system-prompt-tokens", type=int, default=None, help="shared system prompt tokens (0)")
    h.add_argument("--system-prompts", type=int, default=None, help="distinct system prompts (1)")
    h.add_argument("--weight-overhead", type=float, default=None, help="memory per weight byte (1)")
    h.add_argument("--reserve-gb", type=float, default=None,
                   help="GiB per GPU kept for activations and CUDA graphs (4, as calc kv and the simulator)")
    h.add_argument("--memory-gb", type=float, default=None, help="GPU memory per GPU, GiB (default: the preset)")
    h.add_argument("--kv-budget-gb", type=float, default=None,
                   help="KV-cache memory per GPU, GiB (default: memory - weights x overhead - reserve)")
    h.add_argument("--cache-outputs", action="store_const", const=True, default=None,
                   help="generated tokens are cached too (default: prompt blocks only, like the simulator)")
    h.add_argument("--target-hit-rate", type=float, default=None,
                   help="0-1: memory needed and the smallest change (GPUs, memory, fp8 KV) that reaches it")
    h.add_argument("--vary", default=None, help="sensitivity: input to vary (arrival_rate, turns, interval_s, "
                                                 "prompt_tokens, response_tokens, system_prompt_tokens, gpus, "
                                                 "kv_budget_gb, memory_gb; dashes work too: arrival-rate)")
    h.add_argument("--values", default=None, help="sensitivity values, comma-separated (default: a range)")
    h.add_argument("--points", type=int, default=13, help="points of the default sensitivity range")
    h.add_argument("--plot", default=None, help="PNG of the sensitivity curve (default --vary kv_budget_gb)")
    h.add_argument("--json", action="store_true", help="JSON instead of tables")
    h.set_defaults(func=cmd_calc_hit_rate)

    r = csub.add_parser("reuse", help="KV load bandwidth at which reusing a cached prefix beats recomputing it")
    r.add_argument("--model", default="llama-3-70b", help="model preset or path to a HuggingFace config.json")
    r.add_argument("--gpu", default="h100-sxm", help="GPU preset")
    r.add_argument("--gpus", type=int, default=8, help="GPUs of the tensor-parallel group serving a request")
    r.add_argument("--tp", type=int, default=None, help="tensor-parallel degree (default: --gpus)")
    r.add_argument("--prefix-tokens", type=int, default=8192, help="cached prefix length, tokens")
    r.add_argument("--profile", default=None,
                   help="config overlay whose compute: keys set the step-cost model of the recompute time "
                        "(default: config.yaml's; this replaced --mfu)")
    r.add_argument("--dtype", default="fp16", choices=DTYPES, help="KV dtype")
    r.add_argument("--link-gb-s", type=float, default=None, help="your load bandwidth per GPU, GB/s: compare")
    r.add_argument("--json", action="store_true", help="JSON instead of a table")
    r.set_defaults(func=cmd_calc_reuse)

    t = csub.add_parser("latency", help="prefill and decode-step times of one replica from the step-cost model")
    t.add_argument("--model", required=True, help="model preset or path to a HuggingFace config.json")
    t.add_argument("--gpu", required=True, help="GPU preset")
    t.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    t.add_argument("--pp", type=int, default=1, help="pipeline-parallel degree")
    t.add_argument("--prompt-tokens", type=int, required=True, help="new prompt tokens to prefill")
    t.add_argument("--cached-tokens", type=int, default=0, help="prompt tokens already in the KV cache")
    t.add_argument("--batch", type=int, default=1, help="decode batch (and prompts prefilled in one iteration)")
    t.add_argument("--context", type=int, default=None,
                   help="KV tokens each decoding request reads (default: prompt + cached tokens)")
    t.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp8"],
                   help="weight dtype; fp8 also uses the GPU's FP8 peak")
    t.add_argument("--profile", default=None, help="config overlay whose compute: keys set the step-cost model")
    t.add_argument("--json", action="store_true", help="JSON instead of a table")
    t.set_defaults(func=cmd_calc_latency)


def cmd_calc(args: argparse.Namespace) -> int:
    console = make_console()
    if args.calc_cmd == "kv":
        from sim.analytic.kv_memory import kv_report, render_kv

        if args.list:
            from sim.config.gpus import GPUS
            from sim.config.models import PRESETS

            console.print("models: " + ", ".join(sorted(PRESETS)))
            console.print("gpus:   " + ", ".join(sorted(GPUS)))
            return EXIT_OK
        from sim.analytic.kv_memory import parse_contexts
        from sim.errors import InputError

        contexts = list(parse_contexts(args.contexts)) if args.contexts else None
        kw = {} if contexts is None else {"contexts": contexts}
        try:
            rep = kv_report(args.model, args.gpu, kv_dtype=args.dtype, weight_dtype=args.weight_dtype,
                            tp=args.tp, pp=args.pp, block_tokens=args.block_tokens, reserve_gb=args.reserve_gb,
                            **kw)
        except InputError as e:
            raise _reraise_with_flag(e) from None
        _emit(rep, args.json, render_kv)
        return EXIT_OK
    print(f"error: calc {args.calc_cmd} is not available yet", file=sys.stderr)
    return EXIT_BAD_INPUT


def _tp_arg(text: str) -> int | str:
    """--tp: a positive integer or "auto"."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer or 'auto': {text!r}") from None


def _analytic_inputs(args: argparse.Namespace) -> dict:
    """The calc hit-rate flags the user gave (the rest default in sim.analytic.inputs)."""
    from sim.analytic.inputs import HitRateInputs

    vals = {k: getattr(args, k) for k in HitRateInputs.model_fields if getattr(args, k, None) is not None}
    if args.tp == "auto":
        vals.pop("tp")
    return vals


# Config keys the calculators' library code names, and the flag each one is.
_KEY_FLAGS = {"model.name": "--model", "hardware.gpu": "--gpu", "model.tp": "--tp", "model.pp": "--pp",
              "model.kv_dtype": "--dtype", "model.weight_dtype": "--weight-dtype"}


def _reraise_with_flag(e):
    """An InputError naming an input field or config key, re-raised naming the flag the user typed."""
    from sim.analytic.inputs import cli_flag
    from sim.errors import InputError

    msg = str(e).removeprefix(f"{e.where}: ")
    if e.where in _KEY_FLAGS:
        return InputError(msg, where=_KEY_FLAGS[e.where])
    if e.where and e.where.isidentifier():
        return InputError(msg, where=cli_flag(e.where))
    return e


def _check_finite(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """NaN and infinity in float flags: refused as such (NaN fails every range check silently)."""
    import math

    from sim.analytic.inputs import cli_flag
    from sim.errors import InputError

    for k in names:
        v = getattr(args, k, None)
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"must be a finite number (got {v})", where=cli_flag(k))


def cmd_calc_hit_rate(args: argparse.Namespace) -> int:
    import math

    from sim.analytic import calc_hit_rate
    from sim.analytic.render import plot_sensitivity, render_hit_rate
    from sim.errors import InputError

    _check_finite(args, ("arrival_rate", "turns", "interval_s", "weight_overhead", "reserve_gb", "memory_gb",
                         "kv_budget_gb",
                         "target_hit_rate"))
    if args.target_hit_rate is not None and not 0 < args.target_hit_rate <= 1:
        raise InputError(f"must be in (0, 1] (got {args.target_hit_rate})", where="--target-hit-rate")
    if not 2 <= args.points <= MAX_POINTS:
        raise InputError(f"must be 2..{MAX_POINTS} (got {args.points})", where="--points")
    try:
        values = [float(v) for v in split_list(args.values)] if args.values else None
    except ValueError:
        raise InputError(f"not a comma-separated list of numbers: {args.values[:80]!r}", where="--values") from None
    if values is not None and (len(values) > MAX_POINTS or not all(math.isfinite(v) for v in values)):
        raise InputError(f"at most {MAX_POINTS} finite numbers", where="--values")
    png = _plot_path(args.plot) if args.plot else None
    # input names as flags spell them (arrival-rate) or as the JSON does (arrival_rate)
    vary = args.vary.strip().removeprefix("--").replace("-", "_") if args.vary else None
    vary = vary or ("kv_budget_gb" if args.plot else None)
    try:
        rep = calc_hit_rate(_analytic_inputs(args), target_hit_rate=args.target_hit_rate, vary=vary,
                            values=values, points=args.points)
    except InputError as e:
        raise _reraise_with_flag(e) from None
    _emit(rep, args.json, render_hit_rate)
    if png is not None:
        png = plot_sensitivity(rep, png)
        print(f"plot: {png}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def _plot_path(text: str):
    """--plot: the PNG file to write (".png" added when there is no suffix, as matplotlib would)."""
    from pathlib import Path

    from sim.errors import InputError
    from sim.io_safe import output_file

    p = Path(text)
    if p.is_dir():
        raise InputError(f"{text[:200]!r} is a directory; give a file name such as {str(p / 'curve.png')!r}",
                         where="--plot")
    if p.suffix.lower() != ".png":
        p = p.with_name(p.name + ".png")
    return output_file(p, "--plot")


def cmd_calc_reuse(args: argparse.Namespace) -> int:
    from sim.analytic import reuse_breakeven
    from sim.analytic.render import render_reuse
    from sim.config import load_config
    from sim.errors import InputError
    from sim.timing.step_cost import step_params

    try:
        params = step_params(load_config(profile=args.profile).compute) if args.profile else None
        rep = reuse_breakeven(args.model, args.gpu, gpus=args.gpus, prefix_tokens=args.prefix_tokens, tp=args.tp,
                              params=params, kv_dtype=args.dtype, link_gb_s=args.link_gb_s)
    except InputError as e:
        raise _reraise_with_flag(e) from None
    _emit(rep, args.json, render_reuse)
    return EXIT_OK


def cmd_calc_latency(args: argparse.Namespace) -> int:
    from sim.analytic.latency import latency_report
    from sim.analytic.render import render_latency
    from sim.errors import InputError

    try:
        rep = latency_report(args.model, args.gpu, tp=args.tp, pp=args.pp, prompt_tokens=args.prompt_tokens,
                             cached_tokens=args.cached_tokens, batch=args.batch, context=args.context,
                             dtype=args.dtype, profile=args.profile)
    except InputError as e:
        raise _reraise_with_flag(e) from None
    _emit(rep, args.json, render_latency)
    return EXIT_OK


def _emit(rep: dict, as_json: bool, render) -> None:
    """A calculator's report: JSON on stdout, or its rendered table(s) (one or a list) on the console."""
    if as_json:
        print(json.dumps(rep, indent=1))
        return
    console = make_console()
    tables = render(rep)
    for t in tables if isinstance(tables, list) else [tables]:
        console.print(t)
