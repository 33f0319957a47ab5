"""Assignment: which variant of an experiment serves a request.

A unit (a user, a virtual key, or the request itself) is hashed together with the experiment's name
into a bucket 0..9999; the split maps buckets to variants. No state: the same unit gets the same
variant in every process, replica and restart, and a different experiment shuffles units anew (the
name is in the hash), so two experiments on different groups do not assign the same users together.

Buckets are laid out treatments first, from 0 in config order, then control: raising a treatment's
share keeps every unit it already had. When control's share is given explicitly and the shares add up
to less than 100, the remaining units are not enrolled: the group serves them as configured, untagged.

Everything is built at gateway start-up; per request: one blake2b of a short string and a list scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..routing import Route
from ..types import ChatRequest
from .buckets import BUCKETS, bucket
from .check import CONTROL
from .judge import Scorer

__all__ = ["BUCKETS", "Experiment", "Variant", "bucket", "build", "close", "shares", "unit_value"]

if TYPE_CHECKING:
    from ..config import Config, ExperimentConfig, JudgeScoringConfig
    from ..deployment import Deployment
    from ..routing import Router

def unit_value(unit: str, req: ChatRequest, request_id: str) -> str | None:
    """The value the request is assigned by, or None when it does not carry one."""
    if unit == "user":
        user = req.user or (req.metadata.get("user") if req.metadata else None) or req.caller.user
        return user if isinstance(user, str) and user else None
    if unit == "key":
        return req.caller.key_id or "master"
    return request_id


@dataclass(slots=True)
class Variant:
    name: str
    route: Route
    tag: str  # "experiment=variant": the response header's value and the log column's
    share: float  # percent of units
    overrides: dict[str, Any]  # what it changes in the group, as configured (for the report)


class Experiment:
    """One experiment, ready to assign: variants with their routes and bucket ranges."""

    def __init__(self, name: str, cfg: ExperimentConfig, variants: dict[str, Variant]) -> None:
        self.name, self.cfg = name, cfg
        self.group, self.unit, self.metric = cfg.group, cfg.unit, cfg.metric
        self.variants = variants
        self.control = variants[CONTROL]
        self.judge: JudgeScoringConfig | None = cfg.judge
        # (upper bucket bound, variant), ascending; buckets past the last bound are not enrolled
        self.ranges: list[tuple[int, Variant]] = []
        hi = 0
        for v in (*[v for v in variants.values() if v is not self.control], self.control):
            hi = min(BUCKETS, hi + round(v.share * BUCKETS / 100))
            if v is self.control and CONTROL not in cfg.split:  # control takes the rest (no rounding gap)
                hi = BUCKETS
            self.ranges.append((hi, v))
        self.unassigned_tag = f"{name}={CONTROL}; no {self.unit}"
        self.scorer: Scorer | None = Scorer(name, cfg.judge) if cfg.judge is not None else None

    def variant_for(self, unit: str) -> Variant | None:
        """The unit's variant, or None when its bucket is outside every share."""
        b = bucket(self.name, unit)
        for hi, v in self.ranges:
            if b < hi:
                return v
        return None

    def assign(self, route: Route, req: ChatRequest, request_id: str) -> Route:
        """The route that serves the request; tags the request with its variant (`req.experiment`).
        A request without the unit's value is served by control, tagged `name=control; no <unit>`
        (the report counts it apart: it was not randomised)."""
        unit = unit_value(self.unit, req, request_id)
        if unit is None:
            req.experiment = self.unassigned_tag
            return self.control.route
        v = self.variant_for(unit)
        if v is None:
            return route
        req.experiment = v.tag
        return v.route


def shares(cfg: ExperimentConfig) -> dict[str, float]:
    """Each variant's percent of units: the split's, control the rest; no split: equal shares."""
    if not cfg.split:
        return dict.fromkeys(cfg.variants, 100 / len(cfg.variants))
    out = {v: float(cfg.split.get(v, 0.0)) for v in cfg.variants}
    if CONTROL not in cfg.split:
        out[CONTROL] = max(0.0, 100 - sum(cfg.split.values()))
    return out


def build(config: Config, routes: dict[str, Route], deployments: dict[str, Deployment], router: Router
          ) -> dict[str, Experiment]:
    """The enabled experiments by the group they split, each variant's route planned by the router now."""
    out: dict[str, Experiment] = {}
    for name, cfg in config.experiments.items():
        exp = build_one(name, cfg, config, routes, deployments, router)
        if cfg.enabled:
            out[cfg.group] = exp
    return out


def build_one(name: str, cfg: ExperimentConfig, config: Config, routes: dict[str, Route],
              deployments: dict[str, Deployment], router: Router) -> Experiment:
    group = routes[cfg.group]
    gcfg = config.model_groups[cfg.group]
    pct = shares(cfg)
    variants: dict[str, Variant] = {}
    for vname, v in cfg.variants.items():
        overrides = v.model_dump(exclude_none=True)
        route = group
        if overrides:
            strategy = v.strategy or gcfg.strategy
            options = v.options if v.options is not None else (dict(gcfg.options) if v.strategy is None else {})
            deps = [deployments[d] for d in v.deployments] if v.deployments else group.deployments
            route = Route(name=group.name, deployments=deps, strategy=strategy, fallbacks=group.fallbacks,
                          is_group=True, description=group.description, plan_key=f"{group.name}\x00{name}={vname}")
            router.add_variant(route, options, f"experiments.{name}.variants.{vname}")
        variants[vname] = Variant(vname, route, f"{name}={vname}", pct[vname], overrides)
    return Experiment(name, cfg, variants)


async def close(experiments: dict[str, Experiment]) -> None:
    """Stop the judge gradings still running (gateway shutdown)."""
    for exp in experiments.values():
        if exp.scorer is not None:
            await exp.scorer.close()
