"""kvsim's step-cost predictions against published measurements, as a markdown table.

Reads tests/validation/published.csv (columns in tests/validation/README.md),
predicts every row with the shipped defaults of config.yaml (or a config
given with --config, plus --set overrides applied on top of each row's model /
GPU / parallelism / dtypes) and prints one line per row: measured ms,
predicted ms, signed error, then the median and max |error| of the
validation rows and of the calibration rows. Not a timing benchmark: it runs
in well under a second.

    python benchmarks/validation_table.py [--table PATH] [--config PATH] [--set key=value ...] [--split validation]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.errors import InputError  # noqa: E402
from sim.timing.validation import Point, config_step_model, error_pct, load_points, predict_ms  # noqa: E402

TABLE = Path(__file__).resolve().parents[1] / "tests" / "validation" / "published.csv"


def markdown(points: list[Point], predicted: list[float]) -> str:
    lines = ["| row | engine | GPU | model | TP | metric | shape | split | measured ms | predicted ms | error |",
             "|---|---|---|---|---|---|---|---|---:|---:|---:|"]
    for p, pred in zip(points, predicted, strict=True):
        if p.metric == "prefill_ms":
            shape = f"prompt {p.prompt_tokens}" + (f" x{p.batch}" if p.batch > 1 else "")
        elif p.metric == "step_ms":
            shape = f"batch {p.batch}, KV {p.context}"
        else:
            shape = f"C={p.concurrency}, {p.prompt_tokens}/{p.output_tokens}"
        lines.append(f"| {p.id} | {p.engine} | {p.gpu} | {p.model} ({p.weight_dtype}) | {p.tp} | {p.metric} | "
                     f"{shape} | {p.split} | {p.measured_ms:.2f} | {pred:.2f} | "
                     f"{error_pct(pred, p.measured_ms):+.1f}% |")
    for split in ("validation", "calibration"):
        errs = [abs(error_pct(pr, p.measured_ms)) for p, pr in zip(points, predicted, strict=True)
                if p.split == split]
        if errs:
            lines.append(f"\n{split}: {len(errs)} rows, median |error| {statistics.median(errs):.1f}%, "
                         f"max {max(errs):.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(TABLE))
    ap.add_argument("--config", default=None, help="config file (default config.yaml)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--split", choices=("validation", "calibration"), default=None, help="only rows of this split")
    args = ap.parse_args(argv)
    try:
        points = [p for p in load_points(args.table) if args.split in (None, p.split)]
        predicted = [predict_ms(p, lambda q: config_step_model(q, args.config, args.overrides)) for p in points]
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(points, predicted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
