"""POST /v1/route/explain: a chat-completions body in, the routing decision out, no model called.

The body is parsed exactly as /v1/chat/completions parses it (same validation, same 400s); `model`
may be omitted and defaults to `auto`. The answer is the JSON `modelyard route --json` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ..errors import BadRequest
from ..routing.explain import explain
from . import openai_api
from .http import Handler, Receive, Scope, Send, send_json

if TYPE_CHECKING:
    from .app import App


def handler(app: App) -> Handler:
    """The route handler, bound to the app (auth and body limits are the app's)."""

    async def route_explain(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app.check_auth(scope)
        body = await app.read_json(scope, receive)
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object (a chat-completions request)")
        body.setdefault("model", "auto")
        req = openai_api.parse_request(body)
        await send_json(send, 200, orjson.dumps(explain(app.gateway, req)), rid)

    return route_explain
