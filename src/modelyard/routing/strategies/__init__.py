"""Routing strategies, one small class each; base.py has the interface and the registry.

Importing this package registers the built-ins: first-healthy, weighted, round-robin (order.py),
score, cheapest, budget-aware (score.py), fastest, least-busy, usage (live.py), rules (rules.py),
tier (tier.py), healthiest (health.py). Other packages register more with `register_strategy`
(routing/learned/: `learned`).
"""

from __future__ import annotations

from . import health, live, order, rules, score, tier  # noqa: F401  (each registers its strategies)
from .base import (
    STRATEGIES,
    ConfigNames,
    Ranked,
    Strategy,
    StrategyConfigError,
    StrategyContext,
    known_strategies,
    lookup,
    register_strategy,
)

__all__ = ["STRATEGIES", "ConfigNames", "Ranked", "Strategy", "StrategyConfigError", "StrategyContext",
           "known_strategies", "lookup", "register_strategy"]
