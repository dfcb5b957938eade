"""Run a golden case in-process and reduce its outputs to comparable data."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from tests.golden.cases import WALL_KEYS, argv_for

DATA = Path(__file__).resolve().parent / "data"


def _strip(obj: Any) -> Any:
    """Drop wall-clock keys at any depth (their values differ run to run)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in WALL_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _read(path: Path, out: Path) -> Any:
    text = path.read_text().replace(str(out), "{out}")
    if path.suffix == ".json":
        return _strip(json.loads(text))
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        return [{k: v for k, v in r.items() if k not in WALL_KEYS} for r in rows]
    return text


def run_case(case: dict, out: Path) -> dict[str, Any]:
    """Outputs of one case: {file name: parsed content} (plus the exit code)."""
    import main as cli

    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(argv_for(case, out))
    result: dict[str, Any] = {"exit_code": rc}
    files = case["files"]
    if files == "stdout":
        result["stdout"] = json.loads(buf.getvalue())
    elif files == "oracle":
        for p in sorted((out / "oracle").iterdir()):
            result[p.name] = _read(p, out)
    else:
        for name in files:
            result[name] = _read(out / name, out)
    return result


def diff(expected: Any, actual: Any, path: str = "", rel: float = 0.0) -> list[str]:
    """Every field where the two differ, as 'path: expected != actual' lines; `rel` > 0: floats within that
    relative tolerance count as equal."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = [f"{path}/{k}: missing" for k in expected if k not in actual]
        lines += [f"{path}/{k}: unexpected" for k in actual if k not in expected]
        for k in expected:
            if k in actual:
                lines += diff(expected[k], actual[k], f"{path}/{k}", rel)
        return lines
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: length {len(expected)} != {len(actual)}"]
        return [line for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for line in diff(e, a, f"{path}[{i}]", rel)]
    if rel and type(expected) is float and type(actual) is float and math.isclose(expected, actual, rel_tol=rel):
        return []
    if type(expected) is not type(actual) or expected != actual:
        return [f"{path}: {expected!r} != {actual!r}"]
    return []
