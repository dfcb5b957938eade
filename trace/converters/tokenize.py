"""Text -> token ids for the converters: a HuggingFace ``tokenizer.json`` or a stated approximation.

The approximation (the default, no tokenizer file): one token per 4 bytes of
UTF-8 (the usual "a token is about 4 characters of English"), so a text of n
bytes is ``ceil(n / 4)`` tokens; the token ids are the 4-byte chunks read as
little-endian uint32 (the last chunk zero-padded), so equal texts give equal
ids and the block hashes still find shared prefixes. Each message is
tokenized on its own and the ids are concatenated; no chat-template tokens
are added (neither tokenizer knows the model's template).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np

from sim.errors import InputError

APPROX_BYTES_PER_TOKEN = 4
APPROX_RULE = "ceil(utf8_bytes / 4) tokens per message; ids = 4-byte chunks"
_CACHE_MAX = 4096  # texts kept per tokenizer (shared system prompts repeat across conversations)


class Tokenizer(Protocol):
    def ids(self, text: str) -> np.ndarray: ...

    def describe(self) -> dict: ...


class ApproxTokenizer:
    """ceil(bytes / 4) tokens per text, ids from the bytes themselves (vectorised: one frombuffer)."""

    def ids(self, text: str) -> np.ndarray:
        b = text.encode("utf-8", "surrogatepass")
        pad = -len(b) % APPROX_BYTES_PER_TOKEN
        if pad:
            b += b"\0" * pad
        return np.frombuffer(b, dtype="<u4")

    def describe(self) -> dict:
        return {"kind": "approximation", "rule": APPROX_RULE, "bytes_per_token": APPROX_BYTES_PER_TOKEN}


class HFTokenizer:
    """A HuggingFace ``tokenizers`` tokenizer loaded from a local tokenizer.json (never downloaded)."""

    def __init__(self, path: Path) -> None:
        try:
            from tokenizers import Tokenizer as _Tok
        except ImportError:  # pragma: no cover - a declared dependency
            raise InputError("the 'tokenizers' package is not installed (pip install tokenizers)",
                             where="--tokenizer") from None
        p = Path(path)
        if not p.is_file():
            raise InputError("tokenizer file not found", where=str(p))
        try:
            data = p.read_bytes()
            self._tok = _Tok.from_str(data.decode("utf-8"))
        except OSError as e:
            raise InputError(f"cannot read the tokenizer file: {e.strerror or e}", where=str(p)) from None
        except Exception as e:  # tokenizers raises a plain Exception; UnicodeDecodeError for binary files
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"not a HuggingFace tokenizer.json ({msg[:120]})", where=str(p)) from None
        self.path = p
        self.sha256 = hashlib.sha256(data).hexdigest()
        self._cache: dict[str, np.ndarray] = {}

    def ids(self, text: str) -> np.ndarray:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        arr = np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype="<u4")
        if len(self._cache) < _CACHE_MAX:
            self._cache[text] = arr
        return arr

    def describe(self) -> dict:
        return {"kind": "huggingface", "path": str(self.path), "sha256": self.sha256}


def load_tokenizer(path: Path | None) -> Tokenizer:
    """The tokenizer of `--tokenizer PATH`, or the approximation when no path is given."""
    return ApproxTokenizer() if path is None else HFTokenizer(path)
