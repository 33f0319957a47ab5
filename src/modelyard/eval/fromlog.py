"""Routing data from live traffic: the request log joined with feedback → training examples.

Each logged request that got a score and whose prompt is known becomes a score for the deployment
that answered it; prompts answered by several deployments (a retried or A/B-tested prompt) become one
example with several scores. Most examples therefore score one model only: the routers train on the
known entries (knn averages what is known, classifier/mf fit each model on its own rows).
"""

from __future__ import annotations

from ..routing.learned.data import Example
from ..store.feedback import read_scored


def examples_from_log(db: str) -> tuple[list[Example], int]:
    """(examples, number of scored requests skipped because their prompt is unknown)."""
    by_prompt: dict[str, Example] = {}
    skipped = 0
    for s in read_scored(db, only_scored=True):
        dep = s.request.deployment
        if s.score is None or not dep:
            continue
        if not s.prompt:
            skipped += 1
            continue
        ex = by_prompt.get(s.prompt)
        if ex is None:
            ex = by_prompt[s.prompt] = Example(id=s.request.id, prompt=s.prompt, scores={}, source="log")
        ex.scores[dep] = s.score  # later feedback for the same model wins (rows come in time order)
        ex.cost[dep] = s.request.cost_usd
    return list(by_prompt.values()), skipped
