"""The storage interface behind both caches.

An entry is opaque bytes (the encoded response, cache/codec.py) plus what the cache needs to find,
bound and clear it: tenant, group, expiry, and for semantic entries the scope and the embedding.
The semantic index itself (numpy matrices per scope) lives in the process (cache/semantic.py);
a backend hands back the stored vectors at start-up (`vectors`) and names the keys it drops
(`put`, `clear` return them) so the index forgets them.

A Redis backend (the scale-out wave) implements the same five methods:
- `get`: `GET cy:<key>` of a hash-free blob (entry fields packed with orjson), then `ZADD cy:lru
  <now> <key>` for recency; expiry is Redis's own (`SET ... PX ttl`), so an expired key is absent.
- `put`: a Lua script that `SET`s the blob with `PX`, `ZADD`s the LRU set and, past
  `max_entries` (`ZCARD`), `ZPOPMIN`s the oldest keys and `DEL`s them, returning those keys;
  semantic entries also `HSET cy:vec:<scope> <key> <vector bytes>` and `PUBLISH cy:added`.
- `clear`: `SSCAN` of per-group and per-tenant sets (`SADD cy:group:<g> <key>` on put) → `DEL`.
- `vectors`: `HSCAN` of every `cy:vec:*` hash; replicas keep their in-process matrices current by
  subscribing to `cy:added` / `cy:dropped` (or, with Redis Stack, an `FT.SEARCH` KNN query per
  scope replaces the local matrix: the index lives in Redis).
- `count`: `ZCARD cy:lru`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(slots=True)
class Entry:
    key: str
    tenant: str
    group: str
    deployment: str  # the deployment that produced the answer
    cost_usd: float  # what producing it cost: a hit saves this much
    body: bytes  # the encoded response (cache/codec.py)
    expires: float  # unix time
    scope: str | None = None  # semantic scope (cache/key.py), None for exact-only entries
    vector: bytes | None = None  # float32 embedding of the last user turn


class Backend(ABC):
    """Entries by key with a TTL and an LRU size bound. Methods are coroutines: a backend with I/O
    (SQLite, Redis) must not block the event loop."""

    async def start(self) -> None:  # noqa: B027 - optional
        """Open connections, create tables."""

    async def close(self) -> None:  # noqa: B027 - optional
        """Flush and close."""

    @abstractmethod
    async def get(self, key: str, now: float) -> Entry | None:
        """The live entry (marked as recently used), or None when absent or expired."""

    @abstractmethod
    async def put(self, entry: Entry) -> list[str]:
        """Store (or replace) an entry; return the keys evicted to stay within the bound."""

    @abstractmethod
    async def clear(self, group: str | None = None, tenant: str | None = None) -> list[str]:
        """Remove every entry, or those of one group and/or tenant; return their keys."""

    @abstractmethod
    async def count(self, now: float) -> int:
        """Live entries."""

    @abstractmethod
    async def vectors(self, now: float) -> list[tuple[str, str, bytes]]:
        """(key, scope, vector) of every live semantic entry, to rebuild the index at start-up."""
