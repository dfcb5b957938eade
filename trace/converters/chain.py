"""Prefix block ids from token ids: a chained hash per block, as vLLM's and SGLang's prefix caches key blocks.

Block k of a prompt is hashed from (hash of block k-1, the token ids of block k)
- vLLM's ``hash_block_tokens(parent_block_hash, curr_block_token_ids)`` rule -
so two prompts get equal ids for block k exactly when their first k+1 blocks
hold the same tokens: shared system prompts are found, not assumed. The hash
is BLAKE2b with an 8-byte digest over the parent's 8 bytes and the block's
token ids as little-endian uint32 (stable across runs and machines, unlike
Python's salted ``hash()``). The root block's parent is 8 zero bytes.

A last, partial block is hashed the same way over its fewer tokens (its token
count is implied by the row's ``input_length``); when a later turn fills it,
the full block gets a new id, as in vLLM, where only full blocks are shared.

Output ids are not the 64-bit hashes themselves but a dense counter in
first-seen order (:func:`dense_ids`): equal hashes, equal ids; small numbers
in the JSONL; no clash with the -1 sentinels or page re-blocking arithmetic.
"""
from __future__ import annotations

from hashlib import blake2b

import numpy as np

ROOT_PARENT = b"\0" * 8
HASH_NAME = "blake2b-64 chain over (parent hash, block token ids as uint32 LE); ids renumbered in first-seen order"


def chain_hashes(tokens: np.ndarray, block_tokens: int, start_block: int, parent: bytes) -> list[bytes]:
    """The 8-byte hashes of the blocks of `tokens` from block `start_block` on (the last may be partial).

    `parent` is the hash of block start_block-1 (ROOT_PARENT for block 0), so a
    turn that extends the previous turn's prompt hashes only its new blocks.
    """
    buf = np.ascontiguousarray(tokens, dtype="<u4").tobytes()
    step = 4 * block_tokens
    out: list[bytes] = []
    append = out.append
    for a in range(start_block * step, len(buf), step):
        parent = blake2b(parent + buf[a:a + step], digest_size=8).digest()
        append(parent)
    return out


def as_int64(hashes: list[bytes]) -> list[int]:
    """8-byte hashes as signed 64-bit ints (what a CSR int64 array stores)."""
    frm = int.from_bytes
    return [frm(h, "little", signed=True) for h in hashes]


def dense_ids(hashes: np.ndarray) -> tuple[np.ndarray, int]:
    """Hash values -> ids 0, 1, 2... in first-seen order (equal hashes, equal ids); and the distinct count.

    One sort over the block references instead of a dict of every distinct
    hash: 8 bytes per reference rather than ~100 per distinct block.
    """
    if len(hashes) == 0:
        return np.zeros(0, dtype=np.int64), 0
    _, first, inv = np.unique(hashes, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
    return rank[inv.reshape(-1)], len(first)
