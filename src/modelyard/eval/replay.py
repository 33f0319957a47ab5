"""What-if replay: logged traffic under another routing policy.

For every logged successful request whose prompt is known (sent with feedback), the router predicts
each model's quality and the decision rule picks one; the request's logged token counts priced at
the picked model's card give its cost. Compared with what actually happened: logged cost, the
router's predicted quality of the model that actually answered, and the mean feedback score.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..routing.learned.base import LearnedRouter, choose
from ..store.feedback import read_scored


@dataclass
class ReplayResult:
    requests: int  # logged successful requests
    replayed: int  # of those, with a known prompt
    logged_cost: float  # USD actually spent on the replayed requests
    logged_quality: float | None  # router's predicted quality of the models that actually answered
    feedback_quality: float | None  # mean feedback score of the replayed requests that got one
    policy_cost: float  # USD the policy would have spent (token counts × the picked model's prices)
    policy_quality: float  # router's predicted quality of the picked models
    picks: dict[str, int] = field(default_factory=dict)
    unpriced: list[str] = field(default_factory=list)  # router models with no known price


def replay(db: str, router: LearnedRouter, prices: dict[str, tuple[float, float]],
           deployment_model: dict[str, str], **rule: Any) -> ReplayResult:
    """prices: router model → (USD per 1M input, per 1M output); deployment_model: logged deployment → router model."""
    rows = read_scored(db)
    known = [r for r in rows if r.prompt]
    res = ReplayResult(len(rows), len(known), 0.0, None, None, 0.0, 0.0,
                       unpriced=[m for m in router.models if m not in prices])
    if not known:
        return res
    Q = router.predict_batch([r.prompt for r in known])  # type: ignore[misc]
    picks: Counter[str] = Counter()
    logged_q, fb = [], []
    for r, q in zip(known, Q, strict=True):
        tok_in, tok_out = r.request.input_tokens, r.request.output_tokens
        costs = np.array([(tok_in * prices[m][0] + tok_out * prices[m][1]) / 1e6 if m in prices
                          else router.costs.get(m, 0.0) for m in router.models])
        i = choose(q, costs, **rule)
        picks[router.models[i]] += 1
        res.policy_cost += float(costs[i])
        res.policy_quality += float(q[i])
        res.logged_cost += r.request.cost_usd
        actual = deployment_model.get(r.request.deployment or "")
        if actual is not None and actual in router.index:
            logged_q.append(float(q[router.index[actual]]))
        if r.score is not None:
            fb.append(r.score)
    res.policy_quality /= len(known)
    res.logged_quality = float(np.mean(logged_q)) if logged_q else None
    res.feedback_quality = float(np.mean(fb)) if fb else None
    res.picks = dict(picks)
    return res
