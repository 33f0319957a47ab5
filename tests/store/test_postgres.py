"""What only the Postgres backend has: versioned migrations (at start and `modelyard db migrate`), new
`Row` columns added in place, a refused row dropped alone, and a writer that survives the database
going away and coming back (rows buffered or spilled, then written; nothing lost). A real server."""

from __future__ import annotations

import asyncio
import glob
import logging
import time
from pathlib import Path

import asyncpg
import pytest
from pg_server import PgServer, pg_server_fixture, pg_url_fixture  # noqa: F401  (fixtures)
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.loader import parse_config
from modelyard.store.location import locate, redact, register
from modelyard.store.postgres.db import database, run
from modelyard.store.postgres.log import PgContentRetention, PgRequestLog
from modelyard.store.postgres.schema import VERSION
from modelyard.store.rows import COLUMNS, request_row


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_locations_keep_the_password_out() -> None:
    loc = register("postgresql://gw:s3cret-pw@db.internal:5432/records?sslmode=require")
    assert loc == "postgresql://gw@db.internal:5432/records?sslmode=require" and "s3cret" not in loc
    assert redact("postgresql://gw@h/db") == "postgresql://gw@h/db"
    dep = {"deployments": {"a": {"provider": "sim", "model": "gpt-4o-mini"}}}
    assert locate(parse_config({**dep, "store": "sqlite:////var/lib/my/records.db"})) == "/var/lib/my/records.db"
    assert locate(parse_config({**dep, "store": "sqlite:///rel.db"})) == "rel.db"
    assert locate(parse_config(dep)) == "modelyard.db"


async def test_migrations_are_versioned_idempotent_and_add_new_columns(pg_url: str) -> None:
    loc = register(pg_url)
    assert run(loc, lambda c: c.fetchval("SELECT MAX(version) FROM schema_migrations")) == VERSION
    # a table made before a column was appended to Row: the next start adds it in place, rows kept
    conn = await asyncpg.connect(pg_url)
    await conn.execute("ALTER TABLE requests DROP COLUMN upstream_ms")
    await conn.execute("INSERT INTO requests (id, ts, model, status, api) VALUES ('old', 1, 'g', 200, 'openai')")
    await conn.close()
    result = CliRunner().invoke(app, ["db", "migrate", "--config", _config(Path("."), pg_url)])
    assert result.exit_code == 0, result.output
    assert f"schema version {VERSION}" in result.output and "nothing to apply" in result.output
    rows = await _fetch(pg_url, "SELECT id, upstream_ms FROM requests")
    assert [tuple(r) for r in rows] == [("old", None)]
    cols = await _fetch(pg_url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests'")
    assert {r[0] for r in cols} >= set(COLUMNS)
    indexes = dict(tuple(r) for r in await _fetch(pg_url, "SELECT indexname, indexdef FROM pg_indexes "
                                                          "WHERE tablename = 'requests'"))
    for name, column in (("requests_key_ts", "key_id"), ("requests_team_ts", "team"), ("requests_user_ts", '"user"')):
        assert indexes[name].endswith(f"WHERE ({column} IS NOT NULL)"), indexes[name]


def _config(tmp: Path, url: str) -> str:
    p = tmp.resolve() / f"pg-{abs(hash(url))}.yaml"
    p.write_text(f"store: {url}\ndeployments:\n  a: {{provider: sim, model: gpt-4o-mini}}\n")
    return str(p)


def test_db_migrate_on_a_new_database_and_on_sqlite(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.createdb("fresh_migrate")
    r = CliRunner().invoke(app, ["db", "migrate", "--config", _config(tmp_path, url)])
    assert r.exit_code == 0, r.output
    applied = ", ".join(map(str, range(1, VERSION + 1)))
    assert f"schema version {VERSION} (applied {applied})" in r.output
    assert "@" in r.output and "postgres@127.0.0.1" in r.output
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"store: sqlite:///{tmp_path}/records.db\ndeployments: {{a: {{provider: sim, model: m}}}}\n")
    r = CliRunner().invoke(app, ["db", "migrate", "--config", str(cfg)])
    assert r.exit_code == 0 and (tmp_path / "records.db").exists(), r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"store: postgresql://postgres@127.0.0.1:{pg_server.port + 1}/nowhere\n"
                   "deployments: {a: {provider: sim, model: m}}\n")
    r = CliRunner().invoke(app, ["db", "migrate", "--config", str(bad)])
    assert r.exit_code == 1 and "cannot migrate" in r.output


async def test_a_refused_row_is_dropped_alone_and_counted(pg_url: str, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    log = PgRequestLog(register(pg_url), flush_interval_s=60, spill_path=str(tmp_path / "x"))
    await log.start()
    log.record(request_row("good-1", "g", 200))
    log.record(request_row("bad", "g", 200)._replace(input_tokens=2**70))  # out of BIGINT's range
    log.record(request_row("good-2", "g", 200))
    with caplog.at_level(logging.ERROR, "modelyard.request_log"):
        assert await log.flush()
    await log.close()
    assert log.written == 2 and log.dropped == 1
    assert "'bad'" in caplog.text
    assert sorted(r[0] for r in await _fetch(pg_url, "SELECT id FROM requests")) == ["good-1", "good-2"]


async def test_the_writer_survives_postgres_going_away_and_loses_nothing(tmp_path: Path) -> None:
    """A server of its own: stopped under load, restarted; buffered and spilled rows all arrive."""
    server = PgServer()
    try:
        server.start()
        url = server.createdb("restart")
        loc = register(url)
        log = PgRequestLog(loc, flush_interval_s=0.05, max_buffer_rows=300, retry_max_interval_s=0.5,
                           spill_path=str(tmp_path / "log.db.postgres"))
        await log.start()
        n = 0

        async def traffic(count: int) -> None:
            nonlocal n
            for _ in range(count):
                log.record(request_row(f"r{n}", "g", 200))
                n += 1
                if n % 20 == 0:
                    await asyncio.sleep(0.01)

        await traffic(200)
        server.stop("immediate")  # a crash, not a polite shutdown
        await traffic(1500)  # past the buffer: the excess spills to a file
        deadline = time.monotonic() + 10
        while log.failures == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert log.failures > 0 and not log.available
        assert glob.glob(str(tmp_path / "log.db.postgres.spill-*.jsonl"))
        server.start()
        await traffic(300)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (log.pending or log.written < n):
            await asyncio.sleep(0.1)
        await log.close()
        assert log.dropped == 0 and log.spilled > 0
        ids = [r[0] for r in await _fetch(url, "SELECT id FROM requests")]
        assert len(ids) == n == 2000 and len(set(ids)) == n  # every row once
        assert not glob.glob(str(tmp_path / "log.db.postgres.spill-*.jsonl"))
        database(loc).close()
    finally:
        server.destroy()


def test_keys_spend_and_stats_commands_on_postgres(pg_url: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, pg_url)
    demo_log = Path("modelyard.db")  # (the session's working directory: other tests may have made it)
    before = demo_log.stat().st_mtime_ns if demo_log.exists() else None
    invoke = CliRunner().invoke
    made = invoke(app, ["keys", "create", "--config", cfg, "--name", "cli", "--team", "ml", "--json"])
    assert made.exit_code == 0, made.output
    listed = invoke(app, ["keys", "list", "--config", cfg, "--json"])
    assert listed.exit_code == 0 and '"cli"' in listed.output, listed.output
    sp = invoke(app, ["spend", "--config", cfg, "--by", "team", "--since", "7d", "--json"])
    assert sp.exit_code == 0 and '"requests": 0' in sp.output.replace('"requests":0', '"requests": 0'), sp.output
    st = invoke(app, ["stats", "--config", cfg, "--window", "1h", "--json"])
    assert st.exit_code == 0, st.output
    assert not list(tmp_path.glob("*.db"))
    assert (demo_log.stat().st_mtime_ns if demo_log.exists() else None) == before


async def test_content_retention_clears_old_prompts_and_feedback_text_on_postgres(pg_url: str) -> None:
    """Opt-in message content older than `content_retention_days` is cleared in bounded batches; the rows
    (counts, cost) stay."""
    loc = register(pg_url)
    log = PgRequestLog(loc, flush_interval_s=0.02, content_retention_days=7)
    ret = log.content_retention
    assert isinstance(ret, PgContentRetention)
    ret.batch = 4
    log.content_retention = None  # stepped by this test alone (the writer would race it for the counts)
    for i in range(10):
        log.record(request_row(f"c{i}", "m", 200, prompt='[{"role": "user"}]', response="[]"))
    await log.start()
    await log.flush()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("UPDATE requests SET ts = 1000 WHERE id <> 'c9'")  # nine rows long past retention
        await conn.execute("INSERT INTO feedback (request_id, ts, score, comment, prompt) VALUES "
                           "('c0', 1000, 1, 'old words', 'old prompt'), ('c9', $1, 1, 'new words', NULL)", time.time())
        while (n := await asyncio.to_thread(ret.step_on, log)) > 0:
            assert n <= 8  # at most `batch` rows of each table per step
        assert ret.cleared == 9 + 1
        rows = {r["id"]: r["prompt"] for r in await conn.fetch("SELECT id, prompt FROM requests")}
        assert len(rows) == 10 and rows["c9"] is not None and all(rows[f"c{i}"] is None for i in range(9))
        fb = {r["comment"] for r in await conn.fetch("SELECT comment FROM feedback")}
        assert fb == {None, "new words"}
    finally:
        await conn.close()
        await log.close()
