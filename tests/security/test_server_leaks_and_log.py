"""Issue-18 defects checked end to end on the real server (uvicorn with the serve command's protocol),
where the other tests check them one layer down:

- an upstream that echoes the gateway's credentials and leaks its own: neither reaches the client nor
  the request log, and its 401 is the gateway's 502;
- the request log survives a repeated `x-request-id` and a lock held past the busy wait;
- what one request can write into the log is bounded;
- refused (401) and unparsable (400) requests are logged, without key material;
- feedback is accepted only from the key that made the request (or the master key).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from kit import ANSWER, GuardedServer, Upstream, one_deployment

from modelyard.defaults import default_config_data

UP_KEY = "sk-upstream-secret-0123456789abcdefghij"
HEADER_SECRET = "org-token-9f8e7d6c5b4a39281706"
DB_URL = "postgres://admin:hunter2@db.internal:5432/prod"


def _echo_leak(request: web.Request) -> str:
    creds = " ".join(f"{k}={v}" for k, v in request.headers.items())
    return f"upstream failed: {creds} while talking to {DB_URL}"


def _rows(db: str, sql: str, params: tuple[Any, ...] = (), n: int = 1, timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    rows: list[Any] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as c:
            try:
                rows = c.execute(sql, params).fetchall()
            except sqlite3.OperationalError:
                rows = []
        if len(rows) >= n:
            return rows
        time.sleep(0.05)
    return rows


# --- what an upstream leaks ------------------------------------------------------------------------

async def _leaky(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    mode = body["messages"][0]["content"]
    if mode == "no-choices":  # a 200 without choices, quoting what it was sent
        return web.json_response({"object": "chat.completion", "detail": _echo_leak(request)})
    if mode == "not-json":
        return web.Response(status=500, text="<html>" + _echo_leak(request) + "</html>", content_type="text/html")
    if mode == "refused":
        return web.json_response({"error": {"message": "bad key " + _echo_leak(request),
                                            "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401)
    if mode == "retry-inf":  # a hostile Retry-After must not crash the error path
        return web.json_response({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                                 headers={"retry-after": "inf"})
    if mode == "bad-event" and body.get("stream"):
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: {not json " + _echo_leak(request).encode() + b"\n\n")
        await resp.write_eof()
        return resp
    return web.json_response(ANSWER)


CASES = [("no-choices", False), ("not-json", False), ("refused", False), ("refused", True), ("bad-event", True),
         ("retry-inf", False), ("retry-inf", True)]


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedServer]:
    up = Upstream(_leaky)
    cfg = one_deployment(up.api_base)
    for mode, stream in CASES:  # a deployment (and its breaker) per case: one case's failures do not close the next
        name = f"{mode}-{int(stream)}"
        cfg["deployments"][name] = {"provider": "openai", "model": "up", "api_base": up.api_base,
                                    "api_key": "env:LEAK_TEST_UP_KEY",
                                    "headers": {"X-Org-Token": "${LEAK_TEST_HEADER}"}}
    mp = pytest.MonkeyPatch()
    mp.setenv("LEAK_TEST_UP_KEY", UP_KEY)
    mp.setenv("LEAK_TEST_HEADER", HEADER_SECRET)
    try:
        with GuardedServer(tmp_path_factory.mktemp("leaky"), cfg) as s:
            yield s
    finally:
        mp.undo()


@pytest.mark.parametrize(("mode", "stream"), CASES)
def test_upstream_leaks_reach_neither_client_nor_log(leaky: GuardedServer, mode: str, stream: bool) -> None:
    rid = f"leak-{mode}-{stream}"
    r = httpx.post(f"{leaky.url}/v1/chat/completions", timeout=30, headers={"x-request-id": rid},
                   json={"model": f"{mode}-{int(stream)}", "stream": stream,
                         "messages": [{"role": "user", "content": mode}]})
    text = r.text
    assert r.status_code >= 400 or "error" in text, text
    for secret in (UP_KEY, HEADER_SECRET, "hunter2", "db.internal"):
        assert secret not in text, (mode, secret, text)
    if mode == "retry-inf":
        assert r.status_code in (429, 503) and r.headers["content-type"].startswith("application/json"), text
        assert 0 <= float(r.headers.get("retry-after", "0")) <= 3600
    if mode == "refused":
        assert r.status_code == 502 and "gateway's credentials" in text and "invalid_api_key" not in text
    assert leaky.db is not None
    row = _rows(leaky.db, "SELECT status, error FROM requests WHERE id = ?", (rid,))
    assert row, rid
    with sqlite3.connect(leaky.db) as c:
        dump = "\n".join(str(x) for x in c.execute("SELECT * FROM requests").fetchall())
    for secret in (UP_KEY, HEADER_SECRET, "hunter2"):
        assert secret not in dump, (mode, secret)


# --- the request log survives ------------------------------------------------------------------------

def test_log_survives_repeated_ids_and_a_long_lock(tmp_path: Path) -> None:
    cfg = default_config_data(sim_only=True)
    cfg["server"] = {"request_log": {"busy_timeout_s": 0.2, "retry_max_interval_s": 0.3, "flush_interval_s": 0.05}}
    with GuardedServer(tmp_path, cfg) as s:
        assert s.db is not None

        def ask(rid: str) -> None:
            r = httpx.post(f"{s.url}/v1/chat/completions", timeout=30, headers={"x-request-id": rid},
                           json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200

        for _ in range(3):
            ask("same-id")
        ask("after-repeats")
        assert len(_rows(s.db, "SELECT id FROM requests WHERE id IN ('same-id', 'after-repeats')", n=4)) == 4

        holder = sqlite3.connect(s.db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            for i in range(5):
                ask(f"locked-{i}")
            time.sleep(1.5)  # several busy waits and retries go by
            assert holder.execute("SELECT COUNT(*) FROM requests WHERE id LIKE 'locked-%'").fetchone()[0] == 0
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        ask("after-lock")
        got = _rows(s.db, "SELECT id FROM requests WHERE id LIKE 'locked-%' OR id = 'after-lock'", n=6)
        assert len(got) == 6, got


# --- bounded rows, refused requests logged ------------------------------------------------------------

def test_one_request_writes_a_bounded_row_and_refusals_are_logged(tmp_path: Path) -> None:
    cfg = default_config_data(sim_only=True)
    with GuardedServer(tmp_path, cfg, master_key="bounded-master-key") as s:
        assert s.db is not None
        auth = {"authorization": "Bearer bounded-master-key"}
        huge_id = "r" * 20_000
        r = httpx.post(f"{s.url}/v1/chat/completions", timeout=30, headers={**auth, "x-request-id": huge_id},
                       json={"model": "auto", "user": "u" * 100_000,
                             "metadata": {f"k{i}": "v" * 500 for i in range(16)},
                             "messages": [{"role": "user", "content": "hello " * 2000}]})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{s.url}/v1/chat/completions", timeout=30,
                       headers={"authorization": "Bearer not-the-key-at-all", "x-request-id": "refused-401"},
                       json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 401
        r = httpx.post(f"{s.url}/v1/chat/completions", timeout=30, content=b"{not json",
                       headers={**auth, "x-request-id": "refused-400", "content-type": "application/json"})
        assert r.status_code == 400
        rows = _rows(s.db, "SELECT id, user, status, length(COALESCE(route, '')) FROM requests", n=3)
        assert len(rows) == 3
        big = next(row for row in rows if row[0].startswith("rrrr"))
        assert len(big[0]) <= 200 and len(big[1]) <= 256 and big[3] <= 16_384
        by_id = {row[0]: row[2] for row in rows}
        assert by_id["refused-401"] == 401 and by_id["refused-400"] == 400
        with sqlite3.connect(s.db) as c:
            dump = "\n".join(str(x) for x in c.execute("SELECT * FROM requests").fetchall())
        assert "not-the-key-at-all" not in dump and "bounded-master-key" not in dump
        assert Path(s.db).stat().st_mode & 0o077 == 0  # the log is private


# --- operator caps bound what a client may ask for -----------------------------------------------------

def test_operator_caps_bound_client_overrides(tmp_path: Path) -> None:
    with GuardedServer(tmp_path, default_config_data(sim_only=True)) as s:
        def ask(modelyard: dict[str, Any]) -> httpx.Response:
            return httpx.post(f"{s.url}/v1/chat/completions", timeout=30, json={
                "model": "fast", "messages": [{"role": "user", "content": "hi"}], "modelyard": modelyard})

        r = ask({"max_attempts": 20})
        assert r.status_code == 400 and "resilience.caps.max_attempts" in r.json()["error"]["message"]
        r = ask({"timeout_s": 86400})
        assert r.status_code == 400 and "resilience.caps.max_timeout_s" in r.json()["error"]["message"]
        deps = ["sim/fast", "sim/local", "sim/balanced", "sim/frontier"]
        r = ask({"mode": "judge", "swap": True, "models": (deps * 4)[:16]})
        assert r.status_code == 400 and "would make 18 upstream calls" in r.json()["error"]["message"]
        assert ask({"max_attempts": 2}).status_code == 200


# --- feedback belongs to the key that made the request ---------------------------------------------------

def test_feedback_only_from_the_requests_own_key(tmp_path: Path) -> None:
    cfg = default_config_data(sim_only=True)
    with GuardedServer(tmp_path, cfg, master_key="feedback-master-key") as s:
        admin = {"authorization": "Bearer feedback-master-key"}
        a = httpx.post(f"{s.url}/admin/keys", headers=admin, json={"name": "a"}).json()["key"]
        b = httpx.post(f"{s.url}/admin/keys", headers=admin, json={"name": "b"}).json()["key"]
        r = httpx.post(f"{s.url}/v1/chat/completions", timeout=30,
                       headers={"authorization": f"Bearer {a}", "x-request-id": "fb-owned"},
                       json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200

        def feedback(key: str) -> httpx.Response:
            return httpx.post(f"{s.url}/v1/feedback", timeout=30, headers={"authorization": f"Bearer {key}"},
                              json={"request_id": "fb-owned", "score": 0.0})

        other = feedback(b)
        assert other.status_code == 404 and "made with this key" in other.json()["error"]["message"]
        assert feedback(a).status_code == 200
        assert feedback("feedback-master-key").status_code == 200
        assert s.db is not None
        with sqlite3.connect(s.db) as c:
            assert c.execute("SELECT COUNT(*) FROM feedback WHERE request_id = 'fb-owned'").fetchone()[0] == 2

