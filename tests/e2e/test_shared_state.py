"""Two `modelyard serve` processes sharing one redis-server behave as one gateway: one rate limit,
one budget, one set of breakers, one response cache (docs/SCALING.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from scalekit import KEYS, MASTER, RPM, Serve, body, logged, write_config


@pytest.fixture(scope="module")
def pair(redis_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, Serve, Path]]:
    d = tmp_path_factory.mktemp("pair")
    state = {"url": redis_module.url, "on_failure": {"limits": "fail_open", "budgets": "fail_closed"}}
    servers = [Serve(write_config(d / f"gw{i}.yaml", state, d / f"log{i}.db"), d) for i in (0, 1)]
    try:
        for s in servers:
            s.wait_ready()
        yield servers[0], servers[1], d
    finally:
        for s in servers:
            print(s.stop()[-3000:])  # (shown when a test failed)


def post(url: str, key: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {key}"},
                      timeout=30)


def test_a_keys_rpm_holds_across_both_replicas(pair: tuple[Serve, Serve, Path]) -> None:
    a, b, _ = pair
    codes = [post((a, b)[i % 2].url, KEYS["RPM_KEY"], body(f"rpm {i}")).status_code for i in range(2 * RPM)]
    assert codes.count(200) == RPM, codes  # not 2 × RPM
    assert codes.count(429) == RPM
    refused = post(a.url, KEYS["RPM_KEY"], body("one more"))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 0 < float(refused.headers["retry-after"]) <= 60


def test_a_budget_holds_across_both_under_200_concurrent_requests(pair: tuple[Serve, Serve, Path]) -> None:
    a, b, d = pair

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=60, limits=limits) as c:
            return await asyncio.gather(*(
                c.post((a, b)[i % 2].url + "/v1/chat/completions", json=body(f"budget {i}"),
                       headers={"authorization": f"Bearer {KEYS['BUDGET_KEY']}"}) for i in range(200)))

    responses = asyncio.run(run())
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert ok and refused, [r.status_code for r in responses][:20]
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused), \
        {(r.status_code, r.text[:300]) for r in refused}
    costs = [float(r.headers["x-modelyard-cost-usd"]) for r in ok]
    time.sleep(1.5)  # (the request logs are written in batches)
    rows = logged(d / "log0.db", "budget") + logged(d / "log1.db", "budget")
    assert len(rows) == 200  # every request answered-and-logged or refused-and-logged
    spent = sum(r[1] for r in rows)
    assert abs(spent - sum(costs)) < 1e-9
    from scalekit import BUDGET_USD

    assert spent <= BUDGET_USD + max(costs) + 1e-12, (spent, BUDGET_USD)
    assert sum(1 for r in rows if r[0] == 200) == len(ok)


def test_a_breaker_opened_on_one_is_respected_by_the_other(pair: tuple[Serve, Serve, Path]) -> None:
    a, b, _ = pair
    admin = {"authorization": f"Bearer {MASTER}"}

    def state(s: Serve) -> str:
        rows = httpx.get(s.url + "/admin/stats/breakers", headers=admin, timeout=10).json()["deployments"]
        return next(r["state"] for r in rows if r["deployment"] == "flaky")

    assert state(b) == "closed"
    for i in range(3):
        assert post(a.url, MASTER, body(f"flaky {i}", model="flaky")).status_code >= 500
    assert state(a) == "open"
    t0 = time.monotonic()
    while state(b) != "open":
        assert time.monotonic() - t0 < 1.0, "the other replica did not see the open breaker within a second"
        time.sleep(0.05)
    r = post(b.url, MASTER, body("flaky on b", model="flaky"))  # refused without calling the deployment
    assert r.status_code == 503
    breakers = httpx.get(b.url + "/admin/stats/breakers", headers=admin, timeout=10).json()["deployments"]
    assert next(x for x in breakers if x["deployment"] == "flaky")["requests"] == 0


def test_a_cache_entry_written_through_one_is_served_by_the_other(pair: tuple[Serve, Serve, Path]) -> None:
    a, b, _ = pair
    first = post(a.url, KEYS["CACHE_KEY"], body("what is a cache?"))
    assert first.status_code == 200 and first.headers.get("x-modelyard-cache") == "miss"
    second = post(b.url, KEYS["CACHE_KEY"], body("what is a cache?"))
    assert second.status_code == 200 and second.headers.get("x-modelyard-cache") == "hit"
    assert second.json()["choices"] == first.json()["choices"]
