"""Where cache entries live: memory (default), SQLite (survives restarts); base.py says how a
Redis backend implements the same interface."""

from __future__ import annotations

from .base import Backend, Entry

__all__ = ["Backend", "Entry", "open_backend"]


def open_backend(kind: str, *, path: str, max_entries: int) -> Backend:
    """The backend named in `cache.backend`."""
    if kind == "sqlite":
        from .sqlite import SqliteBackend

        return SqliteBackend(path, max_entries)
    from .memory import MemoryBackend

    return MemoryBackend(max_entries)
