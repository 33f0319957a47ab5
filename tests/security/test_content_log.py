"""Prompts and answers reach the request log only where a key, a group or the default opts in, and
then redacted: checked on the real server (uvicorn, the sim fleet) by reading the SQLite files."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ServerThread, make_server
from modelyard.defaults import default_config_data
from modelyard.errors import redact

MASTER = "test-master-key"
KEYS = {"LOGGED": "sk-my-logged-key-aaaaaaaaaaaaaaaaaaaaaaaa", "QUIET": "sk-my-quiet-key-bbbbbbbbbbbbbbbbbbbbbbbbb",
        "PLAIN": "sk-my-plain-key-ccccccccccccccccccccccccc"}
LEAK = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"  # an API key a user pasted into a prompt


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    mp = pytest.MonkeyPatch()
    for name, value in KEYS.items():
        mp.setenv(f"CONTENT_TEST_{name}", value)
    cfg = default_config_data(sim_only=True)
    cfg["model_groups"]["smart"]["log_content"] = True
    cfg["model_groups"]["cheap"]["cache"] = {"mode": "exact"}
    cfg["keys"] = {"logged": {"key": "env:CONTENT_TEST_LOGGED", "log_content": True},
                   "quiet": {"key": "env:CONTENT_TEST_QUIET", "log_content": False},
                   "plain": {"key": "env:CONTENT_TEST_PLAIN"}}
    tmp = tmp_path_factory.mktemp("content")
    try:
        with make_server(tmp, cfg, master_key=MASTER) as s:
            DB[0] = str(tmp / "requests.db")
            yield s
    finally:
        mp.undo()


DB = [""]  # the module's server's request log


def _db(s: ServerThread) -> str:
    return DB[0]


def _chat(s: ServerThread, key: str, rid: str, model: str, text: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{s.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                      json={"model": model, "messages": [{"role": "user", "content": text}], **extra})


def _row(s: ServerThread, rid: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(_db(s))
        conn.row_factory = sqlite3.Row
        try:
            r = conn.execute("SELECT * FROM requests WHERE id = ?", (rid,)).fetchone()
        except sqlite3.OperationalError:
            r = None
        finally:
            conn.close()
        if r is not None:
            return dict(r)
        time.sleep(0.05)
    raise AssertionError(f"no row for {rid}")


def _files(s: ServerThread) -> bytes:
    """Every byte the log has on disk: the database and its WAL."""
    out = b""
    for suffix in ("", "-wal"):
        p = Path(_db(s) + suffix)
        if p.exists():
            out += p.read_bytes()
    return out


def test_off_unless_opted_in(gw: ServerThread) -> None:
    assert _chat(gw, KEYS["PLAIN"], "c-off", "fast", "MARKER-OFF-1 what is a queue").status_code == 200
    assert _chat(gw, KEYS["QUIET"], "c-quiet", "smart", "MARKER-OFF-2 key says no").status_code == 200
    assert _chat(gw, MASTER, "c-master-fast", "fast", "MARKER-OFF-3 master, no group setting").status_code == 200
    for rid in ("c-off", "c-quiet", "c-master-fast"):
        row = _row(gw, rid)
        assert row["prompt"] is None and row["response"] is None, rid
    files = _files(gw)
    for marker in (b"MARKER-OFF-1", b"MARKER-OFF-2", b"MARKER-OFF-3"):
        assert marker not in files


def test_per_key_kept_and_redacted(gw: ServerThread) -> None:
    r = _chat(gw, KEYS["LOGGED"], "c-key", "fast", f"MARKER-KEY my key is {LEAK} and password=hunter2secret")
    assert r.status_code == 200
    row = _row(gw, "c-key")
    prompt = json.loads(row["prompt"])
    assert prompt[0]["role"] == "user" and "MARKER-KEY" in prompt[0]["content"]
    assert "[redacted]" in prompt[0]["content"]
    answer = json.loads(row["response"])
    sent = r.json()["choices"][0]["message"]["content"]
    assert LEAK in sent  # the sim echoes the prompt: the client got the key back, the log must not keep it
    assert answer[0]["role"] == "assistant" and answer[0]["content"] == redact(sent)
    assert answer[0]["finish_reason"] == "stop"
    files = _files(gw)
    assert b"MARKER-KEY" in files
    assert LEAK.encode() not in files and b"hunter2secret" not in files  # (the sim echoes the prompt: answer too)
    assert KEYS["LOGGED"].encode() not in files


def test_per_group_and_key_false_beats_group(gw: ServerThread) -> None:
    assert _chat(gw, MASTER, "c-group", "smart", "MARKER-GROUP hello").status_code == 200
    assert "MARKER-GROUP" in _row(gw, "c-group")["prompt"]
    assert _row(gw, "c-quiet")["prompt"] is None  # (test_off_unless_opted_in: the quiet key on the logged group)


def test_stream_tool_calls_errors_cache_hits_and_anthropic(gw: ServerThread) -> None:
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {KEYS['LOGGED']}", "x-request-id": "c-stream"},
                      json={"model": "fast", "stream": True,
                            "messages": [{"role": "user", "content": "MARKER-STREAM tell me"}]}) as r:
        assert r.status_code == 200
        streamed = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                           for line in r.iter_lines() if line.startswith("data: {") and '"choices":[{' in line)
    row = _row(gw, "c-stream")
    assert json.loads(row["response"])[0]["content"] == streamed and streamed

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    r = _chat(gw, KEYS["LOGGED"], "c-tools", "fast", "MARKER-TOOLS weather in Paris?", tools=tools,
              tool_choice="required")
    assert r.status_code == 200
    call = json.loads(_row(gw, "c-tools")["response"])[0]["tool_calls"][0]
    assert call["name"] == "get_weather" and call["arguments"] == \
        r.json()["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]

    assert _chat(gw, KEYS["LOGGED"], "c-404", "no-such-model", "MARKER-ERROR hi").status_code == 404
    row = _row(gw, "c-404")
    assert "MARKER-ERROR" in row["prompt"] and row["response"] is None

    for rid in ("c-cache-1", "c-cache-2"):
        assert _chat(gw, KEYS["LOGGED"], rid, "cheap", "MARKER-CACHE same question").status_code == 200
    row = _row(gw, "c-cache-2")
    assert row["cache"] == "hit" and "MARKER-CACHE" in row["prompt"] and row["response"] is None

    r = httpx.post(f"{gw.url}/v1/messages", timeout=30,
                   headers={"x-api-key": KEYS["LOGGED"], "x-request-id": "c-anthropic",
                            "anthropic-version": "2023-06-01"},
                   json={"model": "fast", "max_tokens": 50, "system": "be brief",
                         "messages": [{"role": "user", "content": "MARKER-ANTHROPIC hi"}]})
    assert r.status_code == 200
    row = _row(gw, "c-anthropic")
    roles = [m["role"] for m in json.loads(row["prompt"])]
    assert roles == ["system", "user"] and json.loads(row["response"])[0]["content"] == r.json()["content"][0]["text"]


def test_long_content_is_cut_and_says_so(gw: ServerThread) -> None:
    from modelyard.config import RequestLogConfig

    limit = RequestLogConfig().max_content_chars
    r = _chat(gw, KEYS["LOGGED"], "c-long", "fast", "MARKER-LONG " + "x" * (limit * 2), max_tokens=5)
    assert r.status_code == 200
    prompt = _row(gw, "c-long")["prompt"]
    assert len(prompt) == limit and prompt.endswith("characters]") and "[truncated: over" in prompt
