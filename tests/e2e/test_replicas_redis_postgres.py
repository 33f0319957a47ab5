"""The whole scale-out set-up at once (docs/SCALING.md): two `modelyard serve` processes sharing one
redis-server (state) and one Postgres (records). One rate limit and one budget across both, every
request's row in the shared log, and spend asked of either replica equal to the rows and to what the
clients were charged."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from scalekit import BUDGET_USD, KEYS, MASTER, RPM, Serve, body, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
from pg_server import PgServer, pg_server_fixture  # noqa: F401  (fixture)

from modelyard.accounting.keys import CONFIG_ID_PREFIX
from modelyard.store.spend import cost_units


@pytest.fixture
def pair(redis_server: Any, pg_server: PgServer, tmp_path: Path) -> Iterator[tuple[Serve, Serve, str]]:
    url = pg_server.createdb("scaleout")
    state = {"url": redis_server.url, "on_failure": {"limits": "fail_open", "budgets": "fail_closed"}}
    servers = []
    for i in (0, 1):
        cfg = write_config(tmp_path / f"gw{i}.yaml", state, tmp_path / f"log{i}.db", cache=False)
        data = yaml.safe_load(cfg.read_text())
        data["store"] = url
        data["server"]["request_log"]["flush_interval_s"] = 0.05
        cfg.write_text(yaml.safe_dump(data))
        servers.append(Serve(cfg, tmp_path))
    try:
        for s in servers:
            s.wait_ready()
        yield servers[0], servers[1], url
    finally:
        for s in servers:
            out = s.stop()
            print(out[-3000:])  # (shown when a test failed)
    assert not list(tmp_path.glob("*.db")), "a replica wrote to SQLite although Postgres was configured"


async def _rows(url: str, key: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT status, cost_usd, error_type FROM requests WHERE key_id = $1",
                                CONFIG_ID_PREFIX + key)
    finally:
        await conn.close()


def test_limits_budget_and_spend_hold_across_two_replicas_on_redis_and_postgres(pair: tuple[Serve, Serve, str]
                                                                               ) -> None:
    a, b, url = pair
    headers = {"authorization": f"Bearer {KEYS['RPM_KEY']}"}
    codes = [httpx.post((a, b)[i % 2].url + "/v1/chat/completions", json=body(f"rpm {i}"), headers=headers,
                        timeout=30).status_code for i in range(2 * RPM)]
    assert codes.count(200) == RPM and codes.count(429) == RPM, codes  # one limit, not one per replica

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as c:
            return await asyncio.gather(*(
                c.post((a, b)[i % 2].url + "/v1/chat/completions", json=body(f"budget {i}"),
                       headers={"authorization": f"Bearer {KEYS['BUDGET_KEY']}"}) for i in range(200)))

    responses = asyncio.run(burst())
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert ok and refused
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused)
    charged = [float(r.headers["x-modelyard-cost-usd"]) for r in ok]

    deadline = time.monotonic() + 15
    while len(rows := asyncio.run(_rows(url, "budget"))) < 200:  # both replicas' writers, one table
        assert time.monotonic() < deadline, f"only {len(rows)} of 200 rows reached Postgres"
        time.sleep(0.2)
    assert len(rows) == 200
    spent = sum(r["cost_usd"] for r in rows)
    assert abs(spent - sum(charged)) < 1e-9
    assert spent <= BUDGET_USD + max(charged) + 1e-12, (spent, BUDGET_USD)

    admin = {"authorization": f"Bearer {MASTER}"}
    for s in (a, b):  # spend asked of either replica counts both
        got = httpx.get(s.url + "/admin/spend", headers=admin, params={"by": "key"}, timeout=30).json()
        mine = next(g for g in got["groups"] if g["key"] == CONFIG_ID_PREFIX + "budget")
        assert mine["requests"] == 200
        assert round(mine["cost_usd"] * 1e10) == sum(cost_units(r["cost_usd"]) for r in rows)
