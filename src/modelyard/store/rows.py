"""Request-log rows, built in one place: every path (answer, error, stream end, cancel, mode parent)
calls `make_row` (the answered path by position, the others through `request_row`'s keywords), so a
column cannot be forgotten or filled differently on one of them.

What a client controls (the request id, `user`, the model name, metadata that reaches the routing
features) is bounded here: one request cannot write more than a few kilobytes into the log.
Prompts and responses are kept only where a key, a group or the default opts in (store/content.py
builds them, redacted and bounded); otherwise those columns are NULL.
"""

from __future__ import annotations

import time
from typing import NamedTuple, overload

from ..types import MASTER, Caller, RouteDecision, Usage


class Row(NamedTuple):
    """One request-log row: a plain tuple for the database, with names for observers (metrics,
    console logs, alerts) that read the same record the log stores."""

    id: str
    ts: float
    model: str  # the name the client asked for (a group, a deployment, a pipeline)
    deployment: str | None
    provider: str | None
    status: int
    error_type: str | None
    error: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: float
    latency_ms: float | None
    ttft_ms: float | None
    stream: int
    user: str | None
    api: str
    route: str | None  # the routing decision's JSON
    key_id: str | None = None  # the virtual key (None: the master key or no authentication)
    team: str | None = None
    cache: str | None = None  # "hit" | "semantic-hit" | "miss" | None (cache not consulted)
    saved_usd: float = 0.0  # what a cache hit would have cost upstream
    experiment: str | None = None  # "name=variant" when the request was in an experiment
    cache_write_tokens: int = 0  # part of input_tokens written to the provider's prompt cache
    attempts: int = 0  # upstream calls made (retries and hedges included)
    fallbacks: int = 0  # moves to another deployment after a failure
    retries: int = 0  # calls repeated on the same deployment after a failure
    fallback_reasons: str | None = None  # the error type behind each fallback, comma-separated
    upstream_ms: float | None = None  # time in upstream calls (streams: until the first chunk)
    prompt: str | None = None  # the messages as JSON, when content logging is on (store/content.py)
    response: str | None = None  # the answer as JSON ({"content", "tool_calls"}), likewise


COLUMNS: tuple[str, ...] = Row._fields

MARK = "…[truncated]"
MAX_ID = 200  # the request id (a client's x-request-id); /v1/feedback accepts ids up to this length
MAX_NAME = 256  # model, user
MAX_ERROR = 2000
MAX_ROUTE = 16_384  # the decision's JSON; past it, features then candidates are left out

_NO_USAGE = Usage()
_new = tuple.__new__  # Row's own constructor is a Python function of 32 arguments


@overload
def bounded(value: str, limit: int) -> str: ...
@overload
def bounded(value: str | None, limit: int) -> str | None: ...
def bounded(value: str | None, limit: int) -> str | None:
    """`value`, cut to `limit` characters with a marker saying so."""
    if value is None or len(value) <= limit:
        return value
    return value[:limit - len(MARK)] + MARK


def _shortened(decision: RouteDecision, size: int) -> str:
    """The decision's JSON past MAX_ROUTE: features, then candidates, left out (said so in their place)."""
    import orjson

    d = decision.log_dict()
    d["features"] = {"truncated": f"{size} characters of routing record"}
    text = orjson.dumps(d).decode()
    if len(text) > MAX_ROUTE:
        d["candidates"] = [{"truncated": f"{len(d['candidates'])} candidates"}]
        d["reason"] = bounded(d.get("reason"), MAX_ERROR)
        text = orjson.dumps(d).decode()
    return text


def request_row(rid: str, model: str, status: int, *, deployment: str | None = None,
                provider: str | None = None, error_type: str | None = None, error: str | None = None,
                usage: Usage | None = None, cost_usd: float = 0.0, latency_ms: float | None = None,
                ttft_ms: float | None = None, stream: bool = False, user: str | None = None,
                api: str = "openai", decision: RouteDecision | None = None, caller: Caller = MASTER,
                cache: str | None = None, saved_usd: float = 0.0, experiment: str | None = None,
                prompt: str | None = None, response: str | None = None) -> Row:
    """The request-log row builder by keyword, for the paths that are not every request's (errors,
    modes, cancels): `make_row` with these arguments."""
    return make_row(rid, model, status, deployment, provider, error_type, error, usage or _NO_USAGE, cost_usd,
                    latency_ms, ttft_ms, stream, user, api, decision, caller, cache, saved_usd, experiment, prompt,
                    response)


def make_row(rid: str, model: str, status: int, deployment: str | None, provider: str | None, error_type: str | None,
             error: str | None, u: Usage, cost_usd: float, latency_ms: float | None, ttft_ms: float | None,
             stream: bool, user: str | None, api: str, decision: RouteDecision | None, caller: Caller,
             cache: str | None, saved_usd: float, experiment: str | None, prompt: str | None = None,
             response: str | None = None) -> Row:
    """The one request-log row builder (client-controlled text bounded; `user` falls back to the
    caller's). Every answered request's row is made here on the event loop, so it takes its arguments
    by position (CPython's keyword path costs more than the rest of the function), text within its
    bound is used as is, and the tuple is made without Row's generated constructor (same fields, in
    order: the test of every column holds it to that)."""
    attempts = fallbacks = retries = 0
    reasons: str | None = None
    upstream_ms: float | None = None
    route: str | None = None
    if decision is not None:
        attempts = decision.attempts
        upstream_ms = decision.upstream_s * 1000 if attempts else None
        if decision.fallbacks:
            fallbacks, retries, reasons = _moves(decision, deployment if status < 400 else None)
        route = decision.log_json()
        if len(route) > MAX_ROUTE:
            route = _shortened(decision, len(route))
    if len(rid) > MAX_ID:
        rid = bounded(rid, MAX_ID)
    if len(model) > MAX_NAME:
        model = bounded(model, MAX_NAME)
    if error is not None and len(error) > MAX_ERROR:
        error = bounded(error, MAX_ERROR)
    user = user or caller.user
    if user is not None and len(user) > MAX_NAME:
        user = bounded(user, MAX_NAME)
    return _new(Row, (rid, time.time(), model, deployment, provider, status, error_type, error, u.input_tokens,
                      u.output_tokens, u.cached_input_tokens, u.reasoning_tokens, cost_usd, latency_ms, ttft_ms,
                      int(stream), user, api, route, caller.key_id, caller.team, cache, saved_usd, experiment,
                      u.cache_write_tokens, attempts, fallbacks, retries, reasons, upstream_ms, prompt, response))


def _moves(decision: RouteDecision, served: str | None) -> tuple[int, int, str | None]:
    """(fallbacks, retries, the error types behind the fallbacks) from the failed attempts in order:
    a failure followed by a call to the same deployment was retried, to another one fell back."""
    failed, types = decision.fallbacks, decision.failures
    nxt = [*failed[1:], served]
    fallbacks = retries = 0
    reasons: list[str] = []
    for i, name in enumerate(failed):
        after = nxt[i]
        if after is None:
            continue  # the last failure: the request ended there
        if after == name:
            retries += 1
        else:
            fallbacks += 1
            reasons.append(types[i] if i < len(types) else "error")
    return fallbacks, retries, ",".join(reasons) or None
