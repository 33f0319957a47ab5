"""The request log survives its database: a repeated client request id, a lock held past the busy wait,
a path that cannot be opened, a shutdown while rows are buffered. Real SQLite files, the real gateway
on the sim fleet (and the real server for SIGTERM); each case ends with every row on disk or counted."""

from __future__ import annotations

import asyncio
import glob
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from modelyard.defaults import default_config_data
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message

MODEL = "sim/fast"


def gateway(path: Path, **log: Any) -> Gateway:
    data = default_config_data(sim_only=True)
    data.setdefault("server", {})["request_log"] = {"path": str(path), "flush_interval_s": 0.05, **log}
    return Gateway(parse_config(data, "test.yaml"), source="test.yaml")


async def ask(gw: Gateway, rid: str) -> None:
    req = ChatRequest(model=MODEL, messages=[Message("user", "hello")], max_tokens=5)
    try:
        await gw.chat(req, request_id=rid)
    except Exception:  # a simulated upstream failure is logged too
        pass


def ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM requests")]
    except sqlite3.OperationalError:  # created, schema not written yet
        return []
    finally:
        conn.close()


async def until(cond: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return bool(cond())


def lock(path: Path) -> sqlite3.Connection:
    """Another connection holding the write lock (a backup, a long write)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


async def test_a_repeated_client_request_id_does_not_stop_the_log(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    async with gateway(db) as gw:
        for rid in ("dup", "dup", "after-1", "dup", "after-2"):
            await ask(gw, rid)
        assert await until(lambda: len(ids(db)) == 5)
        await ask(gw, "later")
    assert sorted(ids(db)) == ["after-1", "after-2", "dup", "dup", "dup", "later"]


async def test_rows_arrive_after_a_lock_held_past_the_busy_wait(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    gw = gateway(db)  # SQLite's default busy wait: 5 s
    async with gw:
        await ask(gw, "before")
        assert await until(lambda: ids(db) == ["before"])
        holder = lock(db)
        for i in range(30):
            await ask(gw, f"locked-{i}")
        await asyncio.sleep(6.5)  # longer than the busy wait
        holder.execute("ROLLBACK")
        holder.close()
        for i in range(5):
            await ask(gw, f"after-{i}")
        assert await until(lambda: len(ids(db)) == 36), "logging did not resume by itself"


async def test_a_full_buffer_spills_to_a_private_file_replayed_on_recovery(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    gw = gateway(db)
    log = gw.request_log
    assert log is not None
    log.busy_timeout_s = 0.1
    log.max_buffer_rows = 50
    async with gw:
        await ask(gw, "first")
        assert await until(lambda: ids(db) == ["first"])
        holder = lock(db)
        for i in range(400):
            await ask(gw, f"r{i}")
            await asyncio.sleep(0.002)  # traffic arrives over time; the spill thread runs meanwhile
            assert log.pending <= 2 * 50  # memory stays bounded while the database refuses writes
        assert await until(lambda: bool(glob.glob(f"{db}.spill-*.jsonl")))
        for f in glob.glob(f"{db}.spill-*.jsonl"):
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        holder.execute("ROLLBACK")
        holder.close()
        assert await until(lambda: len(ids(db)) == 401), "spilled rows were not replayed"
        assert log.dropped == 0 and log.spilled > 0
        assert await until(lambda: not glob.glob(f"{db}.spill-*.jsonl"))


async def test_a_broken_path_bounds_memory_counts_the_loss_and_recovers(tmp_path: Path) -> None:
    db = tmp_path / "not-yet" / "log.db"  # the directory (a mount, say) is not there
    gw = gateway(db)
    log = gw.request_log
    assert log is not None
    log.max_buffer_rows = 50
    log.retry_max_interval_s = 0.2
    async with gw:  # the gateway starts and serves anyway
        for i in range(300):
            await ask(gw, f"lost-{i}")
            assert log.pending <= 2 * 50
        # the first 50 wait in memory; the next 50 tried the spill file (no directory either); the rest: lost
        assert await until(lambda: log.dropped == 250 and log.pending == 50)
        assert not log.available and log.last_error
        db.parent.mkdir()
        for i in range(10):
            await ask(gw, f"kept-{i}")
        assert await until(lambda: db.exists() and sum(r.startswith("kept-") for r in ids(db)) == 10)
    assert log.dropped + len(ids(db)) == 310  # every row is on disk or counted


async def test_database_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        db = tmp_path / "log.db"
        async with gateway(db) as gw:
            await ask(gw, "one")
            assert await until(lambda: ids(db) == ["one"])
            for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        os.umask(old)


def test_old_database_keeps_its_rows_and_takes_repeated_ids(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE requests (id TEXT PRIMARY KEY, ts REAL NOT NULL, model TEXT NOT NULL, deployment "
                 "TEXT, provider TEXT, status INTEGER NOT NULL, error_type TEXT, error TEXT, input_tokens INTEGER "
                 "NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0, cached_input_tokens INTEGER NOT "
                 "NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, "
                 "latency_ms REAL, ttft_ms REAL, stream INTEGER NOT NULL DEFAULT 0, user TEXT, api TEXT, route TEXT)")
    conn.executemany("INSERT INTO requests (id, ts, model, status, cost_usd) VALUES (?, ?, 'g', 200, 0.5)",
                     [(f"old-{i}", float(i)) for i in range(100)])
    conn.commit()
    conn.close()

    async def run() -> None:
        async with gateway(db) as gw:
            await ask(gw, "old-7")  # the same id as a row from before
            await ask(gw, "old-7")

    asyncio.run(run())
    got = ids(db)
    assert len(got) == 102 and got.count("old-7") == 3
    conn = sqlite3.connect(db)
    old_rows = "SELECT SUM(cost_usd) FROM requests WHERE id LIKE 'old-%' AND model = 'g'"
    assert conn.execute(old_rows).fetchone() == (50.0,)
    conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_writes_every_buffered_row(tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    data = default_config_data(sim_only=True)
    data.setdefault("server", {})["request_log"] = {"path": str(db), "flush_interval_s": 60}  # only on exit
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(yaml.safe_dump(data))
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from modelyard.cli import app; app()", "serve", "--config",
                             str(cfg), "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.1)
        sent = ["a", "dup", "b", "dup", "c"]  # a client that repeats its request id
        for rid in sent:
            httpx.post(f"{url}/v1/chat/completions", headers={"x-request-id": rid}, timeout=10,
                       json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert sorted(ids(db)) == sorted(sent), out.decode(errors="replace")
