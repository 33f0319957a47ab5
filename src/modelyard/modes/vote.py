"""Vote: ask every candidate, normalise each reply to the answer it stands for, count.

Outcomes are explicit, never guessed:
- `agreed`: one answer has the most votes and at least `min_agreement` of them (default: a
  majority of the candidates asked); the reply is the first agreeing model's full text;
- `tie`: two or more answers share the most votes; no answer is returned (`answer: null`), the
  tied answers are listed in `tied`;
- `no_agreement`: the one top answer has fewer than `min_agreement` votes; no answer is returned;
- `too_few_successes`: fewer candidates answered than `min_agreement`; no answer is returned.
`confidence` is the top answer's share of the replies received (an unreadable reply counts as a
reply that agrees with nobody); `agreement` is its number of votes. If no candidate answers at
all, the request fails with every candidate's error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..types import ChatResponse, Choice, Message
from .base import Mode
from .normalize import normalizer
from .run import Call, Candidate, Result, Run, all_failed, error_dict, gather
from .spec import Spec


def count(votes: dict[str, str | None], need: int, replies: int) -> dict[str, Any]:
    """The outcome of a set of normalised votes (label -> answer or None)."""
    tally = Counter(v for v in votes.values() if v is not None)
    ranked = tally.most_common()
    top_n = ranked[0][1] if ranked else 0
    tied = [a for a, n in ranked if n == top_n] if ranked else []
    if replies < need:
        outcome = "too_few_successes"
    elif len(tied) > 1:
        outcome = "tie"
    elif not ranked or top_n < need:
        outcome = "no_agreement"
    else:
        outcome = "agreed"
    out: dict[str, Any] = {
        "outcome": outcome, "answer": tied[0] if outcome == "agreed" else None, "agreement": top_n,
        "confidence": round(top_n / replies, 4) if replies else 0.0, "min_agreement": need,
        "tally": dict(ranked),
    }
    if outcome == "tie":
        out["tied"] = tied
    return out


class Vote(Mode):
    name = "vote"
    min_candidates = 2

    async def run(self, ctx: Run, spec: Spec, cands: list[Candidate]) -> Result:
        calls: list[Call] = await gather(ctx.call(c.label, ctx.sub_request(c.model, seed=c.seed)) for c in cands)
        ok = [c for c in calls if c.ok]
        if not ok:
            raise all_failed("vote", calls)
        norm = normalizer(spec)
        votes = {c.label: norm(c.text) for c in ok}
        need = spec.min_agreement or len(cands) // 2 + 1
        result = count(votes, need, len(ok))
        answer = result["answer"]
        rep = next((c for c in ok if votes[c.label] == answer), ok[0]) if answer is not None else ok[0]
        assert rep.response is not None
        if answer is not None:
            response = rep.response
        else:  # no agreed answer: say nothing rather than pick one
            response = ChatResponse(id=rep.response.id, model=rep.response.model, usage=rep.response.usage,
                                    created=rep.response.created,
                                    choices=[Choice(0, Message("assistant", None), "stop")])

        def describe() -> dict[str, Any]:
            return {**result, "normalize": spec.normalize, "votes": votes,
                    "errors": {c.label: error_dict(c.error) for c in calls if c.error is not None}}

        return Result(rep, describe, response=response, reason=f"vote: {result['outcome']}")
