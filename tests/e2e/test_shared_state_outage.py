"""Redis restarted under load: requests keep flowing per `state.on_failure`, the fallback is
reported (/ready, metrics), and shared state recovers when Redis is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from scalekit import KEYS, MASTER, Serve, body, write_config


def ready(s: Serve) -> dict[str, Any]:
    return httpx.get(s.url + "/ready", timeout=15).json()


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_redis_restart_mid_load(redis_server: Any, tmp_path: Path) -> None:
    state = {"url": redis_server.url, "on_failure": {"limits": "fail_open", "budgets": "fail_closed"}}
    servers = [Serve(write_config(tmp_path / f"gw{i}.yaml", state, tmp_path / f"log{i}.db"), tmp_path)
               for i in (0, 1)]
    results: list[tuple[float, str, int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                key = ("LIMITED_KEY", "LOAD_KEY")[i % 2]
                t0 = time.monotonic()
                r = c.post(servers[i % 2].url + "/v1/chat/completions", json=body(f"load {i}"),
                           headers={"authorization": f"Bearer {KEYS[key]}"})
                code = r.json()["error"]["code"] if r.status_code != 200 else None
                results.append((t0, key, r.status_code, code))
                i += 1

    try:
        for s in servers:
            s.wait_ready()
        assert all(ready(s)["state"]["shared"] for s in servers)
        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(1.0)
        stopping = time.monotonic()
        redis_server.stop()
        down_at = time.monotonic()
        wait_for(lambda: not any(ready(s)["state"]["shared"] for s in servers), 5, "the fallback was not reported")
        detail = ready(servers[0])["state"]
        assert detail["fallback"] == ["limits", "breakers", "cache"] and detail["refused"] == ["budgets"]
        metrics = httpx.get(servers[1].url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}, timeout=5)
        assert "modelyard_state_fallback 1.0" in metrics.text
        time.sleep(1.5)
        redis_server.start()
        up_at = time.monotonic()
        wait_for(lambda: all(ready(s)["state"]["shared"] for s in servers), 5, "shared state did not come back")
        time.sleep(1.0)
        stop.set()
        worker.join(timeout=30)
    finally:
        stop.set()
        outputs = [s.stop() for s in servers]
    before = [r for r in results if r[0] < stopping - 0.5]  # (by the time each request started)
    during = [r for r in results if down_at + 1.0 < r[0] < up_at]
    after = [r for r in results if r[0] > up_at + 1.0]
    assert before and during and after
    assert all(r[2] == 200 for r in before), [r for r in before if r[2] != 200][:3]
    # limits fail open: the limits-only key keeps being served on the local windows; budgets fail closed
    assert {r[2] for r in during if r[1] == "LIMITED_KEY"} == {200}
    assert {(r[2], r[3]) for r in during if r[1] == "LOAD_KEY"} == {(503, "state_unavailable")}
    assert all(r[2] == 200 for r in after), [r for r in after if r[2] != 200][:3]
    logs = "\n".join(outputs)
    assert logs.count("state: Redis unreachable") == 2  # once per transition and process
    assert logs.count("state: Redis reachable again") == 2

    import redis

    ledger = redis.Redis.from_url(redis_server.url).hgetall("modelyard:{acct}:budget:key:cfg_load")
    assert float(ledger[b"spent"]) > 0  # re-seeded from the request log and used again
