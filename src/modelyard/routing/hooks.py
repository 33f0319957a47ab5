"""Hooks other subsystems fill to take part in routing decisions, typed.

`Router.hooks` is one `RoutingHooks`, shared by every group's filters and strategies and read per
request, so a subsystem can fill a hook after the router is built:

- `headroom(deployment, features) -> reason | None`: a soft filter — a reason moves the deployment
  to the back of the chain (no rate-limit headroom now). The router fills it with its own rpm/tpm
  check (`Router.rate_headroom`, against its `UsageMeter`) when a deployment of the config sets
  `rpm` or `tpm`; an accounting layer with shared counters may replace it.
- `budget(features) -> (spent_usd, budget_usd) | None`: the request's key/team spend and budget.
  It makes the hard filters remove deployments whose estimated cost exceeds what is left, and the
  `budget-aware` strategy slide its weights toward cost. Filled by the budgets subsystem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .features import Features

if TYPE_CHECKING:
    from ..deployment import Deployment

BudgetHook = Callable[[Features], "tuple[float, float] | None"]
HeadroomHook = Callable[["Deployment", Features], "str | None"]


@dataclass(slots=True)
class RoutingHooks:
    budget: BudgetHook | None = None
    headroom: HeadroomHook | None = None


__all__ = ["BudgetHook", "HeadroomHook", "RoutingHooks"]
