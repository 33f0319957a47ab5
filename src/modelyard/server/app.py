"""HTTP wiring only: a plain ASGI app that reads requests, calls the gateway, writes responses.

Plain ASGI rather than Starlette's Request/Response objects because this is the hot path and the
app has a handful of fixed routes: a dict lookup dispatches, bodies are read once, headers are
prebuilt byte tuples. Nothing here knows about routing or providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from .. import __version__
from ..errors import Auth, BadRequest, ModelyardError, NotFound, PayloadTooLarge
from ..gateway import Gateway, GatewayStream, new_request_id
from ..providers import io_threads
from ..types import ChatRequest, ChatResponse, RouteDecision
from . import anthropic_api, explain_api, feedback_api, openai_api
from .disconnect import DisconnectWatch

log = logging.getLogger("modelyard.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = (b"content-type", b"application/json")
# The cyclic GC's first generation runs when tracked allocations outnumber frees by this much.
# Python's 700 is crossed many times a second by the transient dicts of in-flight requests (a
# stream's parsed events), and each pass rescans every live young object for nothing: requests
# free their objects by reference counting. 10,000 made those passes rare (~5 µs/stream CPU);
# real reference cycles are still collected, after at most this many net allocations.
GC_THRESHOLDS = (10_000, 10, 10)
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


class App:
    def __init__(self, gateway: Gateway, *, master_key: str | None = None, max_body_bytes: int = 8 << 20) -> None:
        self.gateway = gateway
        self.master_key = master_key.encode() if master_key else None
        self.max_body_bytes = max_body_bytes
        self.routes: dict[tuple[str, str], Callable[[Scope, Receive, Send, str], Awaitable[None]]] = {}
        for prefix in ("/v1", ""):
            self.routes[("POST", prefix + "/chat/completions")] = self.chat_completions
            self.routes[("POST", prefix + "/messages")] = self.messages
            self.routes[("GET", prefix + "/models")] = self.list_models
        self.routes[("POST", "/v1/route/explain")] = explain_api.handler(self)
        self.routes[("POST", "/v1/feedback")] = feedback_api.handler(self)
        self.routes[("GET", "/health")] = self.health
        self.routes[("GET", "/ready")] = self.ready
        self._paths = {p for _, p in self.routes}
        self._models_body = self._render_models()
        # Header pairs that depend only on the deployment, or on the strategy and rule, built once.
        self._dep_headers = {name: _dep_headers(name, d.model) for name, d in gateway.deployments.items()}
        self._route_values: dict[tuple[str, str | None], tuple[bytes, bytes]] = {}
        self._watch = DisconnectWatch()
        self._inflight = 0  # requests being served

    # --- ASGI entry -----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        rid = _header(scope, b"x-request-id") or new_request_id()
        handler = self.routes.get((scope["method"], scope["path"].rstrip("/") or "/"))
        api = "anthropic" if scope["path"].endswith("/messages") else "openai"
        self._inflight += 1  # (the upstream I/O threads' policy follows it: providers/io_threads.py)
        if self._inflight == io_threads.BUSY_AT:
            io_threads.busy(True)
        try:
            if handler is None:
                if scope["path"].rstrip("/") in self._paths:
                    raise MethodNotAllowed(f"method {scope['method']} is not allowed on {scope['path']}")
                raise NotFound(f"no route {scope['method']} {scope['path']}; see /v1/chat/completions, "
                               "/v1/messages, /v1/models, /health")
            await handler(scope, receive, send, rid)
        except ModelyardError as e:
            await self._send_error(send, e, rid, api)
        except Exception:  # a bug: log it with the request id, answer 500 without internals
            log.exception("unhandled error in request %s", rid)
            err = ModelyardError(f"internal error; request id {rid}")
            with contextlib.suppress(Exception):
                await self._send_error(send, err, rid, api)
        finally:
            self._inflight -= 1
            if self._inflight == io_threads.IDLE_AT:
                io_threads.busy(False)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                # Everything alive now lives until shutdown: keep the cyclic GC from rescanning it.
                gc.freeze()
                gc.set_threshold(*GC_THRESHOLDS)
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self._watch.close()
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- plumbing -------------------------------------------------------------------------------
    def _check_auth(self, scope: Scope) -> None:
        if self.master_key is None:
            return
        token = _raw_header(scope, b"authorization")  # (bytes: compared as sent, nothing decoded)
        if token is not None:
            token = token.removeprefix(b"Bearer ").removeprefix(b"bearer ").strip()
        else:
            token = _raw_header(scope, b"x-api-key")
        if not token or not hmac.compare_digest(token, self.master_key):
            raise Auth("missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
                       if token else "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")

    async def _read_json(self, scope: Scope, receive: Receive) -> Any:
        declared = _raw_header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {self.max_body_bytes}")
        msg = await receive()
        body = msg.get("body", b"")
        if msg.get("more_body"):
            parts = [body]
            size = len(body)
            while msg.get("more_body"):
                msg = await receive()
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body_bytes} bytes")
                parts.append(chunk)
            body = b"".join(parts)
        if len(body) > self.max_body_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body_bytes} bytes")
        if not body:
            raise BadRequest("request body is empty; send a JSON object")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise BadRequest(f"request body is not valid JSON: {e}") from None

    async def _send_error(self, send: Send, e: ModelyardError, rid: str, api: str) -> None:
        body = anthropic_api.error_body(e) if api == "anthropic" else openai_api.error_body(e)
        headers = [JSON, (b"x-request-id", rid.encode()), _length(body), *e.headers()]
        if getattr(e, "attempts", 0):  # set by the attempt plan (resilience/attempts.py) when it gives up
            headers.append((b"x-modelyard-attempts", str(e.attempts).encode()))  # type: ignore[attr-defined]
        await send({"type": "http.response.start", "status": e.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _route_headers(self, rid: str, dep_name: str, model: str, d: RouteDecision | None
                       ) -> list[tuple[bytes, bytes]]:
        deployment = self._dep_headers.get(dep_name) or _dep_headers(dep_name, model)
        if d is None:
            route = (b"x-modelyard-route", b"direct")
        else:
            key = (d.strategy, d.rule)
            route = self._route_values.get(key)  # type: ignore[assignment]
            if route is None:
                route = (b"x-modelyard-route", d.route_header().encode())
                if len(self._route_values) < 4096:  # strategies × rules: a handful, from the config
                    self._route_values[key] = route
        return [(b"x-request-id", rid.encode()), *deployment, route]

    def _response_headers(self, rid: str, resp: ChatResponse, body: bytes) -> list[tuple[bytes, bytes]]:
        d = resp.decision
        headers = self._route_headers(rid, resp.deployment, self.gateway.deployments[resp.deployment].model, d)
        headers += (JSON, (b"x-modelyard-cost-usd", b"%.8f" % resp.cost_usd),
                    (b"x-modelyard-latency-ms", b"%.1f" % resp.latency_ms), _length(body))
        if d is not None and d.fallbacks:
            headers.append((b"x-modelyard-fallbacks", ",".join(d.fallbacks).encode()))
        if d is not None and d.attempts:
            headers.append((b"x-modelyard-attempts", str(d.attempts).encode()))
        return headers

    def _stream_headers(self, rid: str, stream: GatewayStream) -> list[tuple[bytes, bytes]]:
        d = stream.decision
        headers = [*SSE_HEADERS, *self._route_headers(rid, stream.deployment.name, stream.deployment.model, d)]
        if d.fallbacks:
            headers.append((b"x-modelyard-fallbacks", ",".join(d.fallbacks).encode()))
        if d.attempts:
            headers.append((b"x-modelyard-attempts", str(d.attempts).encode()))
        return headers

    async def _pump(self, send: Send, receive: Receive, stream: GatewayStream, render: Callable[[Any], bytes],
                    error_event: Callable[[ModelyardError], bytes], tail: Callable[[], bytes]) -> None:
        """Write a started stream. A client disconnect cancels this task, which closes the
        upstream call (even one that is stalled between chunks)."""
        task = asyncio.current_task()
        assert task is not None
        gone = asyncio.Event()
        self._watch.add(task, receive, gone)  # a watcher task only if the stream runs a while
        finished = False
        pending: list[bytes] = []  # chunks that arrived together go out in one write
        try:
            async for chunk in stream:
                if finished:  # the response is complete; the upstream's housekeeping is still read
                    continue
                data = render(chunk)
                if data:
                    pending.append(data)
                if chunk.last:
                    finished = True
                    pending.append(tail())
                    await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
                elif chunk.flush and pending:
                    await send({"type": "http.response.body", "body": b"".join(pending), "more_body": True})
                    pending.clear()
            if not finished:
                finished = True
                pending.append(tail())
                await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
        except ModelyardError as e:
            if finished:  # after the last chunk: the client has its answer (the stream logged it)
                return
            finished = True
            pending.append(error_event(e))
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": False})
        except asyncio.CancelledError:
            if not gone.is_set():
                raise
            task.uncancel()
        finally:
            self._watch.discard(task)
            if not finished:
                await stream.aclose()

    # --- routes ---------------------------------------------------------------------------------
    async def chat_completions(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self._check_auth(scope)
        req = openai_api.parse_request(await self._read_json(scope, receive))
        if not req.stream:
            resp = await self.gateway.chat(req, request_id=rid)
            body = openai_api.render_response(resp)
            headers = self._response_headers(rid, resp, body)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        stream = await self.gateway.stream(req, request_id=rid)
        await send({"type": "http.response.start", "status": 200, "headers": self._stream_headers(rid, stream)})
        include_usage = req.include_usage

        def render(chunk: Any) -> bytes:
            extra = None
            if chunk.usage is not None:
                extra = {"deployment": stream.deployment.name, "cost_usd": stream.cost_usd,
                         "request_id": rid, **(getattr(stream, "modelyard", None) or {})}  # mode metadata
            return openai_api.render_chunk(chunk, include_usage, extra)

        await self._pump(send, receive, stream, render, openai_api.error_event, lambda: openai_api.DONE)

    async def messages(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self._check_auth(scope)
        req = anthropic_api.parse_request(await self._read_json(scope, receive))
        if not req.stream:
            resp = await self.gateway.chat(req, request_id=rid, api="anthropic")
            body = anthropic_api.render_response(resp, req.model)
            headers = self._response_headers(rid, resp, body)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        stream = await self.gateway.stream(req, request_id=rid, api="anthropic")
        await send({"type": "http.response.start", "status": 200, "headers": self._stream_headers(rid, stream)})
        renderer = anthropic_api.StreamRenderer(req.model, "msg_" + rid.removeprefix("req_"))

        def tail() -> bytes:
            return renderer.finish(stream.usage, stream.finish_reason)

        await self._pump(send, receive, stream, renderer.feed, anthropic_api.error_event, tail)

    def _render_models(self) -> bytes:
        gw = self.gateway
        data = []
        for name, route in sorted(gw.routes.items()):
            entry: dict[str, Any] = {"id": name, "object": "model", "created": 0,
                                     "owned_by": "modelyard" if route.is_group else route.deployments[0].provider}
            entry["modelyard"] = {"type": "group" if route.is_group else "deployment",
                                  "deployments": [d.name for d in route.deployments],
                                  "strategy": route.strategy}
            if not route.is_group:
                card = route.deployments[0].card
                entry["modelyard"].update({"input_per_m": card.input_per_m, "output_per_m": card.output_per_m,
                                           "context_window": card.context_window,
                                           "capabilities": sorted(card.capabilities)})
            data.append(entry)
        for name, pipe in sorted(gw.pipelines.items()):  # config pipelines, served as "pipeline/<name>"
            data.append({"id": name, "object": "model", "created": 0, "owned_by": "modelyard", "modelyard": {
                "type": "pipeline", "description": pipe.description, "inputs": list(pipe.inputs)}})
        return orjson.dumps({"object": "list", "data": data})

    async def list_models(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self._check_auth(scope)
        await _send_json(send, 200, self._models_body, rid)

    async def health(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        await _send_json(send, 200, orjson.dumps({"status": "ok", "version": __version__}), rid)

    async def ready(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        ok = self.gateway._started
        body = {"status": "ready" if ok else "starting", "deployments": len(self.gateway.deployments)}
        await _send_json(send, 200 if ok else 503, orjson.dumps(body), rid)


class MethodNotAllowed(ModelyardError):
    status = 405
    type = "method_not_allowed"
    anthropic_type = "invalid_request_error"


async def _send_json(send: Send, status: int, body: bytes, rid: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [JSON, (b"x-request-id", rid.encode()), _length(body)]})
    await send({"type": "http.response.body", "body": body})


def _dep_headers(name: str, model: str) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
    return (b"x-modelyard-model", model.encode()), (b"x-modelyard-deployment", name.encode())


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())


def _header(scope: Scope, name: bytes) -> str | None:
    v = _raw_header(scope, name)
    return None if v is None else v.decode("latin-1")


def _raw_header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return v  # type: ignore[no-any-return]
    return None


def create_app(gateway: Gateway | None = None, **kw: Any) -> App:
    gw = gateway or Gateway.default()
    server = gw.config.server
    from ..config import resolve_secret

    master = kw.pop("master_key", None) or resolve_secret(server.master_key, where="server.master_key")
    return App(gw, master_key=master, max_body_bytes=kw.pop("max_body_bytes", server.max_body_bytes))


def app_from_env() -> App:
    """Factory for `uvicorn --factory` and multi-worker serving: config from MODELYARD_CONFIG."""
    path = os.environ.get("MODELYARD_CONFIG")
    gw = Gateway.from_file(path) if path else Gateway.default(sim_only=os.environ.get("MODELYARD_SIM_ONLY") == "1")
    return create_app(gw, master_key=os.environ.get("MODELYARD_MASTER_KEY") or None)


__all__ = ["App", "ChatRequest", "app_from_env", "create_app"]
