"""Dispatch of multi-model requests: `Gateway.chat`/`.stream` hand a request here when it names a
pipeline (`model: "pipeline/<name>"`) or asks for a mode (`extra_body={"modelyard": {"mode": ...}}`).

    race   first success wins, the rest are cancelled      (race.py)
    all    every candidate's answer, n-style               (parallel.py)
    vote   normalised majority with agreement/confidence   (vote.py)
    judge  best-of-n picked by a judge model               (judge.py)
    fuse   an aggregator merges the answers                (fuse.py)
    pipeline/<name>  steps from config                 (pipeline.py, pipeline_run.py)

The decision costs the single-mode path one dict lookup (`req.model in gateway.pipelines`) and a
truthiness test of `req.metadata`; everything else happens here. Each mode's answer comes back
as an ordinary ChatResponse (or a stream) whose `modelyard` field describes the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest, ModelyardError
from ..types import ChatRequest, ChatResponse
from . import fuse, judge, parallel, pipeline, pipeline_run, race, vote
from .run import Result, Run, candidates
from .spec import SINGLE_MODES, SpecError, parse_spec
from .stream import ModeStream

if TYPE_CHECKING:
    from ..config import Config
    from ..gateway import Gateway

# `req.metadata.get("mode")` values the single-request path serves itself
DIRECT = (None, *SINGLE_MODES)

_MODES: dict[str, Any] = {"race": race, "all": parallel, "vote": vote, "judge": judge, "fuse": fuse}


def load_pipelines(config: Config) -> dict[str, pipeline.Pipeline]:
    """Compile the config's pipelines once, at gateway construction."""
    known = set(config.deployments) | set(config.model_groups)
    return pipeline.compile_pipelines(config.pipelines, known)


def _prepare(gw: Gateway, req: ChatRequest, rid: str, api: str, stream: bool
             ) -> tuple[Run, Callable[[Run], Awaitable[Result]]]:
    pipe = gw.pipelines.get(req.model)
    if pipe is not None:
        budget = req.metadata.get("budget_usd", pipe.budget_usd)
        ctx = Run(gw, req, rid, api, "pipeline", stream=stream)
        if budget is not None:
            if isinstance(budget, bool) or not isinstance(budget, int | float) or budget <= 0:
                raise _Early(ctx, BadRequest("modelyard.budget_usd: must be a positive number of US dollars",
                                             param="modelyard.budget_usd"))
            ctx.budget_usd = float(budget)
        return ctx, lambda c: pipeline_run.run(c, pipe)
    mode = req.metadata.get("mode")
    ctx = Run(gw, req, rid, api, mode if isinstance(mode, str) else "invalid", stream=stream)
    try:
        spec = parse_spec(req.metadata)
    except SpecError as e:
        raise _Early(ctx, BadRequest(f"modelyard.{e.field}: {e.message}", param=f"modelyard.{e.field}")) from None
    ctx.budget_usd = spec.budget_usd
    module = _MODES[spec.mode]
    try:
        cands = candidates(gw, req, spec, minimum=module.MIN_CANDIDATES)
    except ModelyardError as e:
        raise _Early(ctx, e) from None
    return ctx, lambda c: module.run(c, spec, cands)


class _Early(Exception):
    """A request refused before any sub-call: log it on the parent row, then raise the error."""

    def __init__(self, ctx: Run, error: ModelyardError) -> None:
        self.ctx, self.error = ctx, error


async def _execute(gw: Gateway, req: ChatRequest, rid: str, api: str, stream: bool) -> tuple[Run, Result]:
    try:
        ctx, runner = _prepare(gw, req, rid, api, stream)
    except _Early as early:
        early.ctx.log(early.error.status, early.error)
        raise early.error from None
    try:
        return ctx, await runner(ctx)
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
