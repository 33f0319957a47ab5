"""Batch jobs: a JSONL file of chat requests run through the gateway at the providers' throughput.

`reader` turns input lines into requests (or line-numbered problems), `engine` runs them with a
concurrency that follows the rate limits, `output` appends results durably, `resume` finds what a
previous run finished, `progress` shows it. The request itself goes through a `Backend`: the
in-process gateway (server/batch_backend.py) or a running gateway over HTTP (`http_backend`).
"""

from __future__ import annotations

from .engine import Backend, BatchEngine, BatchStats, Outcome
from .reader import Item, Malformed, read_items

__all__ = ["Backend", "BatchEngine", "BatchStats", "Item", "Malformed", "Outcome", "read_items"]
