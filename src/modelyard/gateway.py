"""THE pipeline: resolve the model name → pick deployments → call → account → log.

The HTTP server and the Python client both call `Gateway.chat` / `Gateway.stream`, so both get
identical behaviour. Everything that can be computed from config (deployment URLs and headers,
the name → route index, provider sessions) is built once in `__init__`/`start`; the request path
only looks things up.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from .accounting.admission import FREE, Accounting, Admission
from .accounting.fallback_slots import fallback_gate
from .cache.core import Look, ResponseCache
from .cache.replay import CachedStream, Recorder
from .catalog import Catalog, unknown_card
from .config import Config
from .deployment import Deployment
from .errors import BadRequest, ConfigError, ModelyardError, NotFound
from .execution import embed as embedding
from .execution import single
from .experiments import assign as experiments
from .loader import load_config
from .modes import dispatch as modes
from .providers import Provider, provider_class
from .resilience.policy import Resilience
from .routing import Route, Router
from .secret_refs import resolve_secret
from .store.backend import open_request_log
from .store.content import ContentLog
from .store.rows import make_row
from .store.sqlite import RequestLog, Row, request_row
from .telemetry import tracing
from .tokens import count_message_tokens, count_tokens
from .types import ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, RouteDecision, StreamChunk, Usage

_ID_PREFIX = "req_" + os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """Unique across processes (random prefix per process) without a syscall per request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


class Gateway:
    def __init__(self, config: Config, *, source: str = "<config>", environ: dict[str, str] | None = None,
                 request_log: bool | None = None) -> None:
        self.config = config
        self.source = source
        self.catalog = Catalog({k: v.model_dump() for k, v in config.catalog.items()})
        self.providers: dict[str, Provider] = {}
        self.deployments: dict[str, Deployment] = {}
        for name, dc in config.deployments.items():
            card = (self.catalog.get(dc.card or dc.model) or self.catalog.get(name)
                    or unknown_card(dc.model, dc.provider))
            dep = Deployment(
                name=name, provider=dc.provider, model=dc.model, card=card, api_base=dc.api_base or "",
                api_key=resolve_secret(dc.api_key, where=f"deployments.{name}.api_key", environ=environ),
                api_version=dc.api_version, headers=dict(dc.headers), weight=dc.weight, rpm=dc.rpm,
                tpm=dc.tpm, max_concurrency=dc.max_concurrency, tags=tuple(dc.tags), timeout_s=dc.timeout_s,
                connect_timeout_s=dc.connect_timeout_s, tls_verify=dc.tls_verify, sim=dc.sim,
                tls_client_cert=(dc.tls_client_cert.cert, dc.tls_client_cert.key) if dc.tls_client_cert else None,
                model_path=dc.model_path, embedding=dc.embedding,
            )
            kind = "openai" if dc.provider == "azure" else dc.provider
            if kind not in self.providers:
                self.providers[kind] = provider_class(kind)()
            try:
                self.providers[kind].prepare(dep)  # sets dep.adapter (and dep.endpoint for HTTP)
            except ConfigError as e:  # (a file the config names cannot be used: say which config)
                raise ConfigError(source, e.path, e.message) from None
            self.deployments[name] = dep
        self.routes: dict[str, Route] = {}
        for name, dep in self.deployments.items():
            self.routes[name] = Route(name=name, deployments=[dep], strategy="direct")
        for gname, g in config.model_groups.items():
            fallbacks = self._expand(g.fallbacks)
            self.routes[gname] = Route(name=gname, deployments=[self.deployments[d] for d in g.deployments],
                                       strategy=g.strategy, fallbacks=fallbacks, is_group=True,
                                       description=g.description,
                                       context_fallbacks=self._expand(g.context_window_fallbacks))
        self.pipelines = modes.load_pipelines(config)  # "pipeline/<name>" -> compiled pipeline
        self.resilience = Resilience(config, self.deployments)  # breakers, health, retry/timeout policies
        self.health = self.resilience.health
        self.router = Router(self.health, config=config, deployments=self.deployments, catalog=self.catalog,
                             source=source)
        # A/B tests: the groups they split -> the experiment (variant routes planned by the router now)
        self.experiments = experiments.build(config, self.routes, self.deployments, self.router)
        self._names_hint = ", ".join(sorted(self.routes))
        log_cfg = config.server.request_log
        enabled = log_cfg.enabled if request_log is None else request_log
        self.request_log: RequestLog | None = open_request_log(config) if enabled else None  # SQLite or Postgres
        # whose prompts/answers the log keeps (store/content.py); None: no log, nothing is ever built
        self.content = ContentLog.build(config, self.deployments) if self.request_log is not None else None
        # Called with every finished request's row (metrics, console lines, alerts): on the request
        # path, so an observer only counts or queues.
        self.observers: list[Callable[[Row], None]] = []
        self.online: Any = None  # routing.learned.online.OnlineFeedback, when a group learns from feedback
        self.accounting = Accounting.for_gateway(self)  # rate limits, budgets, alerts (accounting/)
        self._limited = any(d.rpm or d.tpm for d in self.deployments.values())  # (fallbacks take slots too)
        self.cache = ResponseCache(config.cache, {g: c.cache for g, c in config.model_groups.items()},
                                   self.deployments, config.state)  # exact + semantic response caches (cache/)
        self._started = False

    # --- construction helpers -----------------------------------------------------------------
    def _expand(self, names: list[str]) -> list[Deployment]:
        """Fallback names (groups or deployments) → their deployments, in order, each once."""
        out: list[Deployment] = []
        for f in names:
            group = self.config.model_groups.get(f)
            targets = [self.deployments[d] for d in group.deployments] if group else [self.deployments[f]]
            out.extend(t for t in targets if t not in out)
        return out

    @classmethod
    def from_file(cls, path: str, **kw: Any) -> Gateway:
        return cls(load_config(path), source=str(path), **kw)

    @classmethod
    def default(cls, *, sim_only: bool = False, **kw: Any) -> Gateway:
        from .defaults import default_config  # (imports the sim fleet, which a config file may not use)

        return cls(default_config(sim_only=sim_only), source="<embedded defaults>", **kw)

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        for p in self.providers.values():
            await p.start()
        if self.request_log is not None:
            await self.request_log.start()
        await self.resilience.start()
        await self._start_online_learning()
        await self.accounting.start()
        await self.cache.start()
        self._started = True

    async def _start_online_learning(self) -> None:
        """Routers that learn from feedback replay the feedback table (and follow it) when they can."""
        if self.request_log is None or "modelyard.routing.learned.strategy" not in sys.modules:
            return  # no record to learn from, or no learned strategy in this process
        from .routing.learned.online import OnlineFeedback, learns_online

        if learns_online(self.deployments):
            self.online = OnlineFeedback(self.request_log.path, self.deployments)
            await self.online.start()

    async def close(self) -> None:
        if self.online is not None:
            await self.online.close()
        await self.accounting.close()
        await self.cache.close()
        await experiments.close(self.experiments)
        await self.resilience.close()
        if self.content is not None:
            await self.content.close()  # rows still waiting for their content go to the log first
        if self.request_log is not None:
            await self.request_log.close()
        for p in self.providers.values():
            await p.close()
        self._started = False

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- routing ------------------------------------------------------------------------------
    def resolve(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is None:
            raise NotFound(f"unknown model '{name}'; available: {self._names_hint}", param="model",
                           code="model_not_found")
        return route

    def plan(self, route: Route, req: ChatRequest) -> tuple[list[Deployment], RouteDecision]:
        if tracing.TRACER is not None:
            return tracing.route(lambda: self.router.plan(route, req), route.name)
        return self.router.plan(route, req)

    # --- execution ----------------------------------------------------------------------------
    def chat(self, req: ChatRequest, *, request_id: str | None = None, api: str = "openai"
             ) -> Coroutine[Any, Any, ChatResponse]:
        """One non-streamed request through the whole pipeline (await it). Untraced, this is the
        pipeline's own coroutine: no coroutine in between."""
        rid = request_id or new_request_id()
        if tracing.TRACER is not None:
            return tracing.request(self, lambda: self._chat(req, rid, api), req, rid, stream=False)
        return self._chat(req, rid, api)

    async def _chat(self, req: ChatRequest, rid: str, api: str) -> ChatResponse:
        if req.model in self.pipelines or (req.metadata and req.metadata.get("mode") not in modes.DIRECT):
            return await modes.chat(self, req, rid, api)  # race/all/vote/judge/fuse/pipeline
        t0 = time.perf_counter()
        admission = FREE
        try:
            route = self.resolve(req.model)
            if (exp := self.experiments.get(route.name)) is not None:
                route = exp.assign(route, req, rid)  # the variant's route; tags req.experiment
            admission = await self.accounting.admit(req, route)  # caller rpm/tpm, budget reservation: or 429
            look = self.cache.plan(route.plan_key, req)  # None: the response cache does not apply
            if look is not None and (await self.cache.lookup(look)).entry is not None:
                admission.settle(None, Usage(), 0.0)  # a hit counts against rpm, costs nothing
                return self._cache_hit(rid, req, look, t0, api)
            if (prep := self.router.prepares.get(route.plan_key)) is not None:
                await asyncio.to_thread(prep, req)  # e.g. the learned router's embedding, off the loop
            chain, decision = self.router.plan(route, req) if tracing.TRACER is None else self.plan(route, req)
            chain = admission.route(chain)  # deployment rpm/tpm: full ones leave the chain (none left: 429)
            policy = self.resilience.policy(route.name, req)
        except ModelyardError as e:
            admission.release()
            self._log_error(rid, req, None, e, t0, api)
            raise
        try:
            resp, dep = await single.complete(chain, req, decision, self.health, policy,
                                              fallback_gate(self.accounting, self._limited, admission, req, decision))
        except ModelyardError as e:
            admission.settle(None, None, 0.0, decision)
            self._log_error(rid, req, e.deployment, e, t0, api, decision)
            raise
        except asyncio.CancelledError as e:  # a race lost, a caller gone: the prompt was still sent
            self._log_cancelled(rid, req, chain, decision, t0, api, e)
            admission.cancelled(e, decision)
            raise
        resp.deployment = dep.name
        resp.cost_usd = dep.card.cost(resp.usage)
        admission.settle(dep.name, resp.usage, resp.cost_usd, decision)
        resp.latency_ms = (time.perf_counter() - t0) * 1000
        resp.decision = decision
        if look is not None:
            resp.cache = look.kind
            await self.cache.store(look, resp)  # a complete answer (never raises)
        self._log_ok(rid, req, dep, resp.usage, resp.cost_usd, resp.latency_ms, None, decision, False, api,
                     cache=resp.cache, answer=resp)
        if exp is not None and exp.scorer is not None:  # the experiment's judge grades a sample, off the path
            exp.scorer.offer(self, rid, req, resp.text)
        return resp

    def stream(self, req: ChatRequest, *, request_id: str | None = None, api: str = "openai"
               ) -> Coroutine[Any, Any, GatewayStream]:
        """Start a streamed request (await it): fallbacks are allowed until the first chunk exists.

        The await ends once a deployment produced its first chunk, so the caller can send headers
        naming the deployment that will serve the rest. Untraced, this is the pipeline's own coroutine.
        """
        rid = request_id or new_request_id()
        if tracing.TRACER is not None:
            return tracing.request(self, lambda: self._stream(req, rid, api), req, rid, stream=True)
        return self._stream(req, rid, api)

    async def _stream(self, req: ChatRequest, rid: str, api: str) -> GatewayStream:
        if req.model in self.pipelines or (req.metadata and req.metadata.get("mode") not in modes.DIRECT):
            return await modes.stream(self, req, rid, api)  # type: ignore[return-value]  # same interface
        t0 = time.perf_counter()
        admission = FREE
        try:
            route = self.resolve(req.model)
            if (exp := self.experiments.get(route.name)) is not None:
                route = exp.assign(route, req, rid)  # the variant's route; tags req.experiment
            admission = await self.accounting.admit(req, route)  # caller rpm/tpm, budget reservation: or 429
            look = self.cache.plan(route.plan_key, req)
            if look is not None and (await self.cache.lookup(look)).entry is not None:
                admission.settle(None, Usage(), 0.0)  # a hit counts against rpm, costs nothing
                return self._cache_hit_stream(rid, req, look, t0, api)  # type: ignore[return-value]  # same interface
            if (prep := self.router.prepares.get(route.plan_key)) is not None:
                await asyncio.to_thread(prep, req)  # e.g. the learned router's embedding, off the loop
            chain, decision = self.plan(route, req)
            chain = admission.route(chain)  # deployment rpm/tpm: full ones leave the chain (none left: 429)
            policy = self.resilience.policy(route.name, req)
        except ModelyardError as e:
            admission.release()
            self._log_error(rid, req, None, e, t0, api, stream=True)
            raise
        try:
            dep, agen, first = await single.open_stream(
                chain, req, decision, self.health, policy,
                fallback_gate(self.accounting, self._limited, admission, req, decision))
        except ModelyardError as e:
            admission.settle(None, None, 0.0, decision)
            self._log_error(rid, req, e.deployment, e, t0, api, decision, stream=True)
            raise
        except asyncio.CancelledError as e:
            self._log_cancelled(rid, req, chain, decision, t0, api, e, stream=True)
            admission.cancelled(e, decision)
            raise
        return GatewayStream(self, rid, req, dep, decision, agen, first, t0, api, admission, look)

    async def embed(self, req: EmbeddingRequest, *, request_id: str | None = None) -> EmbeddingResponse:
        """Embeddings through the route's deployments that serve them, in order (then its fallbacks),
        with the chat path's retries and breakers; costed from the card (input tokens) and logged."""
        rid = request_id or new_request_id()
        t0 = time.perf_counter()
        log_req = ChatRequest(model=req.model, messages=[], user=req.user, metadata=req.metadata, caller=req.caller)
        try:
            route = self.resolve(req.model)
            chain = embedding.embedders([*route.deployments, *route.fallbacks])
            if not chain:
                raise BadRequest(f"'{req.model}' has no deployment that serves embeddings; configure one "
                                 "(provider openai, gemini, local or llamacpp) and name it", param="model")
            decision = RouteDecision(model=req.model, deployment=chain[0].name, strategy="embeddings",
                                     reason="the deployments that serve embeddings, in order")
            policy = self.resilience.policy(route.name, log_req)
        except ModelyardError as e:
            self._log_error(rid, log_req, None, e, t0, "embeddings")
            raise
        try:
            resp, dep = await embedding.embed(chain, req, decision, self.health, policy)
        except ModelyardError as e:
            self._log_error(rid, log_req, e.deployment, e, t0, "embeddings", decision)
            raise
        resp.deployment, resp.decision = dep.name, decision
        resp.cost_usd = dep.card.cost(resp.usage)
        resp.latency_ms = (time.perf_counter() - t0) * 1000
        self._log_ok(rid, log_req, dep, resp.usage, resp.cost_usd, resp.latency_ms, None, decision, False,
                     "embeddings")
        return resp

    # --- accounting ---------------------------------------------------------------------------
    def emit(self, row: Row) -> None:
        """Record one finished request: the request log, then every observer."""
        if self.request_log is not None:
            self.request_log.record(row)
        for observe in self.observers:
            observe(row)

    def _log_ok(self, rid: str, req: ChatRequest, dep: Deployment, usage: Usage, cost: float, latency_ms: float,
                ttft_ms: float | None, decision: RouteDecision, stream: bool, api: str,
                status: int = 200, error: ModelyardError | None = None, error_text: str | None = None,
                cache: str | None = None, saved_usd: float = 0.0,
                answer: ChatResponse | list[StreamChunk] | None = None) -> None:
        row = make_row(rid, req.model, status, dep.name, dep.provider, error.type if error else None,
                       error.message if error else error_text, usage, cost, latency_ms, ttft_ms, stream, req.user,
                       api, decision, req.caller, cache, saved_usd, req.experiment)
        if self.content is not None and self.content.wants(req):  # opted in: content added off the loop
            self.content.emit_with(self.emit, row, req, answer)
        else:
            self.emit(row)

    def _cache_hit(self, rid: str, req: ChatRequest, look: Look, t0: float, api: str) -> ChatResponse:
        """A cached answer: cost 0, no upstream tokens; the row says what it saved."""
        resp, decision = look.response(rid, req.model)
        resp.latency_ms = (time.perf_counter() - t0) * 1000
        self._log_ok(rid, req, self.deployments[resp.deployment], Usage(), 0.0, resp.latency_ms, None,
                     decision, False, api, cache=look.kind, saved_usd=look.saved_usd)
        return resp

    def _cache_hit_stream(self, rid: str, req: ChatRequest, look: Look, t0: float, api: str) -> CachedStream:
        """A cached answer replayed as a stream; it writes its row when it ends."""
        def on_end(s: CachedStream, status: int, note: str | None) -> None:
            self._log_ok(rid, req, s.deployment, Usage(), 0.0, s.latency_ms, s.ttft_ms, s.decision, True, api,
                         status=status, error_text=note, cache=look.kind, saved_usd=look.saved_usd)

        resp, decision = look.response(rid, req.model)
        return CachedStream(rid, req, resp, self.deployments[resp.deployment], decision, t0, on_end)

    def _log_cancelled(self, rid: str, req: ChatRequest, chain: list[Deployment], decision: RouteDecision,
                       t0: float, api: str, exc: BaseException, stream: bool = False) -> None:
        """A call cut off before it answered: providers bill the prompt they received, so log the
        estimated input tokens as a 499 row, and note the charge on the exception for callers that
        add up sub-calls (execution modes)."""
        dep = next((d for d in chain if d.name not in decision.fallbacks), chain[-1] if chain else None)
        if dep is None:
            return
        usage = Usage(input_tokens=count_message_tokens(req.messages))
        cost = dep.card.cost(usage)
        exc.modelyard_charge = (dep.name, usage, cost)  # type: ignore[attr-defined]
        self._log_ok(rid, req, dep, usage, cost, (time.perf_counter() - t0) * 1000, None, decision, stream, api,
                     status=499, error_text="cancelled before the upstream answered")

    def _log_error(self, rid: str, req: ChatRequest, deployment: str | None, e: ModelyardError, t0: float,
                   api: str, decision: RouteDecision | None = None, stream: bool = False) -> None:
        dep = self.deployments.get(deployment) if deployment else None
        if (limit := getattr(e, "limit_scope", None)) is not None:  # refused by a gateway rate limit
            from .telemetry import metrics

            metrics.rate_limited(limit)
        if req.experiment is not None:
            e.experiment = req.experiment  # the error response carries x-modelyard-experiment too
        row = request_row(
            rid, req.model, e.status, deployment=deployment, provider=dep.provider if dep else None,
            error_type=e.type, error=e.message, latency_ms=(time.perf_counter() - t0) * 1000, stream=stream,
            user=req.user, api=api, decision=decision, caller=req.caller, experiment=req.experiment)
        if self.content is not None and self.content.wants(req):
            self.content.emit_with(self.emit, row, req, None)  # the prompt only
        else:
            self.emit(row)


class GatewayStream:
    """A started stream: iterate it for chunks; it accounts for itself when it ends.

    If the upstream fails after the first chunk, iteration raises the taxonomy error (the server
    turns it into an SSE error event). If the consumer stops early (client disconnect), `aclose()`
    cancels the upstream call. Either way exactly one log row is written, with the usage of the
    partial stream estimated from what was seen when the upstream never reported it.
    """

    def __init__(self, gateway: Gateway, request_id: str, req: ChatRequest, dep: Deployment,
                 decision: RouteDecision, agen: AsyncIterator[StreamChunk], first: StreamChunk, t0: float,
                 api: str, admission: Admission = FREE, look: Look | None = None) -> None:
        self.gateway, self.request_id, self.req, self.deployment = gateway, request_id, req, dep
        self.decision, self._agen, self._t0, self.api = decision, agen, t0, api
        self.admission = admission  # settled when the stream ends
        self._first: StreamChunk | None = first  # handed out once, by the first iteration
        self.ttft_ms = (time.perf_counter() - t0) * 1000
        self.usage: Usage | None = None
        self.cost_usd: float = 0.0
        self.finish_reason: str | None = None
        self._text_parts: list[str] = []
        self._done = False
        self._complete = False  # the last chunk was seen
        self._look = look  # the response cache's plan: a complete stream is stored
        self._recorder = Recorder() if look is not None else None
        self.cache = look.kind if look is not None else None
        self.cache_similarity: float | None = None
        # the chunks, kept only when the request log keeps this request's answer (store/content.py)
        self._chunks: list[StreamChunk] | None = (
            [] if gateway.content is not None and gateway.content.wants(req) else None)

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        first, self._first = self._first, None
        try:
            if first is not None:
                self._see(first)
                yield first
            async for chunk in self._agen:
                self._see(chunk)
                yield chunk
                if chunk.last:  # the client has the whole answer: account for it now, not after the upstream's close
                    self._finish(200, None)
        except ModelyardError as e:
            if self._complete:  # a failure after the last chunk (closing the upstream): the answer stands
                self._finish(200, None)
                return
            self._finish(e.status, e)
            raise
        self._finish(200, None)

    def _see(self, chunk: StreamChunk) -> None:
        if self._recorder is not None:
            self._recorder.see(chunk)
        if self._chunks is not None:
            self._chunks.append(chunk)
        if chunk.text:
            self._text_parts.append(chunk.text)
        elif chunk.tool_calls:
            for tc in chunk.tool_calls:
                self._text_parts.append(tc.arguments)
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
            self.cost_usd = self.deployment.card.cost(chunk.usage)
        if chunk.last:
            self._complete = True

    def _finish(self, status: int, error: ModelyardError | None, note: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        gw, dep = self.gateway, self.deployment
        if self.usage is None:  # partial stream: count what was seen
            self.usage = Usage(input_tokens=count_message_tokens(self.req.messages),
                               output_tokens=count_tokens("".join(self._text_parts)))
            self.cost_usd = dep.card.cost(self.usage)
        self.admission.settle(dep.name, self.usage, self.cost_usd, self.decision)
        gw._log_ok(self.request_id, self.req, dep, self.usage, self.cost_usd,
                   (time.perf_counter() - self._t0) * 1000, self.ttft_ms, self.decision, True, self.api,
                   status=status, error=error, error_text=note, cache=self.cache, answer=self._chunks)
        if self._recorder is not None and self._look is not None and status == 200 and error is None:
            resp = self._recorder.response(dep.name, self.cost_usd)  # None unless every choice finished
            if resp is not None:
                gw.cache.store_later(self._look, resp)
        if status == 200 and self.req.experiment and (exp := gw.experiments.get(self.req.model)) and exp.scorer:
            exp.scorer.offer(gw, self.request_id, self.req, "".join(self._text_parts))

    async def aclose(self) -> None:
        """Stop early (client went away): cancel the upstream call and record the partial usage."""
        if not self._done:
            await self._agen.aclose()  # type: ignore[attr-defined]
            self._finish(499, None, "client disconnected before the stream ended")
