"""Keys, policy and backends on their own: what changes a key, what the policy refuses, TTL, LRU,
clearing, and a SQLite file reopened."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import RedisServer
from modelyard.cache.backends import Entry
from modelyard.cache.backends.memory import MemoryBackend
from modelyard.cache.backends.redis import RedisBackend
from modelyard.cache.backends.sqlite import SqliteBackend
from modelyard.cache.key import exact_key, markers, semantic_scope
from modelyard.cache.policy import cache_control, decide, group_policy
from modelyard.cache.settings import CacheOverride, CacheSettings
from modelyard.errors import BadRequest
from modelyard.types import Caller, ChatRequest, ImagePart, Message, TextPart, Tool

REQ = ChatRequest(model="g", messages=[Message("system", "s"), Message("user", "hello there")])


@pytest.mark.parametrize("change", [
    {"temperature": 0.0}, {"top_p": 1.0}, {"max_tokens": 10}, {"stop": ["x"]}, {"seed": 1}, {"n": 2},
    {"user": "u"}, {"tool_choice": "none"}, {"response_format": {"type": "json_object"}},
    {"tools": [Tool("f")]}, {"extra": {"logit_bias": {"1": 2}}}, {"extra": {"some_new_param": True}},
    {"metadata": {"tier": "gold"}}, {"caller": Caller(key_id="k")},
    {"messages": [Message("system", "s"), Message("user", [TextPart("hello there")])]},
    {"messages": [Message("system", "s"), Message("user", [TextPart("hello there"), ImagePart("https://x/y.png")])]},
    {"messages": [Message("user", "hello there")]},
])
def test_every_field_is_part_of_the_key(change: dict[str, object]) -> None:
    other = dataclasses.replace(REQ, **change)  # type: ignore[arg-type]
    assert exact_key(other, other.caller.tenant, "g") != exact_key(REQ, REQ.caller.tenant, "g")


def test_delivery_and_directives_are_not_part_of_the_key() -> None:
    same = dataclasses.replace(REQ, stream=True, include_usage=True, metadata={"cache": "exact",
                                                                               "cache_control": "no-cache"})
    assert exact_key(same, "master", "g") == exact_key(REQ, "master", "g")
    assert exact_key(REQ, "master", "g") != exact_key(REQ, "master", "h")


def test_semantic_scope_ignores_the_wording_not_the_markers() -> None:
    a = dataclasses.replace(REQ, messages=[Message("user", "What is 15% of 200?")])
    b = dataclasses.replace(REQ, messages=[Message("user", "How much is 15% of 200?")])
    c = dataclasses.replace(REQ, messages=[Message("user", "How much is 15% of 300?")])
    scope = semantic_scope(a, "master", "g", "What is 15% of 200?")
    assert scope == semantic_scope(b, "master", "g", "How much is 15% of 200?")
    assert scope != semantic_scope(c, "master", "g", "How much is 15% of 300?")
    assert markers("Convert 100 Celsius to Fahrenheit") != markers("Convert 100 Fahrenheit to Celsius")
    assert markers("Is it safe?") != markers("Isn't it safe?")


def test_policy() -> None:
    p = group_policy(CacheSettings(mode="exact", ttl_s=60), CacheOverride(ttl_s=5))
    assert p.ttl_s == 5 and p.mode == "exact" and not p.sampled
    assert decide(p, REQ) is not None
    assert decide(p, dataclasses.replace(REQ, temperature=0.7)) is None
    assert decide(p, dataclasses.replace(REQ, temperature=0.7, seed=3)) is not None
    assert decide(dataclasses.replace(p, sampled=True), dataclasses.replace(REQ, temperature=0.7)) is not None
    assert decide(p, dataclasses.replace(REQ, extra={"logprobs": True})) is None
    assert decide(p, dataclasses.replace(REQ, metadata={"cache": "off"})) is None
    with pytest.raises(BadRequest, match=r"modelyard\.cache"):
        decide(p, dataclasses.replace(REQ, metadata={"cache": "yes"}))
    assert cache_control("no-cache") == (False, True)
    assert cache_control("max-age=0, No-Store") == (False, False)
    assert cache_control("max-age=60") == (True, True)


def _entry(key: str, *, group: str = "g", tenant: str = "master", expires: float = 1e12,
           scope: str | None = None) -> Entry:
    return Entry(key, tenant, group, "dep", 0.01, b"{}", expires, scope, b"\0" * 16 if scope else None)


@pytest.fixture(params=["memory", "sqlite"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    b = MemoryBackend(3) if request.param == "memory" else SqliteBackend(str(tmp_path / "c.db"), 3)
    await b.start()
    yield b
    await b.close()


async def test_backend_ttl_lru_and_clear(backend) -> None:  # type: ignore[no-untyped-def]
    assert await backend.put(_entry("old", expires=5.0)) == []
    assert await backend.get("old", now=4.0) is not None
    assert await backend.get("old", now=6.0) is None  # expired
    await backend.clear()
    for k in ("a", "b", "c"):
        await backend.put(_entry(k, group="x" if k == "a" else "g"))
    assert (await backend.get("a", now=1.0)) is not None  # a is now the most recent
    evicted = await backend.put(_entry("d", tenant="key:9", scope="s1"))
    assert evicted == ["b"]
    assert await backend.get("b", now=1.0) is None
    assert await backend.count(now=1.0) == 3
    assert [(k, s) for k, s, _ in await backend.vectors(now=1.0)] == [("d", "s1")]
    assert sorted(await backend.clear(tenant="key:9")) == ["d"]
    assert sorted(await backend.clear(group="x")) == ["a"]
    assert await backend.clear() == ["c"]


async def test_sqlite_reopens_with_its_entries(tmp_path: Path) -> None:
    b = SqliteBackend(str(tmp_path / "c.db"), 10)
    await b.start()
    await b.put(_entry("k", scope="s"))
    await b.close()
    b = SqliteBackend(str(tmp_path / "c.db"), 10)
    await b.start()
    got = await b.get("k", now=1.0)
    assert got is not None and got.scope == "s" and got.vector == b"\0" * 16
    await b.close()


async def test_sqlite_runs_concurrent_statements_together_in_order(tmp_path: Path) -> None:
    b = SqliteBackend(str(tmp_path / "c.db"), 100)
    await b.start()
    batches: list[int] = []
    execute = b._execute
    b._execute = lambda fns: batches.append(len(fns)) or execute(fns)  # type: ignore[method-assign]
    bad = dataclasses.replace(_entry("bad"), body=object())  # type: ignore[arg-type]  # cannot be bound
    puts = [b.put(_entry(f"k{i}")) for i in range(20)]
    results = await asyncio.gather(*puts, b.get("k3", now=1.0), b.put(bad), b.get("k19", now=1.0),
                                   b.get("nope", now=1.0), return_exceptions=True)
    assert results[:20] == [[]] * 20
    got3, failed, got19, missing = results[20:]
    assert isinstance(got3, Entry) and got3.key == "k3" and isinstance(got19, Entry)  # read after the puts queued
    assert isinstance(failed, sqlite3.Error) and missing is None  # one statement's error is its caller's alone
    assert sum(batches) == 24 and len(batches) < 24  # one worker call (and one commit) for many statements
    assert await b.count(now=1.0) == 20
    await b.close()
    b = SqliteBackend(str(tmp_path / "c.db"), 100)
    await b.start()
    assert await b.count(now=1.0) == 20  # committed
    await b.close()


async def test_redis_shares_round_trips_between_concurrent_requests(redis_server: RedisServer) -> None:
    b = RedisBackend(redis_server.url, 3)
    await b.start()
    pipelines: list[int] = []
    pipeline = b.r.pipeline
    b.r.pipeline = lambda **kw: pipelines.append(1) or pipeline(**kw)
    later = time.time() + 60
    puts = [b.put(_entry(k, expires=later)) for k in ("a", "b", "c")]
    results = await asyncio.gather(*puts, b.get("a", now=time.time()), b.get("nope", now=time.time()))
    assert results[:3] == [[], [], []] and isinstance(results[3], Entry) and results[4] is None
    assert len(pipelines) < 5  # five callers, fewer round trips
    assert await b.get("a", now=time.time()) is not None  # a is the most recent now
    assert await b.put(_entry("d", expires=later)) == ["b"]
    assert await b.get("b", now=time.time()) is None and await b.count(now=time.time()) == 3
    redis_server.stop()  # unreachable: every lookup misses, nothing is stored, nobody waits
    assert await asyncio.gather(b.get("a", now=time.time()), b.put(_entry("e", expires=later))) == [None, []]
    await b.close()
