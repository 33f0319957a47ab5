"""The default backend: an OrderedDict in LRU order. Nothing to wait for, so the coroutines never
suspend; lost on restart."""

from __future__ import annotations

from collections import OrderedDict

from .base import Backend, Entry


class MemoryBackend(Backend):
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    async def get(self, key: str, now: float) -> Entry | None:
        e = self._entries.get(key)
        if e is None:
            return None
        if e.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return e

    async def put(self, entry: Entry) -> list[str]:
        self._entries[entry.key] = entry
        self._entries.move_to_end(entry.key)
        evicted: list[str] = []
        while len(self._entries) > self.max_entries:
            key, _ = self._entries.popitem(last=False)
            evicted.append(key)
        return evicted

    async def clear(self, group: str | None = None, tenant: str | None = None) -> list[str]:
        if group is None and tenant is None:
            keys = list(self._entries)
            self._entries.clear()
            return keys
        keys = [k for k, e in self._entries.items()
                if (group is None or e.group == group) and (tenant is None or e.tenant == tenant)]
        for k in keys:
            del self._entries[k]
        return keys

    async def count(self, now: float) -> int:
        return sum(1 for e in self._entries.values() if e.expires > now)

    async def vectors(self, now: float) -> list[tuple[str, str, bytes]]:
        return [(e.key, e.scope, e.vector) for e in self._entries.values()
                if e.scope is not None and e.vector is not None and e.expires > now]
