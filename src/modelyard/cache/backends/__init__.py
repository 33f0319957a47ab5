"""Where cache entries live: memory (default), SQLite (survives restarts), Redis (shared by every
replica: redis.py)."""

from __future__ import annotations

from .base import Backend, Entry

__all__ = ["Backend", "Entry", "open_backend"]


def open_backend(kind: str, *, path: str, max_entries: int, url: str | None = None, fail_closed: bool = False,
                 timeout_s: float = 0.5) -> Backend:
    """The backend named in `cache.backend`."""
    if kind == "redis":
        from .redis import RedisBackend

        assert url is not None, "cache.backend redis needs cache.url or a redis:// state (loader checks)"
        return RedisBackend(url, max_entries, fail_closed=fail_closed, timeout_s=timeout_s)
    if kind == "sqlite":
        from .sqlite import SqliteBackend

        return SqliteBackend(path, max_entries)
    from .memory import MemoryBackend

    return MemoryBackend(max_entries)
