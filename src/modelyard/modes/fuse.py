"""Fuse (mixture of agents): the candidates answer in parallel, an aggregator model merges their
answers into one reply. The aggregator gets the original conversation (tools, response format and
all) plus a system message holding the candidates' answers, so its reply is the request's answer;
streamed, it is the aggregator's own stream.

With a single answer there is nothing to merge: it is returned as is (`fused: false`). If the
aggregator fails, the first candidate that answered is returned, with the aggregator's error.
"""

from __future__ import annotations

from typing import Any

from ..types import Message
from .base import Mode
from .run import Call, Candidate, Result, Run, all_failed, error_dict, gather, strongest
from .spec import Spec

INSTRUCTIONS = (
    "Several assistants have already answered the conversation's last message; their answers are "
    "below. Write the one reply the user should receive: keep what is correct and useful in each, "
    "fix or drop what is wrong, remove repetition, and follow the format the user asked for. Reply "
    "directly to the user and do not mention the other assistants or this merging step."
)


def fuse_messages(messages: list[Message], answers: list[str]) -> list[Message]:
    blocks = "\n\n".join(f"## Answer {i}\n{a}" for i, a in enumerate(answers, 1))
    return [Message("system", f"{INSTRUCTIONS}\n\n{blocks}"), *messages]


class Fuse(Mode):
    name = "fuse"
    min_candidates = 2

    def calls(self, spec: Spec, n_candidates: int) -> int:
        """The candidates, then the aggregator."""
        return n_candidates + 1

    async def run(self, ctx: Run, spec: Spec, cands: list[Candidate]) -> Result:
        aggregator = spec.aggregator or strongest(ctx.gw, cands)
        ctx.gw.resolve(aggregator)  # an unknown aggregator is the caller's mistake: fail before any call
        calls: list[Call] = await gather(ctx.call(c.label, ctx.sub_request(c.model, seed=c.seed)) for c in cands)
        ok = [c for c in calls if c.ok]
        if not ok:
            raise all_failed("fuse", calls)

        fused = len(ok) > 1
        agg_call: Call | None = None
        live: Any = None
        if fused:
            req = ctx.sub_request(aggregator, messages=fuse_messages(ctx.req.messages, [c.text for c in ok]))
            if ctx.stream:
                agg_call, live = await ctx.open("aggregator", req, role="aggregator")
            else:
                agg_call = await ctx.call("aggregator", req, role="aggregator")
        served = agg_call if agg_call is not None and (agg_call.ok or live is not None) else ok[0]

        def describe() -> dict[str, Any]:
            out: dict[str, Any] = {
                "aggregator": aggregator, "fused": served is agg_call, "deployment": served.deployment,
                "candidates": [{"model": c.label, "deployment": c.deployment, "text": c.text} for c in ok],
                "errors": {c.label: error_dict(c.error) for c in calls if c.error is not None},
            }
            if agg_call is not None and agg_call.error is not None:
                out["aggregator_error"] = error_dict(agg_call.error)
            return out

        reason = f"{aggregator} fused {len(ok)} answers" if served is agg_call else "returned a candidate unfused"
        if live is not None:
            return Result(served, describe, live=live, reason=reason)
        return Result(served, describe, response=served.response, reason=reason)
