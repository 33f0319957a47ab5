"""All: ask every candidate, return every answer — an `n`-style response whose choices are the
candidates' answers, labelled by model in the metadata. A failing candidate is reported under
`errors`, not raised; only when none answers does the request fail.
"""

from __future__ import annotations

from typing import Any

from ..types import ChatResponse, Choice
from .base import Mode
from .run import Candidate, Result, Run, all_failed, error_dict, gather
from .spec import Spec


class All(Mode):
    name = "all"
    min_candidates = 1

    async def run(self, ctx: Run, spec: Spec, cands: list[Candidate]) -> Result:
        calls = await gather(ctx.call(c.label, ctx.sub_request(c.model, seed=c.seed)) for c in cands)
        ok = [c for c in calls if c.ok]
        if not ok:
            raise all_failed("all", calls)
        first = ok[0].response
        assert first is not None
        choices: list[Choice] = []
        for i, c in enumerate(ok):
            assert c.response is not None
            src = c.response.choices[0] if c.response.choices else Choice(0, first.choices[0].message)
            choices.append(Choice(index=i, message=src.message, finish_reason=src.finish_reason))
        response = ChatResponse(id=first.id, model=first.model, choices=choices, usage=first.usage,
                                created=first.created, system_fingerprint=first.system_fingerprint)

        def describe() -> dict[str, Any]:
            return {
                "answers": {c.label: c.text for c in ok},
                "choices": [{"index": i, "model": c.label, "deployment": c.deployment, "cost_usd": c.cost_usd,
                             "latency_ms": round(c.latency_ms, 1)} for i, c in enumerate(ok)],
                "errors": {c.label: error_dict(c.error) for c in calls if c.error is not None},
            }

        return Result(ok[0], describe, response=response, reason=f"{len(ok)} of {len(calls)} candidates answered")
