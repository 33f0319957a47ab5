"""Race: ask every candidate at once, keep the first success, cancel the rest.

Cancelling a loser cancels its task inside the provider's HTTP call, which closes that upstream
connection (the upstream sees the client go away and stops generating). The gateway logs each
loser with status 499 and the prompt tokens the provider bills for it, and those costs count in
the request's total. Non-streamed, "first" means the first complete answer; streamed, it means the
first to produce a chunk, and that stream is the one the client gets.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..types import ChatRequest
from .base import Mode
from .run import Call, Candidate, Result, Run, all_failed, cancel, error_dict
from .spec import Spec


class Race(Mode):
    name = "race"
    min_candidates = 1

    async def run(self, ctx: Run, spec: Spec, cands: list[Candidate]) -> Result:
        def request(c: Candidate) -> ChatRequest:
            return ctx.sub_request(c.model, seed=c.seed)

        order: dict[asyncio.Future[Any], int] = {}
        for i, c in enumerate(cands):
            coro = ctx.open(c.label, request(c)) if ctx.stream else ctx.call(c.label, request(c))
            order[asyncio.ensure_future(coro)] = i
        pending = set(order)
        winner: Call | None = None
        live: Any = None
        try:
            while pending and winner is None:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=order.__getitem__):  # simultaneous finishers: candidate order
                    call, stream = task.result() if ctx.stream else (task.result(), None)
                    if not call.ok and stream is None:
                        continue
                    if winner is None:
                        winner, live = call, stream
                    elif stream is not None:  # a second stream opened in the same instant: drop it
                        await stream.aclose()
                        ctx.settle(call, stream, cancelled=True)
        except BaseException:
            if live is not None and winner is not None:  # (a live stream always has its winner)
                await live.aclose()
                ctx.settle(winner, live, cancelled=True)
            raise
        finally:
            await cancel(pending)
        if winner is None:
            raise all_failed("race", ctx.calls)

        def describe() -> dict[str, Any]:
            return {
                "winner": winner.label, "deployment": winner.deployment,
                "cancelled": [c.label for c in ctx.calls if c.cancelled],
                "errors": {c.label: error_dict(c.error) for c in ctx.calls if c.error is not None and not c.cancelled},
            }

        reason = f"first to answer: {winner.label}"
        if live is not None:
            return Result(winner, describe, live=live, reason=reason)
        return Result(winner, describe, response=winner.response, reason=reason)
