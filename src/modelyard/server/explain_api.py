"""POST /v1/route/explain: a chat-completions body in, the routing decision out, no model called.

The body is parsed exactly as /v1/chat/completions parses it (same validation, same 400s); `model`
may be omitted and defaults to `auto`. The answer is the JSON `modelyard route --json` prints.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BadRequest
from ..routing.explain import explain
from . import openai_api

if TYPE_CHECKING:
    from .app import App

Handler = Callable[[dict[str, Any], Any, Any, str], Awaitable[None]]


def handler(app: App) -> Handler:
    """The route handler, bound to the app (auth, body limits and JSON helpers are the app's)."""
    from .app import _send_json

    async def route_explain(scope: dict[str, Any], receive: Any, send: Any, rid: str) -> None:
        app._check_auth(scope)
        body = await app._read_json(scope, receive)
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object (a chat-completions request)")
        body.setdefault("model", "auto")
        req = openai_api.parse_request(body)
        await _send_json(send, 200, orjson.dumps(explain(app.gateway, req)), rid)

    return route_explain
