"""The ASGI plumbing every route handler shares: types, header lookups, JSON replies, the body
reader with its limits (size, read deadline, nesting), and the HTTP-only errors.

Route modules (openai_api, anthropic_api, explain_api, feedback_api) import from here, never
from app.py, so the app can change its wiring without touching them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ..errors import BadRequest, ModelyardError

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send, str], Awaitable[None]]

JSON = (b"content-type", b"application/json")
# orjson reads 1,024 levels of nesting but writes only 254, and the providers' wire formats wrap
# what a client sent a few levels deeper (a tool's schema goes under tools[].function.parameters,
# Gemini's under functionDeclarations): a request nested deeper than this cannot be forwarded.
MAX_JSON_DEPTH = 200


class MethodNotAllowed(ModelyardError):
    status = 405
    type = "method_not_allowed"
    anthropic_type = "invalid_request_error"


class RequestTimeout(ModelyardError):
    """The client did not send its whole body in time (server.body_timeout_s)."""

    status = 408
    type = "request_timeout"
    anthropic_type = "invalid_request_error"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"connection", b"close")]  # the rest of the body would be read as the next request


def content_length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())


async def send_json(send: Send, status: int, body: bytes, rid: str) -> None:
    """A complete JSON response: `body` is already serialised."""
    await send({"type": "http.response.start", "status": status,
                "headers": [JSON, (b"x-request-id", rid.encode()), content_length(body)]})
    await send({"type": "http.response.body", "body": body})


_BY_NAME = "modelyard.headers"  # the scope's key for its headers by name


def raw_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case) as sent, or None. The headers are indexed by
    name on the first lookup, and the index kept in the scope: a chat request asks for five, and
    the SDKs send fifteen or more."""
    by_name: dict[bytes, bytes] | None = scope.get(_BY_NAME)
    if by_name is None:
        by_name = scope[_BY_NAME] = dict(reversed(list(scope["headers"])))  # (the first value wins)
    return by_name.get(name)


def header(scope: Scope, name: bytes) -> str | None:
    v = raw_header(scope, name)
    return None if v is None else v.decode("latin-1")


def parse_json(body: bytes) -> Any:
    """The body as JSON: BadRequest if it is empty, not JSON, or nested deeper than can be forwarded."""
    if not body:
        raise BadRequest("request body is empty; send a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from None
    # Only a body with more brackets than the limit can be nested that deep: a C-speed count
    # spares the walk for almost every request.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
        check_depth(value, "")
    return value


def check_depth(value: Any, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """BadRequest naming the field if `value` nests more than `limit` levels (the top one is 1)."""
    path = _too_deep(value, 1, limit)
    if path is None:
        return
    path.reverse()
    field = where
    for step in path[:4]:  # enough to name the field; the rest is the nesting itself
        field += f"[{step}]" if isinstance(step, int) else (f".{step}" if field else str(step))
    raise BadRequest(f"{field or 'body'}: JSON nested more than {limit} levels deep cannot be forwarded "
                     f"to a provider; flatten it", param=field or None)


def _too_deep(value: Any, depth: int, limit: int) -> list[Any] | None:
    """The path (innermost first) to a container deeper than `limit`, or None."""
    if depth > limit:
        return []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, child in items:
        if isinstance(child, dict | list):
            path = _too_deep(child, depth + 1, limit)
            if path is not None:
                path.append(key)
                return path
    return None
