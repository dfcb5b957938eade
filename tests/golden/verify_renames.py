"""Check a golden regeneration that renames names.

Run `python3 tests/golden/verify_renames.py REV` from the repository root.

Every value of the goldens at REV appears under its new name (docs/REPORT_SCHEMA.md "Renamed names"),
unchanged; config_hash is skipped (renamed config keys change the hash). Exit 1 otherwise.
"""
import json
import subprocess
import sys
from pathlib import Path

REN = {
    "requests_per_s": "sim_speed_req_s", "strict-prefix_opt": "strict_prefix_opt", "LRU": "lru",
    "capacity_gb": "capacity_gib", "runtime_reserve_gb": "runtime_reserve_gib", "kv_capacity_gb": "kv_capacity_gib",
    "remote_ssd_capacity_gb": "remote_ssd_capacity_gib", "kv_gb_per_gpu": "kv_gib_per_gpu", "gb": "gib",
    "capacity_gap": "capacity_gap_share", "policy_gap": "policy_gap_share",
    "strict-prefix_proven_optimal": "strict_prefix_proven_optimal", "prefill_utilization": "prefill_utilization_share",
    "gpu_utilization": "gpu_utilization_share", "utilization": "utilization_share", "hit_rate_lru": "lru_hit_rate",
    "arrival_rate_per_s": "arrival_rate_req_s", "net_share": "ttft_network_share", "moved_bytes": "transfer_bytes",
    "strict-prefix_opt_hit_rate": "strict_prefix_opt_hit_rate", "LRU_hit_rate": "lru_hit_rate",
    "strict-prefix_opt_block_hit_rate": "strict_prefix_opt_block_hit_rate", "LRU_block_hit_rate": "lru_block_hit_rate",
}
VOLATILE = {"config_hash"}


def flat(o, p=()):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from flat(v, p + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from flat(v, p + (str(i),))
    else:
        yield p, o


def main(rev: str) -> int:
    bad = checked = 0
    for f in sorted(Path("tests/golden/data").glob("*.json")):
        shown = subprocess.run(["git", "show", f"{rev}:{f}"], capture_output=True, text=True, check=True)
        old = json.loads(shown.stdout)
        new = dict(flat(json.loads(f.read_text())))
        for path, v in flat(old):
            if any(c in VOLATILE for c in path) or path[0].endswith(".md"):
                continue
            np_ = tuple(REN.get(c, c) for c in path)
            nv = REN.get(v, v) if isinstance(v, str) else v
            checked += 1
            if np_ not in new or new[np_] != nv:
                bad += 1
                if bad < 30:
                    print(f"{f.name}: {'.'.join(path)} = {v!r} -> {'.'.join(np_)} = {new.get(np_, '<missing>')!r}")
        extra = set(new) - {tuple(REN.get(c, c) for c in p) for p, _ in flat(old)}
        extra = {p for p in extra if not any(c in VOLATILE for c in p) and not p[0].endswith(".md")}
        if extra:
            print(f"{f.name}: {len(extra)} new paths, e.g. {sorted(extra)[:3]}")
    print(f"{checked} old values checked, {bad} not found unchanged under the new name")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "HEAD"))
