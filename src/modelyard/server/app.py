"""HTTP wiring only: a plain ASGI app that reads requests, calls the gateway, writes responses.

Plain ASGI rather than Starlette's Request/Response objects because this is the hot path and the
app has a handful of fixed routes: a dict lookup dispatches, bodies are read once, headers are
prebuilt byte tuples. Nothing here knows about routing or providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import orjson

from .. import __version__
from ..errors import ModelyardError, NotFound, PayloadTooLarge, PermissionDenied
from ..gateway import Gateway, GatewayStream, new_request_id
from ..telemetry import tracing
from ..types import Caller, ChatRequest, ChatResponse, RouteDecision
from . import (
    admin_api,
    anthropic_api,
    batches_api,
    budgets_api,
    cache_api,
    completions_api,
    embeddings_api,
    experiments_api,
    explain_api,
    feedback_api,
    metrics_api,
    openai_api,
    responses_api,
    stats_api,
)
from .auth import Authenticator, admit
from .http import (
    JSON,
    Handler,
    MethodNotAllowed,
    Receive,
    RequestTimeout,
    Scope,
    Send,
    content_length,
    header,
    parse_json,
    raw_header,
    send_json,
)
from .watch import GONE, TIMED_OUT, RequestWatch

log = logging.getLogger("modelyard.server")
HeaderList = tuple[tuple[bytes, bytes], ...]

_TASK = "modelyard.task"  # the scope's key for the task serving the request

SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]


class ClientGone(Exception):
    """The client disconnected while its body was being read: nothing to answer."""


class App:
    """The gateway over HTTP. Process-wide concerns are not its business: whoever runs it (the
    `modelyard serve` command) may pass `on_inflight`, called with the number of requests in
    flight each time it changes, and `on_started`, called once the gateway has started."""

    def __init__(self, gateway: Gateway, *, master_key: str | None = None, max_body_bytes: int = 8 << 20,
                 body_timeout_s: float = 60.0, on_inflight: Callable[[int], None] | None = None,
                 on_started: Callable[[], None] | None = None) -> None:
        self.gateway = gateway
        self.auth = Authenticator.for_gateway(gateway, master_key)  # the master key and the virtual keys
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.on_inflight = on_inflight
        self.on_started = on_started
        self.routes: dict[tuple[str, str], Handler] = {}
        for prefix in ("/v1", ""):
            self.routes[("POST", prefix + "/chat/completions")] = self.chat_completions
            self.routes[("POST", prefix + "/messages")] = self.messages
            self.routes[("GET", prefix + "/models")] = self.list_models
        self.routes[("POST", "/v1/route/explain")] = explain_api.handler(self)
        self.routes[("POST", "/v1/feedback")] = feedback_api.handler(self)
        self.routes[("GET", "/health")] = self.health
        self.routes[("GET", "/ready")] = self.ready
        # Routes with an id in the path (`/admin/keys/{id}`): (method, prefix) → handler, tried in
        # order after the exact routes miss; the handler reads the rest of scope["path"].
        self.prefix_routes: list[tuple[str, str, Handler]] = []
        self._paths = {p for _, p in self.routes}
        experiments_api.install(self)
        self._models_body = self._render_models()
        # (deployment, strategy, rule) -> the header pairs that depend only on them (_fixed_headers)
        self._fixed: dict[tuple[str, str | None, str | None], HeaderList] = {}
        self._watch = RequestWatch()
        self._inflight = 0  # requests being served
        admin_api.install(self)
        cache_api.install(self)
        metrics_api.install(self)  # GET /metrics, fed by the gateway's observers
        for extra_api in (responses_api, embeddings_api, completions_api):  # /v1/responses, embeddings, completions
            extra_api.install(self)
        batches_api.install(self)  # /v1/files + /v1/batches (docs/BATCH.md)
        stats_api.install(self)  # /admin/stats/* and the dashboard at /ui
        budgets_api.install(self)  # /admin/budgets, budget ratios for /metrics (after metrics_api)

    # --- ASGI entry -----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        rid = header(scope, b"x-request-id") or new_request_id()
        path = scope["path"]
        handler = self.routes.get((scope["method"], path.rstrip("/") or "/"))
        if handler is None and self.prefix_routes:
            handler = self._by_prefix(scope["method"], path)
        self._inflight += 1
        if self.on_inflight is not None:
            self.on_inflight(self._inflight)
        task = scope[_TASK] = asyncio.current_task()  # (read_json's too: one lookup per request)
        trace_token = tracing.attach(scope) if tracing.TRACER is not None else None  # a client's traceparent
        try:
            if handler is None:
                if path.rstrip("/") in self._paths or any(path.startswith(p) for _, p, _ in self.prefix_routes):
                    raise MethodNotAllowed(f"method {scope['method']} is not allowed on {path}")
                raise NotFound(f"no route {scope['method']} {path}; see /v1/chat/completions, "
                               "/v1/messages, /v1/models, /health")
            await handler(scope, receive, send, rid)
        except ModelyardError as e:
            await self._send_error(send, e, rid, _api(path))
        except ClientGone:
            pass
        except asyncio.CancelledError:
            # The watch cancelled it (the client left: the gateway logged the call as 499), or
            # the server is stopping.
            if task is None or self._watch.state(task) != GONE:
                raise
            task.uncancel()
        except Exception:  # a bug: log it with the request id, answer 500 without internals
            log.exception("unhandled error in request %s", rid)
            err = ModelyardError(f"internal error; request id {rid}")
            with contextlib.suppress(Exception):
                await self._send_error(send, err, rid, _api(path))
        finally:
            if trace_token is not None:
                tracing.detach(trace_token)
            if task is not None:
                self._watch.discard(task)
            self._inflight -= 1
            if self.on_inflight is not None:
                self.on_inflight(self._inflight)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                    await self.auth.start()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                if self.on_started is not None:
                    self.on_started()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self._watch.close()
                await self.auth.close()
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- plumbing -------------------------------------------------------------------------------
    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Serve `method path` (exact match) with `handler`."""
        self.routes[(method, path)] = handler
        self._paths.add(path)

    def add_prefix_route(self, method: str, prefix: str, handler: Handler) -> None:
        """Serve `method prefix…` (a path with an id after the prefix) with `handler`."""
        self.prefix_routes.append((method, prefix, handler))

    def _by_prefix(self, method: str, path: str) -> Handler | None:
        for m, prefix, handler in self.prefix_routes:
            if m == method and path.startswith(prefix) and len(path) > len(prefix):
                return handler
        return None

    def check_admin(self, scope: Scope) -> None:
        """Admin endpoints take the master key only. A server without one (loopback only: `modelyard
        serve` refuses other addresses) serves them to anyone who can reach it."""
        caller = self.check_auth(scope)
        if caller.key_id is not None:
            raise PermissionDenied("admin endpoints need the master key; this is a virtual key")

    def check_auth(self, scope: Scope) -> Caller:
        """Who sent the request (server/auth.py); raises Auth (401) unless it carries a valid key."""
        return self.auth.check(scope)

    async def read_json(self, scope: Scope, receive: Receive) -> Any:
        """The request body as JSON, within the size limit and the body deadline. From then on
        the request is watched: a client that disconnects cancels it (and its upstream call)."""
        declared = raw_header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {self.max_body_bytes}")
        task = scope.get(_TASK) or asyncio.current_task()
        assert task is not None
        self._watch.reading(task, self.body_timeout_s)
        try:
            msg = await receive()
            if msg["type"] == "http.request" and not msg.get("more_body"):  # the whole body at once
                body = msg.get("body", b"")
                if len(body) > self.max_body_bytes:
                    raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body_bytes} bytes")
            else:
                body = await self._read_body(receive, msg)
        except asyncio.CancelledError:
            if self._watch.state(task) != TIMED_OUT:
                raise
            task.uncancel()
            raise RequestTimeout(f"the request body did not arrive within {self.body_timeout_s:g} s; "
                                 "send it in one go") from None
        self._watch.add(task, receive)
        return parse_json(body)

    _check_auth = check_auth  # (the names server/feedback_api.py calls)
    _read_json = read_json

    async def _read_body(self, receive: Receive, first: dict[str, Any] | None = None) -> bytes:
        """The body from `receive` (its first message already read: `first`), within the limit."""
        msg = first if first is not None else await receive()
        if msg["type"] == "http.disconnect":
            raise ClientGone
        body: bytes = msg.get("body", b"")
        if msg.get("more_body"):
            parts = [body]
            size = len(body)
            while msg.get("more_body"):
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    raise ClientGone
                chunk = msg.get("body", b"")
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body_bytes} bytes")
                parts.append(chunk)
            body = b"".join(parts)
        if len(body) > self.max_body_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {self.max_body_bytes} bytes")
        return body

    async def _send_error(self, send: Send, e: ModelyardError, rid: str, api: str) -> None:
        body = anthropic_api.error_body(e) if api == "anthropic" else openai_api.error_body(e)
        headers = [JSON, (b"x-request-id", rid.encode()), content_length(body), *e.headers()]
        if e.experiment is not None:  # set by the gateway on a request an experiment assigned
            headers.append((b"x-modelyard-experiment", e.experiment.encode()))
        if getattr(e, "attempts", 0):  # set by the attempt plan (resilience/attempts.py) when it gives up
            headers.append((b"x-modelyard-attempts", str(e.attempts).encode()))  # type: ignore[attr-defined]
        await send({"type": "http.response.start", "status": e.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _fixed_headers(self, dep_name: str, d: RouteDecision | None, model: str | None = None) -> HeaderList:
        """The headers that depend only on the deployment and the strategy and rule that chose it
        (model, deployment, route), built once per combination: a handful, from the config.
        `model`: the deployment's (default: the configured deployment's)."""
        key = (dep_name, None, None) if d is None else (dep_name, d.strategy, d.rule)
        fixed = self._fixed.get(key)
        if fixed is None:
            if model is None:
                model = self.gateway.deployments[dep_name].model
            route = b"direct" if d is None else d.route_header().encode()
            fixed = ((b"x-modelyard-model", model.encode()), (b"x-modelyard-deployment", dep_name.encode()),
                     (b"x-modelyard-route", route))
            if len(self._fixed) < 4096:  # (bounded all the same)
                self._fixed[key] = fixed
        return fixed

    def _route_headers(self, rid: str, dep_name: str, model: str, d: RouteDecision | None
                       ) -> list[tuple[bytes, bytes]]:
        return [(b"x-request-id", rid.encode()), *self._fixed_headers(dep_name, d, model)]

    def _response_headers(self, rid: str, resp: ChatResponse, body: bytes) -> list[tuple[bytes, bytes]]:
        d = resp.decision
        headers = [(b"x-request-id", rid.encode()), *self._fixed_headers(resp.deployment, d), JSON,
                   (b"x-modelyard-cost-usd", b"%.8f" % resp.cost_usd),
                   (b"x-modelyard-latency-ms", b"%.1f" % resp.latency_ms), content_length(body)]
        if d is not None and d.fallbacks:
            headers.append((b"x-modelyard-fallbacks", ",".join(d.fallbacks).encode()))
        if d is not None and d.attempts:
            headers.append((b"x-modelyard-attempts", str(d.attempts).encode()))
        if resp.cache is not None:
            headers += cache_api.headers(resp.cache, resp.cache_similarity)
        return headers

    def _stream_headers(self, rid: str, stream: GatewayStream) -> list[tuple[bytes, bytes]]:
        d = stream.decision
        headers = [*SSE_HEADERS, *self._route_headers(rid, stream.deployment.name, stream.deployment.model, d)]
        if stream.req.experiment is not None:
            headers.append((b"x-modelyard-experiment", stream.req.experiment.encode()))
        if d.fallbacks:
            headers.append((b"x-modelyard-fallbacks", ",".join(d.fallbacks).encode()))
        if d.attempts:
            headers.append((b"x-modelyard-attempts", str(d.attempts).encode()))
        if getattr(stream, "cache", None) is not None:  # (a mode's stream has no cache)
            headers += cache_api.headers(stream.cache, stream.cache_similarity)
        return headers

    async def _pump(self, send: Send, rid: str, stream: GatewayStream, render: Callable[[Any], bytes],
                    error_event: Callable[[ModelyardError], bytes], tail: Callable[[], bytes]) -> None:
        """Send the headers and write a started stream. A client disconnect cancels this task
        (the request watch), which closes the upstream call, even one stalled between chunks."""
        finished = False
        pending: list[bytes] = []  # chunks that arrived together go out in one write
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._stream_headers(rid, stream)})
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
        finally:
            if not finished:
                await stream.aclose()

    # --- routes ---------------------------------------------------------------------------------
    async def chat_completions(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        req = await admit(self, scope, receive, rid, "openai", openai_api.parse_request)
        cache_api.directive(scope, req)
        if not req.stream:
            resp = await self.gateway.chat(req, request_id=rid)
            body = openai_api.render_response(resp)
            headers = self._response_headers(rid, resp, body)
            if req.experiment is not None:
                headers.append((b"x-modelyard-experiment", req.experiment.encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        stream = await self.gateway.stream(req, request_id=rid)
        include_usage = req.include_usage

        def render(chunk: Any) -> bytes:
            extra = None
            if chunk.usage is not None:
                extra = {"deployment": stream.deployment.name, "cost_usd": stream.cost_usd,
                         "request_id": rid, **(getattr(stream, "modelyard", None) or {})}  # mode metadata
            return openai_api.render_chunk(chunk, include_usage, extra)

        await self._pump(send, rid, stream, render, openai_api.error_event, lambda: openai_api.DONE)

    async def messages(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        req = await admit(self, scope, receive, rid, "anthropic", anthropic_api.parse_request)
        cache_api.directive(scope, req)
        if not req.stream:
            resp = await self.gateway.chat(req, request_id=rid, api="anthropic")
            body = anthropic_api.render_response(resp, req.model)
            headers = self._response_headers(rid, resp, body)
            if req.experiment is not None:
                headers.append((b"x-modelyard-experiment", req.experiment.encode()))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        stream = await self.gateway.stream(req, request_id=rid, api="anthropic")
        renderer = anthropic_api.StreamRenderer(req.model, "msg_" + rid.removeprefix("req_"))

        def tail() -> bytes:
            return renderer.finish(stream.usage, stream.finish_reason)

        await self._pump(send, rid, stream, renderer.feed, anthropic_api.error_event, tail)

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
        self.check_auth(scope)
        await send_json(send, 200, self._models_body, rid)

    async def health(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        await send_json(send, 200, orjson.dumps({"status": "ok", "version": __version__}), rid)

    async def ready(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        ok = self.gateway._started
        body: dict[str, Any] = {"status": "ready" if ok else "starting", "deployments": len(self.gateway.deployments)}
        status = getattr(self.gateway.resilience.store, "status", None)  # shared state (docs/SCALING.md)
        if status is not None:
            body["state"] = status()
        await send_json(send, 200 if ok else 503, orjson.dumps(body), rid)


def _api(path: str) -> str:
    """Which API's error format a failed request gets."""
    return "anthropic" if path.endswith("/messages") else "openai"


def create_app(gateway: Gateway | None = None, **kw: Any) -> App:
    gw = gateway or Gateway.default()
    server = gw.config.server
    from ..secret_refs import resolve_secret

    master = kw.pop("master_key", None) or resolve_secret(server.master_key, where="server.master_key")
    return App(gw, master_key=master, max_body_bytes=kw.pop("max_body_bytes", server.max_body_bytes),
               body_timeout_s=kw.pop("body_timeout_s", server.body_timeout_s), **kw)


def app_from_env() -> App:
    """Factory for `uvicorn --factory` and multi-worker serving: config from MODELYARD_CONFIG."""
    path = os.environ.get("MODELYARD_CONFIG")
    gw = Gateway.from_file(path) if path else Gateway.default(sim_only=os.environ.get("MODELYARD_SIM_ONLY") == "1")
    return create_app(gw, master_key=os.environ.get("MODELYARD_MASTER_KEY") or None)


__all__ = ["App", "ChatRequest", "app_from_env", "create_app"]
