"""`POST /v1/responses`, `GET /v1/responses/{id}`, `DELETE /v1/responses/{id}`: the Responses API.

A request is translated to a chat request (responses_translate.py) and goes through the gateway
exactly as a chat completion does: groups, strategies, modes, fallbacks, cost headers, one log row
(api "responses"). Streams are rendered as the Responses event stream (responses_stream.py).

With `store` (the default, as OpenAI's), the response and its conversation are written to the
request log's database (store/responses.py) before the answer's last byte is sent, so the next
request can continue it with `previous_response_id`; stored responses belong to the caller's
tenant (the virtual key that created them, or the master key) and expire after
`server.responses.retention_days`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ModelyardError, NotFound
from ..store.responses import ResponseStore, StoreUnavailable
from ..types import Caller, ChatRequest, Usage
from .http import Receive, Scope, Send, send_json
from .responses_stream import ResponseEvents
from .responses_translate import (
    ResponseParams,
    assistant_message,
    finish_status,
    messages_from_json,
    messages_json,
    new_id,
    output_items,
    parse_request,
    response_object,
    with_history,
)

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("modelyard.server")
PREFIX = "/v1/responses/"


class StoredUnavailable(ModelyardError):
    status = 503
    type = "store_unavailable"
    anthropic_type = "overloaded_error"


class ResponsesApi:
    def __init__(self, app: App) -> None:
        self.app = app
        self._store: ResponseStore | None = None

    @property
    def store(self) -> ResponseStore:
        """Opened on first use: the request log's database, or memory when the log is off."""
        if self._store is None:
            gw = self.app.gateway
            path = gw.request_log.path if gw.request_log is not None else ":memory:"  # a file or Postgres (store/)
            self._store = ResponseStore(path, retention_days=gw.config.server.responses.retention_days)
        return self._store

    async def _load(self, resp_id: str, caller: Caller, param: str | None = None) -> Any:
        try:
            stored = await self.store.get(resp_id, caller.tenant)
        except StoreUnavailable as e:
            raise StoredUnavailable(f"stored responses are unavailable ({e}); retry shortly") from None
        if stored is None:
            raise NotFound(f"no stored response '{resp_id}' (responses are kept only with store: true, for the "
                           "key that created them, until they expire)", param=param, code="response_not_found")
        return stored

    async def _keep(self, resp_id: str, caller: Caller, obj: dict[str, Any], turn: list[Any]) -> None:
        """Store before answering; a database failure costs the continuation, not the answer."""
        try:
            await self.store.put(resp_id, caller.tenant, obj, messages_json(turn))
        except StoreUnavailable as e:
            log.warning("response %s was not stored: %s", resp_id, e)

    # --- POST /v1/responses ---
    async def create(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        app = self.app
        caller = app.check_auth(scope)
        req, p = parse_request(await app.read_json(scope, receive))
        req.caller = caller
        history = []
        if p.previous_response_id:
            stored = await self._load(p.previous_response_id, caller, "previous_response_id")
            history = messages_from_json(stored.conversation)
        turn = with_history(req, p, history)
        resp_id = new_id("resp")
        if req.stream:
            await self._stream(send, rid, req, p, resp_id, turn)
            return
        resp = await app.gateway.chat(req, request_id=rid, api="responses")
        output = output_items(resp)
        status, why = finish_status(resp.choices[0].finish_reason if resp.choices else None)
        obj = response_object(resp_id, p, status, output, resp.usage, resp.created, why)
        extra = dict(resp.modelyard or {})
        if p.explain and resp.decision is not None:
            extra["route"] = resp.decision.to_dict()
        if extra:
            obj["modelyard"] = extra
        if p.store:
            await self._keep(resp_id, caller, obj, [*turn, assistant_message(output)])
        body = orjson.dumps(obj)
        await send({"type": "http.response.start", "status": 200, "headers": app._response_headers(rid, resp, body)})
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, send: Send, rid: str, req: ChatRequest, p: ResponseParams, resp_id: str,
                      turn: list[Any]) -> None:
        app = self.app
        stream = await app.gateway.stream(req, request_id=rid, api="responses")
        events = ResponseEvents(resp_id, p)
        finished = False

        async def finish(usage: Usage | None) -> bytes:
            extra = {"deployment": stream.deployment.name, "cost_usd": stream.cost_usd, "request_id": rid,
                     **(getattr(stream, "modelyard", None) or {})}
            if p.explain:
                extra["route"] = stream.decision.to_dict()
            tail = events.finish(usage, extra)
            if p.store and events.response is not None:
                await self._keep(resp_id, req.caller, events.response, [*turn, assistant_message(events.output)])
            return tail

        try:
            await send({"type": "http.response.start", "status": 200, "headers": app._stream_headers(rid, stream)})
            pending = [events.start()]
            async for chunk in stream:
                if finished:  # the client has it all; the upstream's housekeeping is still read
                    continue
                pending.append(events.feed(chunk))
                if chunk.last:
                    finished = True
                    pending.append(await finish(stream.usage))
                    await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
                elif chunk.flush:
                    await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
                    pending.clear()
            if not finished:
                finished = True
                pending.append(await finish(stream.usage))
                await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
        except ModelyardError as e:
            if finished:
                return
            finished = True
            await send({"type": "http.response.body", "body": b"".join(pending) + events.error(e),
                        "more_body": False})
        finally:
            if not finished:
                await stream.aclose()

    # --- GET / DELETE /v1/responses/{id} ---
    def _id(self, scope: Scope) -> str:
        resp_id = scope["path"][len(PREFIX):].rstrip("/")
        if not resp_id or "/" in resp_id:
            raise NotFound(f"no route {scope['method']} {scope['path']}; see GET /v1/responses/{{id}}")
        return resp_id

    async def get(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        caller = self.app.check_auth(scope)
        stored = await self._load(self._id(scope), caller)
        await send_json(send, 200, orjson.dumps(stored.response), rid)

    async def delete(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        caller = self.app.check_auth(scope)
        resp_id = self._id(scope)
        try:
            deleted = await self.store.delete(resp_id, caller.tenant)
        except StoreUnavailable as e:
            raise StoredUnavailable(f"stored responses are unavailable ({e}); retry shortly") from None
        if not deleted:
            raise NotFound(f"no stored response '{resp_id}'", code="response_not_found")
        await send_json(send, 200, orjson.dumps({"id": resp_id, "object": "response", "deleted": True}), rid)


def install(app: App) -> None:
    """Serve POST /v1/responses (and /responses), GET and DELETE /v1/responses/{id}."""
    api = ResponsesApi(app)
    for prefix in ("/v1", ""):
        app.add_route("POST", prefix + "/responses", api.create)
    app.add_prefix_route("GET", PREFIX, api.get)
    app.add_prefix_route("DELETE", PREFIX, api.delete)
    app.responses_api = api  # type: ignore[attr-defined]  # for tests and shutdown
