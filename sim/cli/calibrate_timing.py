"""`calibrate timing`: fit the step-cost efficiencies to measured points and write a `--profile` overlay."""
from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from sim.cli.common import EXIT_OK, add_config_args, load_cfg, make_console, split_list
from sim.io_safe import atomic_write_text

DESCRIPTION = """\
Fit the step-cost model's figures (compute: gemm_efficiency, gemm_efficiency_fp8, ridge_softness,
attn_efficiency, hbm_efficiency, comm_efficiency, comm_latency_us, layer_overhead_us,
iteration_overhead_ms) to measured points by least squares on log(predicted / measured), print the
residuals and write a profile overlay for `run --profile`.
Only the parameters the points identify are fitted (--fit to choose); the rest keep the config's values.

Point files (--format, default: detected):
  csv         columns gpu, model, tp, prompt_tokens, cached_tokens, batch, context, measured_prefill_ms,
              measured_step_ms (optional pp, dtype). measured_prefill_ms = one iteration of `batch` prefill
              chunks of prompt_tokens - cached_tokens new tokens over cached_tokens cached ones;
              measured_step_ms = one decode iteration of `batch` requests of `context` KV tokens each.
              Either measured column may be empty.
  vllm-bench  `vllm bench serve --save-result --save-detailed` JSON (needs --gpu, --model, --tp). Prefill
              points: every request's TTFT (seconds in the file) when max_concurrency is 1, otherwise only
              the smallest TTFT (the request that queued least), each as a batch-1 prefill of its input
              length. Step point: the median of all inter-token latencies, at batch = max_concurrency (or
              Little's law: sum of request latencies / duration) and context = mean(input + output/2).
  vidur       Vidur profiling files in Vidur's data/profiling layout: <gpu>/<model>/mlp.csv (per layer,
              the four projection GEMMs, which the step-cost linear term stands for; fits
              gemm_efficiency, ridge_softness, hbm_efficiency, layer_overhead_us) and
              network/<gpu>_<box>/all_reduce.csv (comm_efficiency, comm_latency_us). GPU and model come
              from the directory names when they name presets (else --gpu / --model).
"""


def add_parser(sub) -> None:
    p = sub.add_parser("timing", help="fit the step-cost efficiencies to measured step times",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(p)
    p.add_argument("--points", action="append", required=True, metavar="FILE",
                   help="measured points (repeatable: the files are fitted together)")
    p.add_argument("--format", default=None, choices=["csv", "vllm-bench", "vidur"], help="default: detected")
    g = p.add_argument_group("what the points were measured on (required when the files do not say)")
    g.add_argument("--gpu", dest="dep_gpu", default=None, help="GPU preset")
    g.add_argument("--model", dest="dep_model", default=None, help="model preset or HuggingFace config.json")
    g.add_argument("--tp", dest="dep_tp", type=int, default=None, help="tensor-parallel degree (also a filter)")
    g.add_argument("--pp", dest="dep_pp", type=int, default=None, help="pipeline stages")
    p.add_argument("--fit", default=None, help="comma-separated compute keys to fit (default: those identified)")
    p.add_argument("--out", required=True, help="profile overlay YAML to write")
    p.add_argument("--label", default=None, help="compute.calibration text (default: files, date, points, residual)")
    p.add_argument("--show", type=int, default=50,
                   help="per-point rows printed; above it, the SHOW worst after the fit (default 50)")
    p.add_argument("--quiet", action="store_true", help="no table")
    p.set_defaults(func=cmd_calibrate_timing)


def cmd_calibrate_timing(args: argparse.Namespace) -> int:
    from sim.cli.tables import calibration_tables
    from sim.errors import InputError
    from sim.timing.calibrate import fit, overlay_text
    from sim.timing.points import read_points, resolve

    out = Path(args.out)
    if not out.parent.is_dir():
        raise InputError("directory does not exist", where=f"--out {out.parent}")
    if out.is_dir():
        raise InputError("is a directory", where=f"--out {out}")
    if args.dep_tp is not None and args.dep_tp < 1 or args.dep_pp is not None and args.dep_pp < 1:
        raise InputError("must be >= 1", where="--tp/--pp")
    cfg = load_cfg(args)
    points = [pt for f in args.points for pt in read_points(f, args.format)]
    points = resolve(points, args.dep_gpu, args.dep_model, args.dep_tp, args.dep_pp)
    res = fit(points, cfg, split_list(args.fit) if args.fit is not None else None)
    s = res.summary()
    d0 = points[0].dep
    label = args.label or (
        f"{' + '.join(args.points)} ({d0.gpu}, {d0.model}), {datetime.date.today().isoformat()}, "
        f"{len(points)} points, median |err| {s['median_abs_err_before_pct']:.1f}% -> "
        f"{s['median_abs_err_after_pct']:.1f}%")
    text = overlay_text(res, label, args.points)
    console = make_console(args.quiet)
    for table in calibration_tables(res, args.show):
        console.print(table)
    console.print(f"fitted {', '.join(res.fitted) or 'nothing'}; kept {', '.join(res.kept) or 'nothing'}"
                  + ("" if res.converged else " [yellow](least squares did not converge)[/]"))
    console.print(f"median |err| {s['median_abs_err_before_pct']:.2f}% -> {s['median_abs_err_after_pct']:.2f}%, "
                  f"max {s['max_abs_err_before_pct']:.2f}% -> {s['max_abs_err_after_pct']:.2f}%")
    atomic_write_text(out, text)
    console.print(f"wrote {out}")
    return EXIT_OK
