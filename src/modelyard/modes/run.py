"""One multi-model request in flight: its sub-calls, their request ids, and what they cost.

Every sub-call goes through the gateway's own single-request path (`Gateway.chat` / `.stream`):
resolve → plan → execute with fallbacks → account → one request-log row with id `<parent>.<k>`.
So routing, fallbacks and the request log apply to each sub-call, and a sub-call's cost is exactly
what the gateway charged for it. The parent request's cost and usage are the sums over its
sub-calls, including calls cut off by a race (the gateway estimates the prompt tokens the provider
bills for those). The parent gets one log row of its own with zero cost, its totals and the
sub-call ids in the `route` column, so `SUM(cost_usd)` over the log stays the true spend.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest, BudgetExceeded, ModelyardError
from ..store.sqlite import request_row
from ..types import ChatRequest, ChatResponse, RouteDecision, Scored, ToolCall, Usage
from .spec import KEYS, Spec

if TYPE_CHECKING:
    from ..gateway import Gateway, GatewayStream


@dataclass(slots=True, eq=False)
class Call:
    """One sub-call and how it ended: answered, failed, or cancelled (a race loser)."""

    label: str  # unique within the request: the model name, "name#2" for a repeat, "judge", a step name
    model: str  # the model or group asked
    request_id: str
    role: str = "candidate"  # candidate | judge | aggregator | step
    response: ChatResponse | None = None
    error: ModelyardError | None = None
    cancelled: bool = False
    deployment: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    @property
    def ok(self) -> bool:
        return self.response is not None and not self.cancelled

    @property
    def status(self) -> str:
        return "cancelled" if self.cancelled else "ok" if self.response is not None else \
            "failed" if self.error is not None else "running"

    @property
    def text(self) -> str:
        """The answer as text; tool calls as JSON, so they can be compared or shown to a judge."""
        if self.response is None:
            return ""
        return self.response.text or tool_calls_text(self.response.tool_calls)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.label, "role": self.role, "deployment": self.deployment, "request_id": self.request_id,
            "status": self.status, "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens, "cost_usd": self.cost_usd,
            "latency_ms": round(self.latency_ms, 1),
        }
        if self.label != self.model:
            out["asked"] = self.model
        if self.error is not None:
            out["error"] = error_dict(self.error)
        return out


def tool_calls_text(calls: list[ToolCall]) -> str:
    import orjson

    return orjson.dumps([{"name": c.name, "arguments": c.arguments} for c in calls]).decode() if calls else ""


def error_dict(e: ModelyardError) -> dict[str, Any]:
    return {"type": e.type, "status": e.status, "message": e.message}


@dataclass(slots=True, frozen=True)
class Candidate:
    label: str  # unique: the model name, or "name#2" when a model is asked more than once
    model: str
    seed: int | None  # a repeat of a model gets its own seed, so it samples a different answer


@dataclass(slots=True)
class Result:
    """What a mode produced: the call whose answer is returned and the metadata describing the run.

    `response` is the answer when it is already complete; when streaming live, `live` is the final
    call's open GatewayStream instead. `describe` is evaluated once every call has settled.
    """

    call: Call
    describe: Callable[[], dict[str, Any]]
    response: ChatResponse | None = None
    live: GatewayStream | None = None
    reason: str = ""


class Run:
    """The parent request: makes sub-calls through the gateway and keeps their accounts."""

    def __init__(self, gw: Gateway, req: ChatRequest, rid: str, api: str, mode: str, *,
                 budget_usd: float | None = None, stream: bool = False) -> None:
        self.gw, self.req, self.rid, self.api, self.mode = gw, req, rid, api, mode
        self.budget_usd = budget_usd
        self.stream = stream
        self.calls: list[Call] = []
        self.t0 = time.perf_counter()
        self.base_metadata = {k: v for k, v in req.metadata.items() if k not in KEYS}
        self._seq = itertools.count(1)
        self._logged = False

    # --- sub-calls ---------------------------------------------------------------------------
    def sub_request(self, model: str, **fields: Any) -> ChatRequest:
        """The parent request re-addressed to `model`, without the mode options (no recursion)."""
        sub = dataclasses.replace(self.req, model=model, metadata=dict(self.base_metadata), n=1, stream=False,
                                  include_usage=False)
        for k, v in fields.items():
            setattr(sub, k, v)
        return sub

    def _new(self, label: str, model: str, role: str) -> Call:
        if self.budget_usd is not None:
            spent = self.cost_usd()
            if spent >= self.budget_usd:
                raise BudgetExceeded(
                    f"{self.req.model}: spent ${spent:.6f} of the request's ${self.budget_usd:.6f} budget "
                    f"before calling {label}; raise budget_usd or use cheaper models")
        call = Call(label, model, f"{self.rid}.{next(self._seq)}", role)
        self.calls.append(call)
        return call

    async def call(self, label: str, req: ChatRequest, role: str = "candidate") -> Call:
        """A non-streamed sub-call. Taxonomy errors are recorded on the Call, not raised."""
        call = self._new(label, req.model, role)
        try:
            resp = await self.gw.chat(req, request_id=call.request_id, api=self.api)
        except ModelyardError as e:
            call.error, call.deployment = e, e.deployment
        except asyncio.CancelledError as e:
            _charge_cancelled(call, e)
            raise
        else:
            call.response, call.deployment, call.usage, call.cost_usd = resp, resp.deployment, resp.usage, \
                resp.cost_usd
        finally:
            call.latency_ms = (time.perf_counter() - call.started) * 1000
        return call

    async def open(self, label: str, req: ChatRequest, role: str = "candidate") -> tuple[Call, GatewayStream | None]:
        """A streamed sub-call, returned once its first chunk exists (None on failure, recorded)."""
        call = self._new(label, req.model, role)
        req.stream = True
        try:
            stream = await self.gw.stream(req, request_id=call.request_id, api=self.api)
        except ModelyardError as e:
            call.error, call.deployment = e, e.deployment
            return call, None
        except asyncio.CancelledError as e:
            _charge_cancelled(call, e)
            raise
        finally:
            call.latency_ms = (time.perf_counter() - call.started) * 1000
        call.deployment = stream.deployment.name
        return call, stream

    def settle(self, call: Call, stream: Any, *, cancelled: bool = False,
               error: ModelyardError | None = None) -> None:
        """Copy a finished (or closed) stream's usage and cost onto its call."""
        call.usage = stream.usage or Usage()
        call.cost_usd = stream.cost_usd
        call.cancelled = call.cancelled or cancelled
        if error is not None:
            call.error = error
        call.latency_ms = (time.perf_counter() - call.started) * 1000

    # --- totals ------------------------------------------------------------------------------
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.calls)

    def usage(self) -> Usage:
        total = Usage()
        for c in self.calls:
            total.add(c.usage)
        return total

    def metadata(self, result: Result) -> dict[str, Any]:
        return {"mode": self.mode, **result.describe(), "cost_usd": self.cost_usd(),
                "calls": [c.summary() for c in self.calls]}

    def decision(self, deployment: str, reason: str = "") -> RouteDecision:
        return RouteDecision(
            model=self.req.model, deployment=deployment, strategy=self.mode, reason=reason,
            candidates=[Scored(c.deployment or c.model, 1.0 if c.ok else 0.0, c.ok, f"{c.role} {c.label}: {c.status}")
                        for c in self.calls],
            features={"mode": self.mode, "calls": [c.request_id for c in self.calls]},
        )

    def respond(self, result: Result) -> ChatResponse:
        """The parent's response: the chosen answer with the whole request's usage, cost and metadata."""
        base = result.response
        assert base is not None
        dep = result.call.deployment or ""
        return ChatResponse(
            id=base.id, model=base.model, choices=base.choices, usage=self.usage(), created=base.created,
            deployment=dep, cost_usd=self.cost_usd(), latency_ms=(time.perf_counter() - self.t0) * 1000,
            decision=self.decision(dep, result.reason), system_fingerprint=base.system_fingerprint,
            modelyard=self.metadata(result),
        )

    # --- the parent's log row ----------------------------------------------------------------
    def log(self, status: int, error: ModelyardError | None = None, *, note: str | None = None,
            deployment: str | None = None, reason: str = "") -> None:
        if self._logged:
            return
        self._logged = True
        decision = self.decision(deployment or "", reason)
        usage = self.usage()
        decision.features.update(total_cost_usd=self.cost_usd(), total_input_tokens=usage.input_tokens,
                                 total_output_tokens=usage.output_tokens)
        self.gw.emit(request_row(
            self.rid, self.req.model, status, error_type=error.type if error else None,
            error=error.message if error else note, latency_ms=(time.perf_counter() - self.t0) * 1000,
            stream=self.stream, user=self.req.user, api=self.api, decision=decision, caller=self.req.caller))


def _charge_cancelled(call: Call, exc: BaseException) -> None:
    """A cut-off call: the gateway noted on the exception what it estimated the provider bills."""
    call.cancelled = True
    charge = getattr(exc, "modelyard_charge", None)
    if charge is not None:
        call.deployment, call.usage, call.cost_usd = charge


# --- helpers the modes share ------------------------------------------------------------------

async def gather(aws: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run concurrently; if one raises (or the parent is cancelled), cancel and reap the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        await cancel(tasks)
        raise


async def cancel(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel and wait until each task has finished unwinding (its upstream connection closed)."""
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def all_failed(mode: str, calls: list[Call]) -> ModelyardError:
    """Nothing answered: the first candidate's error class, with every candidate's reason."""
    failed = [c for c in calls if c.error is not None]
    if not failed:
        return ModelyardError(f"{mode}: no candidate answered")
    first = failed[0].error
    assert first is not None
    err = copy.copy(first)
    err.message = f"{mode}: every candidate failed: " + "; ".join(
        f"{c.label}: {c.error.message}" for c in failed if c.error is not None)
    err.args = (err.message,)
    err.deployment = None
    return err


def candidates(gw: Gateway, req: ChatRequest, spec: Spec, *, minimum: int) -> list[Candidate]:
    """The models to ask: `spec.models`, else the deployments of the requested model group."""
    names: tuple[str, ...] = spec.models
    if not names:
        route = gw.resolve(req.model)
        names = tuple(d.name for d in route.deployments)
        if len(names) < minimum:
            raise BadRequest(
                f"modelyard.models: mode '{spec.mode}' needs at least {minimum} models: list them in "
                f"modelyard.models, or ask a model group with several deployments ('{req.model}' has "
                f"{len(names)})", param="modelyard.models")
    else:
        if len(names) < minimum:
            raise BadRequest(f"modelyard.models: mode '{spec.mode}' needs at least {minimum} models, "
                             f"got {len(names)}", param="modelyard.models")
        for i, name in enumerate(names):
            try:
                gw.resolve(name)
            except ModelyardError as e:
                e.message = f"modelyard.models[{i}]: {e.message}"
                e.args = (e.message,)
                e.param = f"modelyard.models[{i}]"
                raise
    if spec.min_agreement is not None and spec.min_agreement > len(names):
        raise BadRequest(f"modelyard.min_agreement: {spec.min_agreement} can never be reached with "
                         f"{len(names)} models", param="modelyard.min_agreement")
    seen: dict[str, int] = {}
    out: list[Candidate] = []
    for name in names:
        k = seen.get(name, 0) + 1
        seen[name] = k
        if k == 1:
            out.append(Candidate(name, name, req.seed))
        else:
            out.append(Candidate(f"{name}#{k}", name, (req.seed or 0) + k - 1))
    return out


def strongest(gw: Gateway, cands: list[Candidate]) -> str:
    """The default judge / aggregator: the candidate whose card has the best general quality."""
    def quality(c: Candidate) -> float:
        return gw.resolve(c.model).deployments[0].card.quality_for("general")
    return max(cands, key=quality).model
