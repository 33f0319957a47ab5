"""Two `modelyard serve` processes on different ports sharing one Postgres (`store: postgresql://…`):
a key created through one works on the other within the key poll interval; spend asked of either
counts both processes' rows, and its totals equal the sum of the rows in the database; feedback given
on one, about a request the other served, is stored and read back by the learning/replay reader; and
Postgres crashing and restarting under load from both loses no row."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml
from pg_server import PgServer, free_port, pg_server_fixture  # noqa: F401  (fixtures)

from modelyard.defaults import default_config_data
from modelyard.store.feedback import read_scored
from modelyard.store.location import register
from modelyard.store.spend import cost_units

KEY = "replicas-master-key-0123456789"
SRC = str(Path(__file__).resolve().parents[2] / "src")


def _start(cfg: Path, port: int, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "MODELYARD_SIM_ZERO_LATENCY": "1"}
    path = cwd / f"serve-{port}.out"  # a file, not a pipe nobody drains (the server would block writing to it)
    with path.open("w") as out:
        args = [sys.executable, "-m", "modelyard.cli", "serve", "--config", str(cfg), "--port", str(port)]
        proc = subprocess.Popen(args, cwd=cwd, env=env, text=True, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _outputs[proc.pid] = path
    return proc


_outputs: dict[int, Path] = {}


def _ready(proc: subprocess.Popen[str], url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {_outputs[proc.pid].read_text()}")
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become ready")


def _stop(proc: subprocess.Popen[str]) -> str:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return _outputs.pop(proc.pid).read_text()


@pytest.fixture
def replicas(pg_server: PgServer, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    url = pg_server.createdb("replicas")
    procs, urls = [], []
    for name in ("a", "b"):
        data = default_config_data(sim_only=True)
        data["store"] = url
        data.setdefault("server", {}).update(master_key=KEY, request_log={
            "path": str(tmp_path / f"{name}.db"), "flush_interval_s": 0.05})
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(yaml.safe_dump(data))
        port = free_port()
        procs.append(_start(cfg, port, tmp_path))
        urls.append(f"http://127.0.0.1:{port}")
    outputs = []
    try:
        for p, u in zip(procs, urls, strict=True):
            _ready(p, u)
        yield urls[0], urls[1], url
    finally:
        outputs = [_stop(p) for p in procs]
    for out in outputs:
        assert "Traceback" not in out, out
        assert "s3cret" not in out
    assert not list(tmp_path.glob("*.db")), "a replica wrote to SQLite although Postgres was configured"


def _chat(base: str, key: str, rid: str) -> httpx.Response:
    return httpx.post(base + "/v1/chat/completions", headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                      json={"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
                      timeout=30)


def test_keys_spend_and_feedback_are_shared_between_two_servers(replicas: tuple[str, str, str],
                                                               pg_server: PgServer) -> None:
    a, b, url = replicas
    admin = {"authorization": f"Bearer {KEY}"}
    made = httpx.post(a + "/admin/keys", headers=admin, json={"name": "shared", "team": "ml"}, timeout=30)
    assert made.status_code == 201, made.text
    secret, key_id = made.json()["key"], made.json()["id"]
    deadline = time.monotonic() + 10  # the key ring polls the version every 2 s
    while _chat(b, secret, f"probe-{time.monotonic()}").status_code == 401:
        assert time.monotonic() < deadline, "the key made on A never worked on B"
        time.sleep(0.2)
    for i in range(15):
        assert _chat(a, secret, f"a-{i}").status_code in (200, 429, 502, 503)
        assert _chat(b, secret, f"b-{i}").status_code in (200, 429, 502, 503)

    async def rows() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch("SELECT id, cost_usd, status FROM requests WHERE key_id = $1", key_id)
        finally:
            await conn.close()

    for base in (a, b):  # each replica flushes its own rows before it reads the shared log: both first,
        httpx.get(base + "/admin/spend", headers=admin, params={"by": "key", "key": key_id}, timeout=30)
    for base in (a, b):  # so that the log holds every row whichever replica is asked
        body = httpx.get(base + "/admin/spend", headers=admin, params={"by": "key", "key": key_id}, timeout=30).json()
        logged = asyncio.run(rows())
        ids = {r["id"] for r in logged}
        assert {f"a-{i}" for i in range(15)} <= ids and {f"b-{i}" for i in range(15)} <= ids
        assert body["total"]["requests"] == len(logged)
        assert round(body["total"]["cost_usd"] * 1e10) == sum(cost_units(r["cost_usd"]) for r in logged)
        assert body["groups"][0]["key"] == key_id and body["groups"][0]["name"] == "shared"

    ok = [r["id"] for r in asyncio.run(rows()) if r["status"] == 200]
    served_by_a = next(i for i in ok if i.startswith("a-"))
    served_by_b = next(i for i in ok if i.startswith("b-"))
    fb = httpx.post(b + "/v1/feedback", headers={"authorization": f"Bearer {secret}"},
                    json={"request_id": served_by_a, "score": 0.25, "prompt": "hi"}, timeout=30)
    assert fb.status_code == 200, fb.text
    fb = httpx.post(a + "/v1/feedback", headers=admin, json={"request_id": served_by_b, "score": 1}, timeout=30)
    assert fb.status_code == 200, fb.text
    scored = {s.request.id: s.score for s in read_scored(register(url), only_scored=True)}
    assert scored == {served_by_a: 0.25, served_by_b: 1.0}

    # Postgres crashes under load from both replicas and comes back: every request's row arrives
    sent: list[str] = []

    async def load(stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(base: str, rid: str) -> None:
                r = await client.post(base + "/v1/chat/completions", headers={**admin, "x-request-id": rid},
                                      json={"model": "sim/fast", "messages": [{"role": "user", "content": "x"}],
                                            "max_tokens": 5})
                assert r.status_code < 500 or r.status_code in (502, 503), r.text
                sent.append(rid)

            n = 0
            while not stop.is_set():
                await asyncio.gather(*(one(a if i % 2 else b, f"load-{n + i}") for i in range(8)))
                n += 8

    async def crash_and_restart() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(load(stop))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(pg_server.stop, "immediate")
        await asyncio.sleep(2.0)
        await asyncio.to_thread(pg_server.start)
        await asyncio.sleep(0.5)
        stop.set()
        await task

    asyncio.run(crash_and_restart())

    async def load_ids() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            return {r[0] for r in await conn.fetch("SELECT id FROM requests WHERE id LIKE 'load-%'")}
        finally:
            await conn.close()

    deadline = time.monotonic() + 30
    while (got := asyncio.run(load_ids())) != set(sent) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert len(sent) > 100 and got == set(sent), f"{len(set(sent) - got)} of {len(sent)} rows missing"
