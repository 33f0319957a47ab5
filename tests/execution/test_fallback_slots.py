"""Typed fallbacks take a deployment rpm slot: a fallback added during execution (context window,
content policy, a request's own fallbacks) with `rpm: 1` serves once in the minute, then is skipped —
its verdict in the logged decision, a 429 naming it to the client — over the real server and a
scripted upstream (tests/faults)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from fault_upstream import CONTEXT, POLICY, FaultUpstream, status
from faultkit import chat, config, gateway_of, wait_for

from conftest import make_server
from modelyard.tokens import token_bound
from modelyard.types import Message

CARDS = {"small-ctx": {"context_window": 8192}, "big-ctx": {"context_window": 200_000}}


@pytest.fixture(scope="module")
def up() -> Iterator[FaultUpstream]:
    with FaultUpstream() as u:
        yield u


@pytest.fixture(autouse=True)
def _fresh(up: FaultUpstream) -> None:
    up.reset()


def logged_verdict(server: Any, name: str) -> str | None:
    """The verdict on `name` in the last logged decision (the log is written off the request path)."""
    log = gateway_of(server).request_log
    assert wait_for(lambda: len(log.query("SELECT 1 FROM requests")) == 2)
    rows = log.query("SELECT route FROM requests ORDER BY row_id")
    for (route,) in rows[-1:]:
        for c in orjson.loads(route)["candidates"] if route else ():
            if c["deployment"] == name:
                return str(c["reason"])
    return None


@pytest.mark.parametrize(("fault", "kind", "stream"), [
    (CONTEXT, "context_window_fallbacks", False),
    (CONTEXT, "context_window_fallbacks", True),
    (POLICY, "content_policy_fallbacks", False),
])
def test_typed_fallback_with_rpm_1_serves_once_then_is_refused(tmp_path: Path, up: FaultUpstream, fault: Any,
                                                               kind: str, stream: bool) -> None:
    up.script("small", then=fault)
    deps = {"small": {"card": "small-ctx"}, "big": {"card": "big-ctx", "rpm": 1}}
    with make_server(tmp_path, config(up, deps, {"g": {"deployments": ["small"], kind: ["big"]}},
                                      catalog=CARDS)) as s:
        first = chat(s.url, stream=stream)
        second = chat(s.url, stream=stream)
        verdict = logged_verdict(s, "big")
    assert first.status == 200 and first.deployment == "big" and first.fallbacks == ["small"]
    assert second.status == 429, second.body
    err = second.body["error"]
    assert err["code"] == "rate_limit_exceeded" and "deployment:big" in err["message"]
    assert 0 < int(second.headers["retry-after"]) <= 60
    assert up.hits["big"] == 1 and up.hits["small"] == 2  # the full fallback was never called
    assert verdict is not None and verdict.startswith("fallback skipped: rpm limit reached (1/1")


def test_a_full_typed_fallback_is_skipped_for_the_next_one(tmp_path: Path, up: FaultUpstream) -> None:
    up.script("small", then=CONTEXT)
    deps = {"small": {"card": "small-ctx"}, "big": {"card": "big-ctx", "rpm": 1}, "big2": {"card": "big-ctx"}}
    with make_server(tmp_path, config(up, deps, {"g": {"deployments": ["small"],
                                                       "context_window_fallbacks": ["big", "big2"]}},
                                      catalog=CARDS)) as s:
        served = [chat(s.url).deployment for _ in range(3)]
    assert served == ["big", "big2", "big2"] and up.hits["big"] == 1


def test_per_request_fallbacks_take_a_slot_too(tmp_path: Path, up: FaultUpstream) -> None:
    up.script("a", then=status(503))
    deps = {"a": "openai", "c": {"rpm": 1}}
    with make_server(tmp_path, config(up, deps, {"g": {"deployments": ["a"]}})) as s:
        r1 = chat(s.url, metadata={"fallbacks": ["c"], "max_attempts": 2})
        r2 = chat(s.url, metadata={"fallbacks": ["c"], "max_attempts": 2})
        verdict = logged_verdict(s, "c")
    assert r1.status == 200 and r1.deployment == "c"
    # c is full: skipped; the plan retries a, whose 503 is then the last word
    assert r2.status == 503 and up.hits["c"] == 1 and up.hits["a"] == 3
    assert verdict is not None and verdict.startswith("fallback skipped: rpm limit reached (1/1")


def test_a_fallbacks_slot_is_recounted_to_the_billed_tokens(tmp_path: Path, up: FaultUpstream) -> None:
    """The slot is taken at the request's estimate (its prompt's character bound); once the fallback
    has answered, the window holds what it billed (15 tokens), so the next request fits again."""
    text = "word " * 400
    estimate = token_bound([Message("user", text)])
    up.script("a", then=status(503))
    deps = {"a": "openai", "c": {"tpm": int(estimate * 1.5)}}
    with make_server(tmp_path, config(up, deps, {"g": {"deployments": ["a"]}})) as s:
        served = [chat(s.url, text=text, metadata={"fallbacks": ["c"], "max_attempts": 2}) for _ in range(3)]
        window = gateway_of(s).accounting.limits.store.rate_used("rate:deployment:c", time.time())
    assert [r.status for r in served] == [200, 200, 200] and up.hits["c"] == 3
    assert window == (3, 45)  # three calls, each recounted to its 10 + 5 billed tokens
