"""The behaviour matrix, end to end: client → real gateway HTTP server → fault-injecting upstream.

For every fault: which deployment served, how many upstream calls it took, the status the client
saw, and a latency bound that follows from the configured limits (generous slack: these are
"did not hang" bounds, not speed targets). docs/RELIABILITY.md lists the same matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fault_upstream import (
    BAD_JSON,
    CONTEXT,
    OK,
    POLICY,
    RESET,
    FaultUpstream,
    drip,
    rate_limit,
    reset_mid,
    stall,
    stall_mid,
    status,
)
from faultkit import chat, config, gateway_of, wait_for

from conftest import make_server

SLACK = 1.5  # seconds of scheduling slack on top of a configured limit


@pytest.fixture(scope="module")
def up() -> Iterator[FaultUpstream]:
    with FaultUpstream() as u:
        yield u


@pytest.fixture(autouse=True)
def _fresh(up: FaultUpstream) -> None:
    up.reset()


def serve(tmp_path: Any, up: FaultUpstream, deployments: dict[str, Any], groups: dict[str, Any], **kw: Any) -> Any:
    return make_server(tmp_path, config(up, deployments, groups, **kw))


# --- 5xx ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "code", "stream"), [
    ("openai", 500, False), ("openai", 502, True), ("openai", 503, False),
    ("anthropic", 500, True), ("anthropic", 529, False), ("anthropic", 503, True),
])
def test_5xx_falls_back_to_the_next_deployment(tmp_path, up, fmt, code, stream) -> None:
    up.script("a", then=status(code))
    with serve(tmp_path, up, {"a": fmt, "b": fmt}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url, stream=stream)
    assert r.status == 200 and r.deployment == "b" and r.text.startswith("served by b")
    assert r.attempts == 2 and r.fallbacks == ["a"]
    assert up.hits == {"a": 1, "b": 1}  # no same-deployment retry while another deployment is left


@pytest.mark.parametrize("stream", [False, True])
def test_5xx_burst_on_the_only_deployment_is_retried_with_backoff(tmp_path, up, stream) -> None:
    up.script("a", status(503), status(502))
    with serve(tmp_path, up, {"a": "openai"}, {"g": {"deployments": ["a"]}}) as s:
        r = chat(s.url, stream=stream)
    assert r.status == 200 and r.deployment == "a" and r.attempts == 3 and r.fallbacks == ["a", "a"]
    assert up.hits["a"] == 3
    assert r.elapsed < 0.05 + 0.05 + SLACK  # two backoffs of at most backoff_max_s


def test_5xx_everywhere_gives_up_after_max_attempts(tmp_path, up) -> None:
    up.script("a", then=status(503))
    up.script("b", then=status(500))
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}},
               resilience={"retry": {"max_attempts": 4}}) as s:
        r = chat(s.url)
    assert r.status == 503 and r.body["error"]["type"] == "upstream_unavailable" and r.attempts == 4
    assert up.hits["a"] + up.hits["b"] == 4  # max_attempts bounds the calls, retries included


# --- 429 ------------------------------------------------------------------------------------------

def test_rate_limit_prefers_another_deployment_over_waiting(tmp_path, up) -> None:
    up.script("a", then=rate_limit(5))
    with serve(tmp_path, up, {"a": "openai", "b": "anthropic"}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url)
    assert r.status == 200 and r.deployment == "b" and r.attempts == 2
    assert r.elapsed < SLACK  # did not sit out the 5 s Retry-After


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_rate_limit_retry_after_is_honoured_on_the_only_deployment(tmp_path, up, fmt) -> None:
    up.script("a", rate_limit(0.3))
    with serve(tmp_path, up, {"a": fmt}, {"g": {"deployments": ["a"]}}) as s:
        r = chat(s.url)
    assert r.status == 200 and r.deployment == "a" and r.attempts == 2
    assert 0.3 <= r.elapsed < 0.3 + SLACK


def test_rate_limit_with_retry_after_beyond_the_cap_goes_back_to_the_client(tmp_path, up) -> None:
    up.script("a", then=rate_limit(60))
    with serve(tmp_path, up, {"a": "openai"}, {"g": {"deployments": ["a"]}}) as s:
        r = chat(s.url)
    assert r.status == 429 and r.headers["retry-after"] == "60" and r.attempts == 1
    assert up.hits["a"] == 1 and r.elapsed < SLACK


def test_rate_limit_fallbacks_are_tried_first(tmp_path, up) -> None:
    up.script("a", then=rate_limit(5))
    with serve(tmp_path, up, {"a": "openai", "b": "openai", "spare": "openai"},
               {"g": {"deployments": ["a", "b"], "rate_limit_fallbacks": ["spare"]}}) as s:
        r = chat(s.url)
    assert r.deployment == "spare" and up.hits["b"] == 0


# --- connection resets ----------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "stream"), [("openai", False), ("openai", True), ("anthropic", False),
                                             ("anthropic", True)])
def test_reset_before_headers_falls_back(tmp_path, up, fmt, stream) -> None:
    up.script("a", then=RESET)
    with serve(tmp_path, up, {"a": fmt, "b": fmt}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url, stream=stream)
    assert r.status == 200 and r.deployment == "b" and r.attempts == 2 and r.fallbacks == ["a"]


def test_reset_mid_body_of_a_non_streamed_answer_falls_back(tmp_path, up) -> None:
    up.script("a", then=reset_mid())
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url)
    assert r.status == 200 and r.deployment == "b" and r.attempts == 2


@pytest.mark.parametrize(("fmt", "api"), [("openai", "openai"), ("anthropic", "anthropic"), ("openai", "anthropic")])
def test_reset_mid_stream_ends_with_an_error_event_and_records_the_partial_usage(tmp_path, up, fmt, api) -> None:
    up.script("a", reset_mid(chunks=2))
    with serve(tmp_path, up, {"a": fmt, "b": fmt}, {"g": {"deployments": ["a", "b"]}},
               catalog={"model-a": {"input_per_m": 1.0, "output_per_m": 2.0}}) as s:
        r = chat(s.url, stream=True, api=api)
        gw = gateway_of(s)
    # The first byte had gone out: no fallback any more, the stream ends with an error event.
    assert r.status == 200 and r.deployment == "a" and up.hits["b"] == 0
    assert r.text.startswith("served by a")
    err = r.error_event
    assert err is not None and err["error"]["type"] in ("upstream_connection_error", "api_error")
    assert r.events[-1][1] != "[DONE]"
    rows = gw.request_log.query("SELECT deployment, status, output_tokens, cost_usd FROM requests")
    assert rows == [("a", 502, rows[0][2], rows[0][3])] and rows[0][2] > 0 and rows[0][3] > 0
    assert gw.health.by_name["a"].inflight == 0


# --- stalls, drips and timeouts -------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_stall_before_first_token_falls_back_after_the_ttft_timeout(tmp_path, up, fmt) -> None:
    up.script("a", then=stall(30))
    with serve(tmp_path, up, {"a": {"fmt": fmt, "ttft_timeout_s": 0.3}, "b": fmt},
               {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url, stream=True)
    assert r.status == 200 and r.deployment == "b" and r.attempts == 2 and r.fallbacks == ["a"]
    assert 0.3 <= r.elapsed < 0.3 + SLACK
    assert wait_for(lambda: up.cancelled["a"] == 1)  # the stalled call was abandoned, not leaked


def test_stall_of_a_non_streamed_call_falls_back_after_the_deployment_timeout(tmp_path, up) -> None:
    up.script("a", then=stall(30))
    with serve(tmp_path, up, {"a": {"fmt": "openai", "timeout_s": 0.3}, "b": "openai"},
               {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url)
    assert r.status == 200 and r.deployment == "b" and 0.3 <= r.elapsed < 0.3 + SLACK
    assert wait_for(lambda: up.cancelled["a"] == 1)


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_stall_mid_stream_is_cut_by_the_idle_timeout(tmp_path, up, fmt) -> None:
    up.script("a", stall_mid(chunks=2, seconds=30))
    with serve(tmp_path, up, {"a": {"fmt": fmt, "idle_timeout_s": 0.3}, "b": fmt},
               {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url, stream=True)
        gw = gateway_of(s)
    assert r.status == 200 and r.deployment == "a" and r.text.startswith("served by a")
    err = r.error_event
    assert err is not None and err["error"]["type"] == "timeout" and "idle_timeout_s" in err["error"]["message"]
    assert r.elapsed < 0.3 + SLACK
    assert wait_for(lambda: up.cancelled["a"] == 1)
    assert gw.request_log.query("SELECT status FROM requests") == [(504,)]


def test_slow_drip_within_the_idle_timeout_completes(tmp_path, up) -> None:
    up.script("a", drip(0.1, chunks=5))
    with serve(tmp_path, up, {"a": {"fmt": "openai", "idle_timeout_s": 0.5}}, {"g": {"deployments": ["a"]}}) as s:
        r = chat(s.url, stream=True)
    assert r.status == 200 and r.error_event is None and r.events[-1][1] == "[DONE]"
    assert r.text == "served by a word0 word1 word2 word3" and r.elapsed >= 0.4


def test_slow_drip_past_the_request_deadline_is_cut_at_the_deadline(tmp_path, up) -> None:
    up.script("a", drip(0.2, chunks=30))
    with serve(tmp_path, up, {"a": "anthropic"}, {"g": {"deployments": ["a"]}}) as s:
        r = chat(s.url, stream=True, metadata={"timeout_s": 1.0})
    assert r.status == 200 and r.text.startswith("served by a")
    err = r.error_event
    assert err is not None and err["error"]["type"] == "timeout"
    assert 1.0 <= r.elapsed < 1.0 + SLACK


@pytest.mark.parametrize("stream", [False, True])
def test_the_request_deadline_bounds_every_attempt(tmp_path, up, stream) -> None:
    up.script("a", then=stall(30))
    up.script("b", then=stall(30))
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url, stream=stream, metadata={"timeout_s": 0.5})
    assert r.status == 504 and r.body["error"]["type"] == "timeout" and r.attempts == 1
    assert "deadline" in r.body["error"]["message"]
    assert 0.5 <= r.elapsed < 0.5 + SLACK
    assert up.hits["b"] == 0  # the deadline passed during the first attempt: nothing else started


def test_group_timeout_is_the_default_deadline(tmp_path, up) -> None:
    up.script("a", then=stall(30))
    with serve(tmp_path, up, {"a": "openai"}, {"g": {"deployments": ["a"], "timeout_s": 0.4}}) as s:
        r = chat(s.url)
    assert r.status == 504 and 0.4 <= r.elapsed < 0.4 + SLACK


# --- typed fallbacks ------------------------------------------------------------------------------

CARDS = {"small-ctx": {"context_window": 8192}, "big-ctx": {"context_window": 200_000}}


@pytest.mark.parametrize("fmt", ["openai", "anthropic"])
def test_context_window_exceeded_goes_to_a_larger_context_model(tmp_path, up, fmt) -> None:
    up.script("small1", then=CONTEXT)
    deps = {"small1": {"fmt": fmt, "card": "small-ctx"}, "small2": {"fmt": fmt, "card": "small-ctx"},
            "big": {"fmt": fmt, "card": "big-ctx"}}
    with serve(tmp_path, up, deps, {"g": {"deployments": ["small1", "small2"], "context_window_fallbacks": ["big"]}},
               catalog=CARDS) as s:
        r = chat(s.url)
    assert r.status == 200 and r.deployment == "big" and r.attempts == 2 and r.fallbacks == ["small1"]
    assert up.hits["small2"] == 0  # same window: would fail the same way


def test_a_prompt_too_long_for_every_member_goes_to_the_context_window_fallback(tmp_path, up) -> None:
    deps = {"small1": {"card": "small-ctx"}, "big": {"card": "big-ctx"}}
    with serve(tmp_path, up, deps, {"g": {"deployments": ["small1"], "context_window_fallbacks": ["big"]}},
               catalog=CARDS) as s:
        r = chat(s.url, text="lorem ipsum dolor sit amet " * 3000)  # ~15k tokens: over small1's 8k window
        short = chat(s.url)
    assert r.status == 200 and r.deployment == "big", r.body
    assert up.hits.get("small1", 0) == 1 and short.deployment == "small1"  # (only the short prompt went there)


def test_context_window_exceeded_without_a_larger_model_is_the_callers_error(tmp_path, up) -> None:
    up.script("small1", then=CONTEXT)
    deps = {"small1": {"card": "small-ctx"}, "small2": {"card": "small-ctx"}}
    with serve(tmp_path, up, deps, {"g": {"deployments": ["small1", "small2"]}}, catalog=CARDS) as s:
        r = chat(s.url)
    assert r.status == 400 and r.body["error"]["type"] == "context_length_exceeded" and r.attempts == 1
    assert up.hits == {"small1": 1}


def test_content_filter_goes_to_the_content_policy_fallback(tmp_path, up) -> None:
    up.script("a", then=POLICY)
    with serve(tmp_path, up, {"a": "openai", "b": "openai", "lenient": "anthropic"},
               {"g": {"deployments": ["a", "b"], "content_policy_fallbacks": ["lenient"]}}) as s:
        r = chat(s.url)
    assert r.status == 200 and r.deployment == "lenient" and r.fallbacks == ["a"]
    assert up.hits["b"] == 0  # a policy refusal is not a reason to try the group's other members


def test_content_filter_without_a_policy_fallback_is_returned(tmp_path, up) -> None:
    up.script("a", then=POLICY)
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url)
    assert r.status == 400 and r.body["error"]["type"] == "content_policy_violation" and up.hits == {"a": 1}


def test_per_request_fallbacks_replace_the_configured_ones(tmp_path, up) -> None:
    up.script("a", then=status(503))
    with serve(tmp_path, up, {"a": "openai", "b": "openai", "c": "openai"},
               {"g": {"deployments": ["a"], "fallbacks": ["b"]}}) as s:
        r = chat(s.url, metadata={"fallbacks": ["c"], "max_attempts": 2})
    assert r.status == 200 and r.deployment == "c" and up.hits["b"] == 0 and r.attempts == 2


def test_bad_resilience_metadata_is_a_400_naming_the_field(tmp_path, up) -> None:
    with serve(tmp_path, up, {"a": "openai"}, {"g": {"deployments": ["a"]}}) as s:
        r1 = chat(s.url, metadata={"timeout_s": "soon"})
        r2 = chat(s.url, metadata={"fallbacks": ["nope"]})
    assert r1.status == 400 and "metadata.timeout_s" in r1.body["error"]["message"]
    assert r2.status == 400 and "metadata.fallbacks[0]" in r2.body["error"]["message"]
    assert up.hits["a"] == 0


# --- bad bodies and non-retryable errors ----------------------------------------------------------

@pytest.mark.parametrize(("fmt", "stream"), [("openai", False), ("openai", True), ("anthropic", False),
                                             ("anthropic", True)])
def test_invalid_json_falls_back(tmp_path, up, fmt, stream) -> None:
    up.script("a", then=BAD_JSON)
    with serve(tmp_path, up, {"a": fmt, "b": fmt}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url, stream=stream)
    assert r.status == 200 and r.deployment == "b" and r.attempts == 2


@pytest.mark.parametrize(("code", "error_type"), [(401, "authentication_error"), (400, "invalid_request_error"),
                                                  (404, "not_found_error"), (403, "permission_error")])
def test_non_retryable_errors_are_never_retried(tmp_path, up, code, error_type) -> None:
    up.script("a", then=status(code))
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}}) as s:
        r = chat(s.url)
    if code in (401, 403):  # the upstream refused the gateway's credentials: a 502 of ours, not the client's
        code, error_type = 502, "upstream_auth_error"
    assert r.status == code and r.body["error"]["type"] == error_type and r.attempts == 1
    assert up.hits == {"a": 1}


# --- circuit breaker ------------------------------------------------------------------------------

def test_breaker_opens_skips_the_deployment_and_recovers_through_a_probe(tmp_path, up) -> None:
    up.script("a", status(503), status(503))  # then healthy
    breaker = {"consecutive_failures": 2, "cooldown_s": 2.0, "min_requests": 1000}  # longer than 7 calls take
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}},
               resilience={"breaker": breaker}) as s:
        gw = gateway_of(s)
        assert [chat(s.url).deployment for _ in range(2)] == ["b", "b"]
        assert gw.health.breaker.state("a") == "open" and gw.health.by_name["a"].circuit == "open"
        assert not gw.health.healthy("a")
        served = [chat(s.url) for _ in range(5)]
        assert {r.deployment for r in served} == {"b"} and {r.attempts for r in served} == {1}
        assert up.hits["a"] == 2  # open: no traffic at all
        wait_for(lambda: gw.health.healthy("a"), timeout=5)
        r = chat(s.url)  # the half-open probe succeeds and closes the circuit
        assert r.deployment == "a" and gw.health.breaker.state("a") == "closed"
        assert chat(s.url).deployment == "a"


def test_breaker_reopens_when_the_probe_fails_with_a_longer_cooldown(tmp_path, up) -> None:
    up.script("a", then=status(503))
    breaker = {"consecutive_failures": 1, "cooldown_s": 0.2, "min_requests": 1000}
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}},
               resilience={"breaker": breaker}) as s:
        gw = gateway_of(s)
        chat(s.url)
        first = gw.health.breaker.record("a")
        assert first.state == "open" and first.opens == 1
        wait_for(lambda: gw.health.healthy("a"), timeout=2)
        assert chat(s.url).deployment == "b"  # probe to a failed, b served
        rec = gw.health.breaker.record("a")
        assert rec.state == "open" and rec.opens == 2 and up.hits["a"] == 2


def test_all_breakers_open_fails_fast_with_503(tmp_path, up) -> None:
    up.script("a", then=status(500))
    breaker = {"consecutive_failures": 1, "cooldown_s": 30, "min_requests": 1000}
    with serve(tmp_path, up, {"a": "openai"}, {"g": {"deployments": ["a"]}},
               resilience={"breaker": breaker, "retry": {"max_attempts": 1}}) as s:
        assert chat(s.url).status == 503
        r = chat(s.url)
    assert r.status == 503 and "circuit breakers are open" in r.body["error"]["message"]
    assert r.attempts == 0 and up.hits["a"] == 1 and r.elapsed < SLACK  # failed fast, no upstream call


def test_failure_rate_over_the_window_opens_the_breaker(tmp_path, up) -> None:
    up.script("a", OK, status(503), OK, status(503), OK, status(503))
    breaker = {"consecutive_failures": 100, "failure_rate": 0.5, "min_requests": 6, "window_s": 30}
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"]}},
               resilience={"breaker": breaker}) as s:
        gw = gateway_of(s)
        for _ in range(5):
            chat(s.url)
        assert gw.health.breaker.state("a") == "closed"  # 5 calls: under min_requests
        chat(s.url)
        assert gw.health.breaker.state("a") == "open"  # 3 of 6 failed: 50 %


# --- hedging --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("stream", "how"), [(False, "group"), (True, "group"), (False, "request"), (True, "request")])
def test_hedge_takes_the_first_answer_and_cancels_the_other(tmp_path, up, stream, how) -> None:
    up.script("a", then=stall(3))
    hedge = {"delay_s": 0.1, "budget_pct": 100}
    group: dict[str, Any] = {"deployments": ["a", "b"]}
    if how == "group":
        group["hedge"] = hedge
    with serve(tmp_path, up, {"a": "openai", "b": "anthropic"}, {"g": group},
               resilience={"hedge": hedge}) as s:
        r = chat(s.url, stream=stream, metadata={"mode": "hedge"} if how == "request" else None)
        gw = gateway_of(s)
    assert r.status == 200 and r.deployment == "b" and r.attempts == 2 and r.fallbacks == []
    assert 0.1 <= r.elapsed < 0.1 + SLACK
    assert wait_for(lambda: up.cancelled["a"] == 1)  # the slower call was cancelled upstream
    assert all(h.inflight == 0 for h in gw.health.by_name.values())


def test_hedge_budget_bounds_the_extra_load(tmp_path, up) -> None:
    up.script("a", then=stall(0.3))
    hedge = {"delay_s": 0.05, "budget_pct": 25, "burst": 1}
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"], "hedge": hedge}}) as s:
        served = [chat(s.url).deployment for _ in range(8)]
    assert served.count("b") == 2 and up.hits["b"] == 2  # 25 % of 8 requests
    assert up.hits["a"] == 8


def test_hedge_from_observed_latency_quantile(tmp_path, up) -> None:
    hedge = {"quantile": 0.9, "min_samples": 5, "min_delay_s": 0.05, "initial_delay_s": 5, "budget_pct": 100}
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"], "hedge": hedge}}) as s:
        for _ in range(5):  # fast answers teach the gateway a's latency
            assert chat(s.url).deployment == "a"
        up.script("a", then=stall(3))
        r = chat(s.url)
    assert r.deployment == "b" and r.elapsed < 1.0  # hedged after ~p90 (clamped to 50 ms), not after 5 s


def test_hedge_falls_back_when_the_primary_fails_fast(tmp_path, up) -> None:
    up.script("a", then=status(503))
    hedge = {"delay_s": 1.0, "budget_pct": 100}
    with serve(tmp_path, up, {"a": "openai", "b": "openai"}, {"g": {"deployments": ["a", "b"], "hedge": hedge}}) as s:
        r = chat(s.url, stream=True)
    assert r.deployment == "b" and r.fallbacks == ["a"] and r.elapsed < 1.0


# --- active health checks -------------------------------------------------------------------------

def test_active_health_checks_open_and_close_the_breaker_without_user_traffic(tmp_path, up) -> None:
    up.script("a", status(503), status(503), status(503))
    with serve(tmp_path, up, {"a": {"fmt": "openai", "health_check": True}, "b": "openai"},
               {"g": {"deployments": ["a", "b"]}},
               resilience={"health_checks": {"interval_s": 0.05},
                           "breaker": {"consecutive_failures": 2, "cooldown_s": 0.2}}) as s:
        gw = gateway_of(s)
        assert wait_for(lambda: gw.health.breaker.state("a") == "open")
        assert wait_for(lambda: gw.health.breaker.state("a") == "closed")
        assert up.hits["b"] == 0  # only checks ran
        assert chat(s.url).deployment == "a"
