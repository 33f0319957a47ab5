"""`modelyard serve --workers 4` on Redis: the four worker processes enforce one rpm and one budget."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from scalekit import BUDGET_USD, KEYS, RPM, Serve, body, logged, write_config


def test_four_workers_share_one_rpm_and_one_budget(redis_server: Any, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "gw.yaml", redis_server.url, tmp_path / "log.db", cache=False)
    s = Serve(cfg, tmp_path, workers=4)
    try:
        s.wait_ready()
        with httpx.Client(timeout=30) as c:  # a new connection each: the kernel spreads them over the workers
            codes = [c.post(s.url + "/v1/chat/completions", json=body(f"rpm {i}"),
                            headers={"authorization": f"Bearer {KEYS['RPM_KEY']}", "connection": "close"}
                            ).status_code for i in range(2 * RPM)]
        assert codes.count(200) == RPM and codes.count(429) == RPM, codes

        async def run() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as c:
                return await asyncio.gather(*(
                    c.post(s.url + "/v1/chat/completions", json=body(f"budget {i}"),
                           headers={"authorization": f"Bearer {KEYS['BUDGET_KEY']}"}) for i in range(200)))

        responses = asyncio.run(run())
        ok = [r for r in responses if r.status_code == 200]
        assert ok and all(r.json()["error"]["code"] == "budget_exceeded" for r in responses if r.status_code != 200)
        time.sleep(1.5)
    finally:
        out = s.stop()
    rows = logged(tmp_path / "log.db", "budget")
    assert len(rows) == 200, out[-2000:]
    spent = sum(r[1] for r in rows)
    assert spent <= BUDGET_USD + max(float(r.headers["x-modelyard-cost-usd"]) for r in ok) + 1e-12
