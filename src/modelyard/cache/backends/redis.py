"""Cache entries in Redis, shared by every replica (`cache.backend: redis`).

Layout (hash tags: each entry in its own slot, the bookkeeping in the `{cache}` slot):
- `modelyard:cache:{<key>}` — a hash per entry (tenant, group, deployment, cost, body, expiry,
  scope, vector) with Redis's own expiry (`PEXPIREAT`): an expired entry is simply absent;
- `modelyard:{cache}:lru` — key → last use; past `max_entries` the least recently used go;
- `modelyard:{cache}:g:<group>`, `…:t:<tenant>` — the keys to clear per group / tenant;
- `modelyard:{cache}:vec` — key → scope + float32 vector of every semantic entry, read at start-up;
- `modelyard:{cache}:added` — a stream of semantic keys as they are stored: each replica polls it
  (`SYNC_S`) and adds the vectors to its in-process index, so a semantic entry stored through one
  replica is found by the others (the matrix search stays local: ~0.1 ms against 10k vectors,
  where a scan in Redis would cost a round trip per scope and a Lua loop over every vector).

Lookups and stores of concurrent requests share round trips: what is queued while a pipeline is
out goes in the next one (`_batched`). redis-py spends ~55-90 µs of CPU per round trip and ~15-20
µs per command in a pipeline of 10-50, so a miss (a lookup and a store, one round trip each before)
costs a fraction of that under load. While Redis is unreachable the
cache follows `state.on_failure.cache`: fail_open → every lookup misses and nothing is stored
(reported once per transition in the log and on /ready); fail_closed → 503 `state_unavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from ...errors import Unavailable
from .base import Backend, Entry

log = logging.getLogger("modelyard.cache")

T = "modelyard:{cache}:"
SYNC_S = 0.25
RETRY_S = 1.0  # after a failure, Redis is left alone this long (no per-request timeouts meanwhile)

_INDEX = """
-- KEYS: lru, group set, tenant set, vec, added stream. ARGV: key, now, max, scope, vector, origin
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[1], ARGV[4] .. '\\n' .. ARGV[5])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', 10000, '*', 'k', ARGV[1], 'o', ARGV[6])
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
local out = {}
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #popped, 2 do
    out[#out + 1] = popped[i]
    redis.call('HDEL', KEYS[4], popped[i])
  end
end
return out
"""


def entry_key(key: str) -> str:
    return "modelyard:cache:{" + key + "}"


class RedisBackend(Backend):
    def __init__(self, url: str, max_entries: int, *, fail_closed: bool = False, timeout_s: float = 0.5) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)
        self.r: Any = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.max_entries = max_entries
        self.fail_closed = fail_closed
        self.index_script = self.r.register_script(_INDEX)
        self.origin = os.urandom(4).hex()
        self.on_vectors: Callable[[list[tuple[str, str, bytes]]], None] | None = None
        self.down_until = 0.0  # monotonic: skip Redis until then
        self.up = True
        self._last_id = "$"
        self._task: asyncio.Task[None] | None = None
        self._queue: list[tuple[Callable[[Any], object], int, asyncio.Future[list[Any]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            info = await self.r.xinfo_stream(T + "added")
            self._last_id = info["last-generated-id"].decode()
        except self.errors as e:
            if "no such key" not in str(e):
                self._failed(e)
            self._last_id = "0-0"
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="modelyard-cache-follow")

    async def close(self) -> None:
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.r.aclose()

    def status(self) -> dict[str, Any]:
        return {"backend": "redis", "shared": self.up}

    def _usable(self) -> bool:
        if self.up or time.monotonic() >= self.down_until:
            return True
        if self.fail_closed:
            raise Unavailable("the response cache's Redis is unreachable and state.on_failure.cache is "
                              "fail_closed: retry shortly", code="state_unavailable")
        return False

    def _failed(self, e: BaseException) -> None:
        if self.up:
            log.warning("cache: Redis unreachable (%s: %s): %s", type(e).__name__, e,
                        "refusing cached requests (fail_closed)" if self.fail_closed else "every lookup misses")
        self.up = False
        self.down_until = time.monotonic() + RETRY_S
        if self.fail_closed:
            raise Unavailable("the response cache's Redis is unreachable and state.on_failure.cache is "
                              "fail_closed: retry shortly", code="state_unavailable") from None

    def _ok(self) -> None:
        if not self.up:
            log.warning("cache: Redis reachable again: entries are shared again")
            self.up = True

    # --- entries --------------------------------------------------------------------------------
    def _batched(self, add: Callable[[Any], object], n: int) -> asyncio.Future[list[Any]]:
        """Queue `add(pipeline)`, which adds `n` commands; the future gets their replies (or the first
        error). Everything queued while a pipeline is out goes in the next one."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((add, n, fut))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return fut

    async def _drain(self) -> None:
        batch: list[tuple[Callable[[Any], object], int, asyncio.Future[list[Any]]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    async with self.r.pipeline(transaction=False) as pipe:
                        for add, _, _ in batch:
                            add(pipe)
                        replies = await pipe.execute(raise_on_error=False)
                except Exception as e:  # the round trip failed: every caller's did
                    replies = [e] * sum(n for _, n, _ in batch)
                i = 0
                for _, n, fut in batch:
                    mine, i = replies[i:i + n], i + n
                    if fut.done():  # a caller that went away cancelled its future
                        continue
                    error = next((r for r in mine if isinstance(r, BaseException)), None)
                    if error is None:
                        fut.set_result(mine)
                    else:
                        fut.set_exception(error)
                batch = []
        except BaseException:  # cancelled (the loop is closing): nobody waits forever
            for _, _, fut in batch + self._queue:
                fut.cancel()
            self._queue = []
            raise
        finally:
            self._drainer = None

    async def get(self, key: str, now: float) -> Entry | None:
        if not self._usable():
            return None
        ek = entry_key(key)
        try:
            raw, _ = await self._batched(lambda p: p.hgetall(ek).zadd(T + "lru", {key: now}, xx=True), 2)
        except self.errors as e:
            self._failed(e)
            return None
        self._ok()
        if not raw or float(raw[b"x"]) <= now:
            return None
        scope = raw.get(b"s")
        return Entry(key, raw[b"t"].decode(), raw[b"g"].decode(), raw[b"d"].decode(), float(raw[b"c"]),
                     raw[b"b"], float(raw[b"x"]), scope.decode() if scope else None, raw.get(b"v") or None)

    async def put(self, entry: Entry) -> list[str]:
        if not self._usable():
            return []
        fields: dict[Any, Any] = {"t": entry.tenant, "g": entry.group, "d": entry.deployment, "c": repr(entry.cost_usd),
                                  "b": entry.body, "x": repr(entry.expires)}
        if entry.scope is not None and entry.vector is not None:
            fields["s"], fields["v"] = entry.scope, entry.vector
        ek = entry_key(entry.key)
        script = self.index_script
        index = (T + "lru", T + "g:" + entry.group, T + "t:" + entry.tenant, T + "vec", T + "added",
                 entry.key, time.time(), self.max_entries, entry.scope or "", entry.vector or b"", self.origin)

        def add(p: Any) -> None:
            # the entry (its fields replaced, its expiry Redis's own), then the bookkeeping script; no
            # MULTI: a reader in between sees a miss, or the entry with its own expiry field checked
            p.delete(ek).hset(ek, mapping=fields).pexpireat(ek, int(entry.expires * 1000))
            p.scripts.add(script)  # (the pipeline loads it first if Redis lost it)
            p.evalsha(script.sha, 5, *index)

        try:
            *_, evicted = await self._batched(add, 4)
            keys = [k.decode() for k in evicted]
            if keys:
                await self._batched(lambda p: p.delete(*(entry_key(k) for k in keys)), 1)
        except self.errors as e:
            self._failed(e)
            return []
        self._ok()
        return keys

    async def clear(self, group: str | None = None, tenant: str | None = None) -> list[str]:
        if group is None and tenant is None:
            keys = [k.decode() for k in await self.r.zrange(T + "lru", 0, -1)]
            sets = [k async for k in self.r.scan_iter(match=T + "[gt]:*", count=500)]
            await self._drop(keys)
            await self.r.delete(T + "lru", T + "vec", *sets)
            return keys
        members: set[bytes] | None = None
        for name in ((T + "g:" + group) if group is not None else None,
                     (T + "t:" + tenant) if tenant is not None else None):
            if name is not None:
                got = set(await self.r.smembers(name))
                members = got if members is None else members & got
        keys = sorted(k.decode() for k in members or ())
        await self._drop(keys)
        if keys:
            async with self.r.pipeline(transaction=False) as pipe:
                for name in ((T + "g:" + group) if group is not None else None,
                             (T + "t:" + tenant) if tenant is not None else None):
                    if name is not None:
                        pipe.srem(name, *keys)
                await pipe.execute()
        return keys

    async def _drop(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            async with self.r.pipeline(transaction=False) as pipe:
                pipe.delete(*(entry_key(k) for k in chunk))
                pipe.zrem(T + "lru", *chunk)
                pipe.hdel(T + "vec", *chunk)
                await pipe.execute()

    async def count(self, now: float) -> int:
        return int(await self.r.zcard(T + "lru"))

    async def vectors(self, now: float) -> list[tuple[str, str, bytes]]:
        try:
            raw = await self.r.hgetall(T + "vec")
        except self.errors as e:
            self._failed(e)
            return []
        return [_vector(k, v) for k, v in raw.items()]

    async def _follow(self) -> None:
        """Semantic entries stored through other replicas → this replica's index."""
        while True:
            await asyncio.sleep(SYNC_S)
            if not self.up and time.monotonic() < self.down_until:
                continue
            try:
                got = await self.r.xread({T + "added": self._last_id}, count=1000)
                if not got:
                    self._ok()
                    continue
                keys: list[bytes] = []
                for _stream, messages in got:
                    for mid, data in messages:
                        self._last_id = mid.decode()
                        if data.get(b"o", b"").decode() != self.origin:
                            keys.append(data[b"k"])
                if keys and self.on_vectors is not None:
                    vals = await self.r.hmget(T + "vec", keys)
                    self.on_vectors([_vector(k, v) for k, v in zip(keys, vals, strict=True) if v])
                self._ok()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if isinstance(e, self.errors):
                    try:
                        self._failed(e)
                    except Unavailable:
                        pass
                else:
                    log.exception("cache: following the shared semantic index failed")


def _vector(k: bytes, v: bytes) -> tuple[str, str, bytes]:
    scope, _, vec = v.partition(b"\n")
    return k.decode(), scope.decode(), vec
