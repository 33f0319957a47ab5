"""OpenTelemetry traces (the `otel` extra), following the GenAI semantic conventions.

When configured (`telemetry.otlp_endpoint`, or `configure(exporter=...)`), each request gets a span
(`chat {model}`; a multi-model mode's sub-calls are child spans of their parent request's), with a
`route {model}` child for the routing decision and a CLIENT span per upstream attempt, whose
context goes upstream as a W3C `traceparent` header. A client's `traceparent` makes the request a
child of the client's trace. Message content is recorded only with `telemetry.record_content`.

When not configured, `TRACER` is None and every instrumented place checks only that: no span, no
context object, no import of OpenTelemetry. The provider is this module's own (not OpenTelemetry's
global one), so a library user's tracing setup is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import TelemetryConfig
    from ..deployment import Deployment
    from ..store.rows import Row
    from ..types import ChatRequest, ChatResponse, RouteDecision

T = TypeVar("T")

TRACER: Any = None  # an opentelemetry Tracer while tracing is configured
RECORD_CONTENT = False
_provider: Any = None
_propagator: Any = None
_open: dict[str, tuple[Any, bool]] = {}  # request id -> (its span, stream?) until the request ends
_deployment_models: dict[str, str] = {}


def configure(cfg: TelemetryConfig | None = None, *, exporter: Any = None, service_name: str | None = None,
              record_content: bool | None = None, source: str = "<config>") -> bool:
    """Start tracing: OTLP/HTTP to `cfg.otlp_endpoint` (batched, off the request path), or to
    `exporter` (spans exported as they end: tests' InMemorySpanExporter). False when neither is set."""
    global TRACER, RECORD_CONTENT, _provider, _propagator
    endpoint = cfg.otlp_endpoint if cfg is not None else None
    if endpoint is None and exporter is None:
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        raise ConfigError(source, "telemetry.otlp_endpoint", "tracing needs the OpenTelemetry packages: "
                          "pip install 'modelyard[otel]'") from None
    shutdown()
    name = service_name or (cfg.service_name if cfg is not None else "modelyard")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        assert endpoint is not None
        url = endpoint.rstrip("/")
        url = url if url.endswith("/v1/traces") else url + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    _provider = provider
    _propagator = TraceContextTextMapPropagator()
    RECORD_CONTENT = record_content if record_content is not None else bool(cfg and cfg.record_content)
    TRACER = provider.get_tracer("modelyard")
    return True


def shutdown() -> None:
    """Export what is pending and stop tracing."""
    global TRACER, _provider
    TRACER = None
    _open.clear()
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def watch(gateway: Any) -> None:
    """Let `gateway` end its requests' spans: its rows carry the outcome (`Gateway.observers`)."""
    _deployment_models.update({n: d.model for n, d in gateway.deployments.items()})
    if on_row not in gateway.observers:
        gateway.observers.append(on_row)


# --- the client's trace context ---------------------------------------------------------------------
def attach(scope: dict[str, Any]) -> Any:
    """Make a client's `traceparent` (and `tracestate`) the current context; a token for `detach`."""
    from opentelemetry import context

    carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
               if k in (b"traceparent", b"tracestate")}
    if not carrier:
        return None
    return context.attach(_propagator.extract(carrier))


def detach(token: Any) -> None:
    if token is not None:
        from opentelemetry import context

        context.detach(token)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current span's `traceparent`, for an upstream call."""
    out = dict(headers)
    _propagator.inject(out)
    return out


# --- spans -------------------------------------------------------------------------------------------
async def request(gateway: Any, call: Callable[[], Awaitable[T]], req: ChatRequest, rid: str, *,
                  stream: bool) -> T:
    """Run one request of `gateway` (`Gateway.chat`/`.stream`) inside its span. The span gets the
    outcome from the request's row (`on_row`), and a stream's ends with it, when the stream ends."""
    from opentelemetry import trace

    if on_row not in gateway.observers:
        watch(gateway)

    span = TRACER.start_span(f"chat {req.model}", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": req.model, "modelyard.request_id": rid,
        "modelyard.stream": stream})
    _request_attributes(span, req)
    old = _open.pop(rid, None)
    if old is not None:  # a client reused a request id while the first was running
        old[0].end()
    _open[rid] = (span, stream)
    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            result = await call()
    except BaseException as e:
        if _close(rid, span):
            _fail(span, e)
            span.end()
        raise
    if not stream:  # a stream's span ends with its row, when the stream ends
        if RECORD_CONTENT:
            _response_content(span, result)  # type: ignore[arg-type]
        if _close(rid, span):
            span.end()
    return result


def _close(rid: str, span: Any) -> bool:
    """Forget `rid`'s span if it is still `span`'s (True: the caller ends it)."""
    entry = _open.get(rid)
    if entry is None or entry[0] is not span:
        return False
    del _open[rid]
    return True


def on_row(row: Row) -> None:
    """A request finished: put its outcome on its span (and end a stream's)."""
    entry = _open.get(row.id)
    if entry is None:
        return
    span, stream = entry
    attrs: dict[str, Any] = {
        "http.response.status_code": row.status, "modelyard.cost_usd": row.cost_usd,
        "gen_ai.usage.input_tokens": row.input_tokens, "gen_ai.usage.output_tokens": row.output_tokens,
        "modelyard.attempts": row.attempts, "modelyard.fallbacks": row.fallbacks,
    }
    if row.deployment:
        attrs["modelyard.deployment"] = row.deployment
        model = _deployment_models.get(row.deployment)
        if model:
            attrs["gen_ai.response.model"] = model
    if row.provider:
        attrs["gen_ai.provider.name"] = row.provider
    if row.cached_input_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = row.cached_input_tokens
    if row.ttft_ms is not None:
        attrs["modelyard.ttft_ms"] = row.ttft_ms
    if row.cache:
        attrs["modelyard.cache"] = row.cache
    if row.experiment:
        attrs["modelyard.experiment"] = row.experiment
    span.set_attributes(attrs)
    if row.status >= 400:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", row.error_type or str(row.status))
        span.set_status(Status(StatusCode.ERROR, row.error_type or ""))
    if stream:
        del _open[row.id]
        span.end()


def route(plan: Callable[[], tuple[list[Deployment], RouteDecision]], model: str
          ) -> tuple[list[Deployment], RouteDecision]:
    """The routing decision, as a `route {model}` span: strategy, choice, rule, reason."""
    with TRACER.start_as_current_span(f"route {model}", attributes={"gen_ai.request.model": model}) as span:
        chain, decision = plan()
        span.set_attributes({"modelyard.route.strategy": decision.strategy,
                             "modelyard.route.deployment": decision.deployment,
                             "modelyard.route.reason": decision.reason[:500],
                             "modelyard.route.chain": [d.name for d in chain]})
        if decision.rule:
            span.set_attribute("modelyard.route.rule", decision.rule)
        return chain, decision


@contextlib.contextmanager
def attempt(dep: Deployment, stream: bool) -> Iterator[Any]:
    """One upstream call, a CLIENT span (streams: until the first chunk); its context is what
    `inject` sends upstream."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": dep.provider,
             "gen_ai.request.model": dep.model, "modelyard.deployment": dep.name, "modelyard.stream": stream}
    with TRACER.start_as_current_span(f"chat {dep.model}", kind=SpanKind.CLIENT, attributes=attrs,
                                      record_exception=False, set_status_on_exception=False) as span:
        try:
            yield span
        except BaseException as e:
            _fail(span, e)
            raise
        span.set_status(Status(StatusCode.OK))


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span for another stage (a cache lookup, say); nothing when tracing is off."""
    if TRACER is None:
        yield None
        return
    with TRACER.start_as_current_span(name, attributes=attributes) as s:
        yield s


def _fail(span: Any, e: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    etype = getattr(e, "type", None) or type(e).__name__
    span.set_attribute("error.type", etype)
    span.set_status(Status(StatusCode.ERROR, etype))


def _request_attributes(span: Any, req: ChatRequest) -> None:
    for name, value in (("gen_ai.request.max_tokens", req.max_tokens), ("gen_ai.request.temperature",
                        req.temperature), ("gen_ai.request.top_p", req.top_p), ("gen_ai.request.seed", req.seed)):
        if value is not None:
            span.set_attribute(name, value)
    mode = req.metadata.get("mode") if req.metadata else None
    if isinstance(mode, str):
        span.set_attribute("modelyard.mode", mode)
    if req.caller.key_id:
        span.set_attribute("modelyard.key_id", req.caller.key_id)
    if RECORD_CONTENT:
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        span.set_attribute("gen_ai.input.messages", orjson.dumps(messages, default=str).decode())


def _response_content(span: Any, resp: ChatResponse) -> None:
    if span.is_recording() and resp.choices:
        out = [{"role": "assistant", "content": c.message.content} for c in resp.choices]
        span.set_attribute("gen_ai.output.messages", orjson.dumps(out, default=str).decode())
