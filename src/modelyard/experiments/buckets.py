"""The hash behind assignment and judge sampling: a string → a bucket in 0..9999."""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(experiment: str, unit: str) -> int:
    """The unit's bucket in 0..9999: blake2b of `experiment` and `unit` (stable across processes,
    machines and Python versions, unlike `hash`)."""
    digest = hashlib.blake2b(f"{experiment}\x00{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS
