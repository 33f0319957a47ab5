"""Dispatch of multi-model requests, and the registry of modes: `Gateway.chat`/`.stream` hand a
request here when it names a pipeline (`model: "pipeline/<name>"`) or asks for a mode
(`extra_body={"modelyard": {"mode": ...}}`).

    race   first success wins, the rest are cancelled      (race.py)
    all    every candidate's answer, n-style               (parallel.py)
    vote   normalised majority with agreement/confidence   (vote.py)
    judge  best-of-n picked by a judge model               (judge.py)
    fuse   an aggregator merges the answers                (fuse.py)
    pipeline/<name>  steps from config                 (pipeline.py, pipeline_run.py)

Each is a `Mode` (base.py). The decision costs the single-mode path one dict lookup
(`req.model in gateway.pipelines`) and a truthiness test of `req.metadata`; everything else happens
here: the spec is parsed, the candidates resolved and the request's fan-out checked against the
operator's cap (`resilience.caps.max_calls`) before any sub-call. Each mode's answer comes back as an
ordinary ChatResponse (or a stream) whose `modelyard` field describes the run.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..errors import BadRequest, ModelyardError
from ..types import ChatRequest, ChatResponse
from .base import Mode
from .fuse import Fuse
from .judge import Judge
from .parallel import All
from .pipeline import Pipeline, compile_pipelines
from .pipeline_run import PipelineMode
from .race import Race
from .run import Candidate, Result, Run
from .spec import SINGLE_MODES, Spec, SpecError, parse_spec
from .stream import ModeStream
from .vote import Vote

if TYPE_CHECKING:
    from ..config import Config
    from ..gateway import Gateway

# `req.metadata.get("mode")` values the single-request path serves itself
DIRECT = (None, *SINGLE_MODES)

# the registry: `modelyard.mode` -> its Mode (spec.MODES lists the same names for the parser)
MODES: dict[str, Mode] = {m.name: m for m in (Race(), All(), Vote(), Judge(), Fuse())}
PIPELINE = PipelineMode()


def load_pipelines(config: Config) -> dict[str, Pipeline]:
    """Compile the config's pipelines once, at gateway construction."""
    known = set(config.deployments) | set(config.model_groups)
    return compile_pipelines(config.pipelines, known)


class _Early(Exception):
    """A request refused before any sub-call: log it on the parent row, then raise the error."""

    def __init__(self, ctx: Run, error: ModelyardError) -> None:
        self.ctx, self.error = ctx, error


def _prepare(gw: Gateway, req: ChatRequest, rid: str, api: str, stream: bool
             ) -> tuple[Run, Mode, Spec, list[Candidate]]:
    pipe = gw.pipelines.get(req.model)
    if pipe is not None:
        budget = req.metadata.get("budget_usd", pipe.budget_usd)
        ctx = Run(gw, req, rid, api, "pipeline", stream=stream)
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
                raise _Early(ctx, BadRequest("modelyard.budget_usd: must be a positive number of US dollars",
                                             param="modelyard.budget_usd"))
            ctx.budget_usd = float(budget)
        return ctx, PIPELINE, Spec("pipeline", budget_usd=ctx.budget_usd), []
    mode_name = req.metadata.get("mode")
    ctx = Run(gw, req, rid, api, mode_name if isinstance(mode_name, str) else "invalid", stream=stream)
    try:
        spec = parse_spec(req.metadata)
    except SpecError as e:
        raise _Early(ctx, BadRequest(f"modelyard.{e.field}: {e.message}", param=f"modelyard.{e.field}")) from None
    ctx.budget_usd = spec.budget_usd
    mode = MODES[spec.mode]
    try:
        cands = mode.candidates(gw, req, spec)
    except ModelyardError as e:
        raise _Early(ctx, e) from None
    calls, cap = mode.calls(spec, len(cands)), gw.resilience.settings.caps.max_calls
    if calls > cap:
        extra = f" ({len(cands)} candidates + {calls - len(cands)} {mode.name} calls)" if calls > len(cands) else ""
        raise _Early(ctx, BadRequest(
            f"modelyard.models: mode '{mode.name}' would make {calls} upstream calls{extra}; this gateway allows "
            f"at most {cap} per request (resilience.caps.max_calls): ask fewer models", param="modelyard.models"))
    return ctx, mode, spec, cands


async def _execute(gw: Gateway, req: ChatRequest, rid: str, api: str, stream: bool) -> tuple[Run, Result]:
    try:
        ctx, mode, spec, cands = _prepare(gw, req, rid, api, stream)
    except _Early as early:
        early.ctx.log(early.error.status, early.error)
        raise early.error from None
    try:
        return ctx, await mode.run(ctx, spec, cands)
    except ModelyardError as e:
        ctx.log(e.status, e)
        raise
    except asyncio.CancelledError:
        ctx.log(499, note="cancelled before the answer was ready")
        raise


async def chat(gw: Gateway, req: ChatRequest, rid: str, api: str) -> ChatResponse:
    ctx, result = await _execute(gw, req, rid, api, stream=False)
    resp = ctx.respond(result)
    ctx.log(200, deployment=resp.deployment, reason=result.reason)
    return resp


async def stream(gw: Gateway, req: ChatRequest, rid: str, api: str) -> ModeStream:
    ctx, result = await _execute(gw, req, rid, api, stream=True)
    return ModeStream(ctx, result)
