"""Writes bailian_synth.jsonl: a synthetic trace in the Alibaba Bailian format.

Deterministic (seed 7). 120 chat sessions of 1-6 turns over ten minutes;
every request starts with one of 6 system prompts (Zipf popularity, 4-32
blocks of 16 tokens), then the session's history, then 1-12 new blocks with
a partial last block. A turn's prefix is the previous turn's full blocks
plus its answer, so hash ids chain over the prefix as the loader expects.
Run from the repository root: python tests/data/make_bailian_synth.py
"""
import json
from pathlib import Path

import numpy as np

BT = 16
OUT = Path(__file__).with_name("bailian_synth.jsonl")


def main(path: Path = OUT, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    next_id = [1]

    def new_ids(k):
        ids = [next_id[0] + j for j in range(k)]
        next_id[0] = ids[-1] + 1 if ids else next_id[0]
        return ids

    prompts = [new_ids(int(k)) for k in rng.integers(4, 33, size=6)]
    pop = 1.0 / np.arange(1, 7) ** 1.2
    pop /= pop.sum()
    rows, chat = [], 0
    for _ in range(120):
        t = float(rng.uniform(0, 600))
        history = list(prompts[int(rng.choice(6, p=pop))])
        parent = -1
        for turn in range(1, int(rng.integers(1, 7)) + 1):
            full_new = int(rng.integers(0, 12))
            partial = int(rng.integers(1, BT))
            blocks = history + new_ids(full_new)
            last = new_ids(1)  # the partial block: its hash is not reused once filled
            inp = len(blocks) * BT + partial
            out = int(rng.integers(5, 200))
            chat += 1
            rows.append({"chat_id": chat, "parent_chat_id": parent, "timestamp": round(t, 3),
                         "input_length": inp, "output_length": out, "type": "text", "turn": turn,
                         "hash_ids": blocks + last})
            # Next turn: this prompt (the partial block completed with the answer) + answer blocks.
            history = blocks + new_ids((partial + out) // BT)
            parent = chat
            t += float(rng.uniform(5, 60))
    rows.sort(key=lambda r: (r["timestamp"], r["chat_id"]))
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))


if __name__ == "__main__":
    main()
