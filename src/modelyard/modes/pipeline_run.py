"""Running a compiled pipeline (pipeline.py) for one request: steps in order, the steps of a
parallel block at the same time, each a sub-call through the gateway (run.py). The output step
streams live when it can (last, on its own, parsed as text). A step that fails, or whose output
does not parse, fails the request naming the step, unless it is `optional` (output empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest, ModelyardError
from ..types import ChatRequest, Message
from .base import Mode
from .parse import ParseError, walk
from .pipeline import Pipeline, PipelineStepFailed, Step
from .run import Call, Candidate, Result, Run, error_dict, gather
from .spec import Spec
from .template import Ref, as_text

if TYPE_CHECKING:
    from ..gateway import Gateway


@dataclass(slots=True, eq=False)
class _StepRun:
    step: Step
    model: str | None = None
    call: Call | None = None
    value: Any = None
    error: ModelyardError | None = None
    routed_on: str | None = None
    live: Any = None

    def summary(self) -> dict[str, Any]:
        c = self.call
        out: dict[str, Any] = {"name": self.step.name, "model": self.model,
                               "deployment": c.deployment if c else None,
                               "status": "streamed" if self.live is not None and self.error is None
                               else "failed" if self.error is not None else c.status if c else "skipped",
                               "output": self.value,
                               "input_tokens": c.usage.input_tokens if c else 0,
                               "output_tokens": c.usage.output_tokens if c else 0,
                               "cost_usd": c.cost_usd if c else 0.0,
                               "latency_ms": round(c.latency_ms, 1) if c else 0.0}
        if self.routed_on is not None:
            out["routed_on"] = self.routed_on
        if self.error is not None:
            out["error"] = error_dict(self.error)
        return out


def last_user_text(req: ChatRequest) -> str:
    return next((m.text() for m in reversed(req.messages) if m.role == "user"), "")


def _inputs(req: ChatRequest, pipe: Pipeline) -> dict[str, Any]:
    given = req.metadata.get("inputs") or {}
    if not isinstance(given, dict):
        raise BadRequest("modelyard.inputs: must be an object of input name -> value", param="modelyard.inputs")
    for k in given:
        if k not in pipe.inputs:
            takes = ", ".join(pipe.inputs) or "none besides the messages"
            raise BadRequest(f"modelyard.inputs.{k}: pipeline '{pipe.name}' has no input '{k}'; its inputs: {takes}",
                             param=f"modelyard.inputs.{k}")
    out = dict(given)
    missing = [n for n in pipe.inputs if n not in out]
    if missing and len(pipe.inputs) == 1:  # the one input may come as the user message
        out[missing[0]] = last_user_text(req)
    elif missing:
        raise BadRequest(f"modelyard.inputs: pipeline '{pipe.name}' needs {', '.join(repr(m) for m in missing)}: "
                         "send them as modelyard.inputs", param="modelyard.inputs")
    return out


async def run(ctx: Run, pipe: Pipeline) -> Result:
    scope: dict[str, Any] = {"input": last_user_text(ctx.req), **_inputs(ctx.req, pipe)}
    runs: list[_StepRun] = []
    for bi, block in enumerate(pipe.blocks):
        if len(block) == 1:
            sr = _StepRun(block[0])
            runs.append(sr)
            live = (ctx.stream and bi == len(pipe.blocks) - 1 and sr.step.name == pipe.output
                    and sr.step.parser.kind == "text")
            await _run_step(ctx, pipe, sr, scope, live=live)
        else:
            srs = [_StepRun(s) for s in block]
            runs.extend(srs)
            await gather(_run_step(ctx, pipe, sr, scope) for sr in srs)
    out = next(sr for sr in runs if sr.step.name == pipe.output)
    if out.call is None or (not out.call.ok and out.live is None):
        raise PipelineStepFailed(f"pipeline '{pipe.name}': the output step '{pipe.output}' is optional and "
                                 "produced nothing" + (f": {out.error.message}" if out.error else ""))

    def describe() -> dict[str, Any]:
        return {"pipeline": pipe.name, "output": pipe.output, "steps": [sr.summary() for sr in runs]}

    reason = f"pipeline {pipe.name}: {len(runs)} steps"
    if out.live is not None:
        return Result(out.call, describe, live=out.live, reason=reason)
    return Result(out.call, describe, response=out.call.response, reason=reason)


async def _run_step(ctx: Run, pipe: Pipeline, sr: _StepRun, scope: dict[str, Any], *, live: bool = False) -> None:
    step = sr.step
    where = f"pipeline '{pipe.name}' step '{step.name}'"

    def resolve(ref: Ref) -> Any:
        try:
            return walk(scope[ref.root], ref.path)
        except KeyError:
            raise PipelineStepFailed(f"{where}: {{{{ {ref.text} }}}} is missing from the output of "
                                     f"'{ref.root}'") from None

    try:
        if step.route is not None:  # an empty or missing value (an optional step failed) takes the default
            try:
                value = walk(scope[step.route.by.root], step.route.by.path)
            except KeyError:
                value = None
            sr.routed_on = as_text(value).strip().strip(" .!?\"'`*").casefold()
            model = step.route.cases.get(sr.routed_on, step.route.default)
        else:
            model = step.model or (step.ensemble.models[0] if step.ensemble else "")
        sr.model = model
        messages = [Message("system", step.system.render(resolve))] if step.system else []
        messages.append(Message("user", step.prompt.render(resolve)))
    except PipelineStepFailed as e:
        return _fail(sr, scope, e)
    metadata = dict(ctx.base_metadata)
    if step.ensemble is not None:
        metadata.update(step.ensemble.to_metadata())
    req = ChatRequest(model=model, messages=messages, temperature=step.temperature, max_tokens=step.max_tokens,
                      response_format=step.response_format, seed=ctx.req.seed, user=ctx.req.user, metadata=metadata)
    if live:
        sr.call, sr.live = await ctx.open(step.name, req, role="step")
        if sr.live is None:
            assert sr.call.error is not None
            _fail(sr, scope, _prefixed(sr.call.error, where))
        return
    sr.call = call = await ctx.call(step.name, req, role="step")
    if not call.ok:
        assert call.error is not None
        return _fail(sr, scope, _prefixed(call.error, where))
    try:
        sr.value = step.parser.parse(call.text)
    except ParseError as e:
        return _fail(sr, scope, PipelineStepFailed(f"{where}: the output does not parse as {step.parser.kind}: {e}"))
    scope[step.name] = sr.value


def _prefixed(e: ModelyardError, where: str) -> ModelyardError:
    if not e.message.startswith(where):
        e.message = f"{where}: {e.message}"
        e.args = (e.message,)
    return e


def _fail(sr: _StepRun, scope: dict[str, Any], e: ModelyardError) -> None:
    sr.error = e
    if not sr.step.optional:
        raise e
    scope[sr.step.name] = None


class PipelineMode(Mode):
    """`pipeline/<name>` models: the steps come from config, not from candidates."""

    name = "pipeline"
    min_candidates = 0

    def candidates(self, gw: Gateway, req: ChatRequest, spec: Spec) -> list[Candidate]:
        return []

    async def run(self, ctx: Run, spec: Spec, cands: list[Candidate]) -> Result:
        return await run(ctx, ctx.gw.pipelines[ctx.req.model])
