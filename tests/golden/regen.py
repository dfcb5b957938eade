"""Rewrite the golden files: `python tests/golden/regen.py [CASE ...]` from the repository root.

Only for a change that is meant to alter results; say so in the commit.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.golden.cases import CASES, MOONCAKE  # noqa: E402
from tests.golden.harness import DATA, run_case  # noqa: E402


def main(names: list[str]) -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    for name in names or list(CASES):
        case = CASES[name]
        if case.get("needs_mooncake") and not MOONCAKE.exists():
            print(f"skip {name}: {MOONCAKE} absent")
            continue
        with tempfile.TemporaryDirectory() as d:
            result = run_case(case, Path(d))
        (DATA / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
