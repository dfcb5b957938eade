"""`calibrate WHAT`: fit a model to measurements.

* `calibrate estimator` - the heuristic hit-rate estimator against the oracle on a trace (sim.cli.oracle);
* `calibrate timing` - the step-cost efficiencies against measured step times (sim.cli.calibrate_timing).

A bare `calibrate --trace ...` (no WHAT) means `calibrate estimator ...`: main() inserts it, so command
lines written before `calibrate timing` existed run unchanged.
"""
from __future__ import annotations

from sim.cli.calibrate_timing import add_parser as add_timing_parser
from sim.cli.oracle import add_calibrate_parser as add_estimator_parser

WHATS = ("estimator", "timing")


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="fit to measurements: `estimator` (hit-rate estimator, the default) "
                                         "or `timing` (step-cost efficiencies)",
                       description="Fit a model to measurements. Without WHAT: `estimator`.")
    what = p.add_subparsers(dest="calibrate_what", metavar="WHAT", required=True)
    add_estimator_parser(what)
    add_timing_parser(what)
