"""How fast `trace convert --from sharegpt` is: N ShareGPT-style conversations, approximation tokenizer.

Writes a ShareGPT JSON list to a temporary folder (seeded): 1-6 human/gpt
pairs per conversation (mean 2.1), 60% of conversations open with one of 20
system prompts (~400 bytes), user messages lognormal around 250 bytes, replies
around 800 bytes (ShareGPT's shape: replies several times longer than
questions). Then runs `python main.py trace convert --from sharegpt` on it in a
child process (one core) and prints its wall time, conversations/s,
requests/s, the file sizes and the child's peak RSS.

    python benchmarks/bench_convert_chat.py [--conversations 100000] [--block-tokens 16] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _texts(rng: random.Random):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(5000)]
    corpus = " ".join(rng.choice(words) for _ in range(400_000))

    def text(mean_bytes: float) -> str:
        n = max(1, int(rng.lognormvariate(0, 0.8) * mean_bytes * 0.73))  # lognormal with the given mean
        a = rng.randrange(0, len(corpus) - n - 1) if n < len(corpus) - 1 else 0
        return corpus[a:a + n]
    return text


def write_dataset(path: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    text = _texts(rng)
    systems = [text(400) for _ in range(20)]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[")
        for i in range(n):
            msgs = []
            if rng.random() < 0.6:
                msgs.append({"from": "system", "value": rng.choice(systems)})
            for _ in range(min(6, 1 + int(rng.expovariate(1 / 1.5)))):
                msgs.append({"from": "human", "value": text(250)})
                msgs.append({"from": "gpt", "value": text(800)})
            fh.write(("," if i else "") + json.dumps({"id": f"c{i}", "conversations": msgs}))
        fh.write("]")


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=100_000)
    ap.add_argument("--block-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "sharegpt.json"), os.path.join(d, "out.jsonl")
        t0 = time.perf_counter()
        write_dataset(src, a.conversations, a.seed)
        print(f"dataset: {a.conversations:,} conversations, {os.path.getsize(src) / 1e6:.0f} MB "
              f"(generated in {time.perf_counter() - t0:.1f} s)")
        cmd = [sys.executable, "main.py", "trace", "convert", "--from", "sharegpt", "--trace", src, "--out", out,
               "--block-tokens", str(a.block_tokens)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"convert failed ({proc.returncode}): {proc.stderr.strip()}")
        with open(out + ".meta.json", encoding="utf-8") as fh:
            meta = json.load(fh)
        rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        n_req = meta["requests"]
        print(f"convert: {wall:.1f} s wall, {meta['conversations_converted'] / wall:,.0f} conversations/s, "
              f"{n_req / wall:,.0f} requests/s ({n_req:,} requests, {meta['input_tokens_total']:,} input tokens, "
              f"{meta['unique_blocks']:,} unique blocks), output {os.path.getsize(out) / 1e6:.0f} MB, "
              f"peak RSS {rss_mb:,.0f} MB")


if __name__ == "__main__":
    main_()
