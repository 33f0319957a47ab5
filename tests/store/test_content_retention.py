"""Content retention: prompts, answers and feedback text older than `content_retention_days` are
cleared in bounded batches by the request log's own writer; the rows and everything else stay."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from modelyard.store.feedback import FeedbackStore
from modelyard.store.retention import ContentRetention
from modelyard.store.rows import request_row
from modelyard.store.schema import connect
from modelyard.store.sqlite import RequestLog

DAY = 86400.0


def _fill(path: str, old: int, new: int) -> None:
    """`old` rows from 10 days ago and `new` from now, each with content; feedback on two of each."""
    conn = connect(path, 5.0)
    now = time.time()
    rows = []
    for i in range(old + new):
        r = request_row(f"r{i}", "m", 200, cost_usd=0.01, prompt=f'[{{"content": "prompt {i}"}}]',
                        response=f'[{{"content": "answer {i}"}}]')
        rows.append(r._replace(ts=now - 10 * DAY if i < old else now))
    from modelyard.store.schema import INSERT

    conn.executemany(INSERT, rows)
    for i, ts in ((0, now - 10 * DAY), (1, now - 10 * DAY), (old, now), (old + 1, now)):
        conn.execute("INSERT INTO feedback (request_id, ts, score, comment, prompt) VALUES (?, ?, 1, ?, ?)",
                     (f"r{i}", ts, f"comment {i}", f"feedback prompt {i}"))
    conn.close()


def _counts(path: str) -> tuple[int, int, int, float]:
    """(rows, rows with content, feedback rows with text, total cost)."""
    with sqlite3.connect(path) as c:
        rows, cost = c.execute("SELECT COUNT(*), SUM(cost_usd) FROM requests").fetchone()
        content = c.execute("SELECT COUNT(*) FROM requests WHERE prompt IS NOT NULL OR response IS NOT NULL"
                            ).fetchone()[0]
        fb = c.execute("SELECT COUNT(*) FROM feedback WHERE prompt IS NOT NULL OR comment IS NOT NULL").fetchone()[0]
    return rows, content, fb, round(cost, 6)


def test_clears_old_content_in_batches_and_keeps_the_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    _fill(path, old=25, new=5)
    ret = ContentRetention(7, batch=10)
    conn = connect(path, 5.0)
    try:
        assert ret.step(conn) == 10 + 2  # ten request rows, both old feedback rows
        assert ret.due()  # a backlog remains: the next batch is due at once
        assert _counts(path)[:3] == (30, 20, 2)
        assert ret.step(conn) == 10
        assert ret.step(conn) == 5
        assert not ret.due()  # done: next check in `every_s`
        assert ret.step(conn) == 0
    finally:
        conn.close()
    assert _counts(path) == (30, 5, 2, 0.3)  # every row and its cost kept; the new content untouched
    with sqlite3.connect(path) as c:
        kept = {r[0] for r in c.execute("SELECT id FROM requests WHERE prompt IS NOT NULL")}
        assert kept == {f"r{i}" for i in range(25, 30)}
        assert c.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 4
        assert c.execute("SELECT COUNT(*) FROM feedback WHERE score = 1").fetchone()[0] == 4  # scores stay


def test_the_step_finds_content_through_the_partial_index(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    conn = connect(path, 5.0)
    try:
        plan = " ".join(str(r) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT row_id FROM requests WHERE (prompt IS NOT NULL OR response IS NOT NULL) "
            "AND ts < ? LIMIT 10", (0.0,)))
        assert "requests_content_ts" in plan
        plan = " ".join(str(r) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM feedback WHERE (prompt IS NOT NULL OR comment IS NOT NULL) "
            "AND ts < ? LIMIT 10", (0.0,)))
        assert "feedback_text_ts" in plan
    finally:
        conn.close()


def test_the_writer_clears_content_by_itself_while_logging(tmp_path: Path) -> None:
    path = str(tmp_path / "log.db")
    _fill(path, old=40, new=3)

    async def run() -> None:
        log = RequestLog(path, flush_interval_s=0.02, content_retention_days=7)
        assert log.content_retention is not None
        log.content_retention.batch = 15
        await log.start()
        try:
            log.record(request_row("fresh", "m", 200, prompt="[]", response="[]"))
            deadline = time.monotonic() + 10
            while _counts(path)[1] > 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await log.close()
        assert log.content_retention.cleared == 40 + 2

    asyncio.run(run())
    assert _counts(path)[:3] == (44, 4, 2)


def test_feedback_store_and_schema_upgrade_keep_working(tmp_path: Path) -> None:
    """A database from before the content columns gains them in place; feedback still writes."""
    path = str(tmp_path / "old.db")
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE requests (row_id INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, ts REAL NOT "
                  "NULL, model TEXT NOT NULL, deployment TEXT, provider TEXT, status INTEGER NOT NULL, error_type "
                  "TEXT, error TEXT, input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT "
                  "0, cached_input_tokens INTEGER NOT NULL DEFAULT 0, reasoning_tokens INTEGER NOT NULL DEFAULT 0, "
                  "cost_usd REAL NOT NULL DEFAULT 0, latency_ms REAL, ttft_ms REAL, stream INTEGER NOT NULL DEFAULT "
                  "0, user TEXT, api TEXT, route TEXT)")
        c.execute("INSERT INTO requests (id, ts, model, status) VALUES ('old', 1, 'm', 200)")
    connect(path, 5.0).close()
    with sqlite3.connect(path) as c:
        cols = [r[1] for r in c.execute("PRAGMA table_info(requests)")]
        assert cols[-2:] == ["prompt", "response"]
        assert c.execute("SELECT id, prompt FROM requests").fetchall() == [("old", None)]
    assert asyncio.run(FeedbackStore(path).add("old", 1.0, comment="c")) > 0
