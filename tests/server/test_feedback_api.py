"""`/v1/feedback` while the request log's database is locked: a prompt 503 that says so, never a hang
or a 500; once the lock is gone, feedback is stored again."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx

from conftest import make_server


def test_feedback_answers_promptly_while_the_database_is_locked(tmp_path: Path) -> None:
    with make_server(tmp_path) as s:
        chat = httpx.post(f"{s.url}/v1/chat/completions", timeout=10, headers={"x-request-id": "fb-1"},
                          json={"model": "sim/fast", "messages": [{"role": "user", "content": "hi"}]})
        rid = chat.headers["x-request-id"]
        db = tmp_path / "requests.db"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not sqlite3.connect(db).execute(
                "SELECT 1 FROM requests WHERE id = ?", (rid,)).fetchall():
            time.sleep(0.05)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            t0 = time.monotonic()
            r = httpx.post(f"{s.url}/v1/feedback", json={"request_id": rid, "score": 1}, timeout=30)
            took = time.monotonic() - t0
            assert r.status_code == 503, r.text
            assert "request log database is unavailable" in r.json()["error"]["message"]
            assert r.headers.get("retry-after")
            assert took < 3, took
            unknown = httpx.post(f"{s.url}/v1/feedback", json={"request_id": "nope", "score": 1}, timeout=30)
            assert unknown.status_code in (404, 503) and time.monotonic() - t0 < 6
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        ok = httpx.post(f"{s.url}/v1/feedback", json={"request_id": rid, "score": 1}, timeout=30)
        assert ok.status_code == 200, ok.text
