"""Judge (best-of-n): the candidates answer in parallel, a judge model picks the best one.

The judge sees the request and the answers, numbered in a shuffled order (seeded by the request's
`seed` when it has one), and returns a verdict `{"index": n, "reason": "..."}`; when every
deployment behind the judge supports JSON output the verdict is asked for as a JSON schema.
The verdict is read robustly: JSON first (bare, fenced or inside prose; `index`, `best`, `winner`
or `choice`), then phrases such as "Candidate 2 is best", "[[2]]" or a bare number.

Position bias: with `swap: true` the judge is asked twice in parallel, the second time with the
order reversed. If both verdicts name the same answer it wins (`consistent: true`); if they differ
the preference was the position's, not the answer's (`consistent: false`) and the tie goes to the
candidate listed first in `models`. If the verdict cannot be read or the judge fails, the first
candidate that answered is returned, with `verdict_parsed: false` and the judge's text or error.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from ..types import ChatRequest, Message
from .base import Mode
from .parse import ParseError, excerpt, extract_json
from .run import Call, Candidate, Result, Run, all_failed, error_dict, gather, strongest
from .spec import Spec

SYSTEM = (
    "You are a strict, impartial reviewer. You receive a request and several candidate answers to it, "
    "and you decide which answer serves the request best: correct first, then complete, clear and "
    "faithful to any instructions in the request. The order of the candidates means nothing, and a "
    "longer answer is not better unless the request needs the length."
)


@dataclass(slots=True, frozen=True)
class Verdict:
    index: int  # 1-based, as shown to the judge
    reason: str
    source: str  # "json" | "text"


_INDEX_KEYS = ("index", "best", "winner", "choice", "candidate", "answer", "best_index")
_REASON_KEYS = ("reason", "reasoning", "explanation", "rationale", "why", "justification")
_TEXT_CUES = (
    re.compile(r"(?i)[\"']?index[\"']?\s*[:=]\s*[\"']?(\d+)"),
    re.compile(r"\[\[\s*(\d+)\s*\]\]"),
    re.compile(r"(?i)\b(?:best|winner|strongest|prefer\w*|choose|chose|pick\w*|select\w*|verdict)\b"
               r"[^0-9\n]{0,40}?(?:candidate|answer|response|option|#)?\s*#?\s*(\d+)"),
    re.compile(r"(?i)\b(?:candidate|answer|response)\s*#?\s*(\d+)\s+(?:is|was)\s+(?:the\s+)?(?:best|better|"
               r"strongest|most)"),
    re.compile(r"^\s*(\d+)\s*[.)]?\s*$"),
)


def _as_index(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == int(value):
        return int(value)
    if isinstance(value, str):
        m = re.search(r"\d+", value)
        return int(m.group()) if m else None
    return None


def parse_verdict(text: str, n: int) -> Verdict | None:
    """The judge's pick among candidates 1..n, or None when the text names none of them."""
    try:
        doc = extract_json(text)
    except ParseError:
        doc = None
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        doc = doc[0]
    if isinstance(doc, dict):
        for key in _INDEX_KEYS:
            idx = _as_index(doc.get(key))
            if idx is not None and 1 <= idx <= n:
                reason = next((str(doc[k]) for k in _REASON_KEYS if doc.get(k)), "")
                return Verdict(idx, reason, "json")
    for cue in _TEXT_CUES:
        for m in cue.finditer(text):
            idx = int(m.group(1))
            if 1 <= idx <= n:
                return Verdict(idx, " ".join(text.split())[:500], "text")
    mentioned = {int(m) for m in re.findall(r"(?i)\bcandidate\s*#?\s*(\d+)", text)}
    if len(mentioned) == 1 and 1 <= (only := mentioned.pop()) <= n:
        return Verdict(only, " ".join(text.split())[:500], "text")
    return None


def _transcript(req: ChatRequest) -> str:
    msgs = [m for m in req.messages if m.role in ("system", "developer", "user", "assistant")]
    users = [m for m in msgs if m.role == "user"]
    if len(users) == 1 and all(m.role != "assistant" for m in msgs):
        system = req.system_text()
        return (f"(instructions the assistant was given)\n{system}\n\n" if system else "") + users[0].text()
    return "\n\n".join(f"{m.role}: {m.text()}" for m in msgs)


def judge_messages(req: ChatRequest, answers: list[str], criteria: str | None) -> list[Message]:
    blocks = "\n\n".join(f"### Candidate {i}\n{a}" for i, a in enumerate(answers, 1))
    extra = f"\n\nWhat matters most here: {criteria}" if criteria else ""
    user = (f"## Request\n{_transcript(req)}\n\n## Candidate answers\n\n{blocks}{extra}\n\n"
            f"Which candidate answers the request best? Reply with JSON only, no other text: "
            f'{{"index": <number of the best candidate, 1 to {len(answers)}>, "reason": "<one or two sentences>"}}')
    return [Message("system", SYSTEM), Message("user", user)]


def _verdict_format(n: int) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["index", "reason"],
        "properties": {"index": {"type": "integer", "minimum": 1, "maximum": n},
                       "reason": {"type": "string"}}}}}


def _supports_json(ctx: Run, model: str) -> bool:
    route = ctx.gw.resolve(model)
    return all("json" in d.card.capabilities for d in (*route.deployments, *route.fallbacks))


class Judge(Mode):
    name = "judge"
    min_candidates = 2

    def calls(self, spec: Spec, n_candidates: int) -> int:
        """The candidates, then the judge (twice with `swap`)."""
        return n_candidates + (2 if spec.swap else 1)

    async def run(self, ctx: Run, spec: Spec, cands: list[Candidate]) -> Result:
        judge_model = spec.judge or strongest(ctx.gw, cands)
        ctx.gw.resolve(judge_model)  # an unknown judge is the caller's mistake: fail before any call
        calls: list[Call] = await gather(ctx.call(c.label, ctx.sub_request(c.model, seed=c.seed)) for c in cands)
        ok = [c for c in calls if c.ok]
        if not ok:
            raise all_failed("judge", calls)
        position = {c.label: i for i, c in enumerate(cands)}
        verdicts: list[dict[str, Any]] = []
        consistent: bool | None = None
        parsed = True
        if len(ok) == 1:
            winner, reason = ok[0], "only one candidate answered"
        else:
            rng = random.Random(ctx.req.seed) if ctx.req.seed is not None else random.Random()
            shown = ok[:]
            rng.shuffle(shown)
            orders = [shown, shown[::-1]] if spec.swap else [shown]
            rf = _verdict_format(len(shown)) if _supports_json(ctx, judge_model) else None
            labels = ["judge", "judge (reversed)"]
            jcalls: list[Call] = await gather(
                ctx.call(labels[k], ctx.sub_request(
                    judge_model, messages=judge_messages(ctx.req, [c.text for c in order], spec.criteria),
                    tools=None, tool_choice=None, response_format=rf, temperature=0.0, seed=ctx.req.seed, stop=None,
                    max_tokens=None), role="judge")
                for k, order in enumerate(orders))
            picks: list[tuple[Call, str]] = []
            for order, jc in zip(orders, jcalls, strict=True):
                entry: dict[str, Any] = {"order": [c.label for c in order], "pick": None, "parsed": False}
                if jc.ok:
                    v = parse_verdict(jc.text, len(order))
                    if v is not None:
                        pick = order[v.index - 1]
                        picks.append((pick, v.reason))
                        entry.update(index=v.index, pick=pick.label, reason=v.reason, parsed=True, source=v.source)
                    else:
                        entry["text"] = excerpt(jc.text, 300)
                else:
                    assert jc.error is not None
                    entry["error"] = error_dict(jc.error)
                verdicts.append(entry)
            if not picks:
                parsed = False
                winner = min(ok, key=lambda c: position[c.label])
                why = "failed" if all(not jc.ok for jc in jcalls) else "gave no verdict that could be read"
                reason = f"the judge {why}; returned the first candidate that answered"
            else:
                first_pick = picks[0][0]
                if len(picks) == 2:
                    consistent = picks[0][0] is picks[1][0]
                if consistent is False:
                    winner, reason = min((p for p, _ in picks), key=lambda c: position[c.label]), \
                        "the judge preferred different answers when the order was reversed (position bias); " \
                        "the tie went to the candidate listed first"
                else:
                    winner, reason = first_pick, picks[0][1]

        def describe() -> dict[str, Any]:
            return {
                "winner": winner.label, "deployment": winner.deployment, "reason": reason, "judge": judge_model,
                "verdict_parsed": parsed, "consistent": consistent, "verdicts": verdicts,
                "candidates": [{"model": c.label, "deployment": c.deployment, "text": c.text} for c in ok],
                "errors": {c.label: error_dict(c.error) for c in calls if c.error is not None},
            }

        return Result(winner, describe, response=winner.response, reason=f"judge picked {winner.label}")
