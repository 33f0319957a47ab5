"""The router: a resolved route + a request → the ordered deployment chain and the RouteDecision
that explains it.

    features (analyze.py) → candidate filters (candidates.py) → strategy.rank (strategies/) → chain

Everything that depends only on config is built here once, at load: per model group a `GroupPlan`
holding the strategy object (options parsed, rules compiled, quality tables resolved), the filters
(capability/context minima precomputed) and the fallbacks. `plan` runs per request, does no I/O and
allocates little. Explicit deployments (`model: sim/fast`) skip analysis: the caller chose.

Chain order: the strategy's ranking of the eligible candidates; then deployments that only failed a
soft filter (cooling down, at max concurrency, no rate-limit headroom), as a last resort; then the
group's fallbacks that pass the hard filters. No candidate at all → NoCandidate (422) naming, for
each deployment, the constraint that removed it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..deployment import Deployment
from ..errors import ConfigError, NoCandidate
from ..resilience.health import HealthTracker
from ..tokens import token_bound
from ..types import ChatRequest, RouteDecision, Scored
from .analyze import LIGHT_OUTPUT, MessageCounter, analyze, last_user_text, request_capabilities
from .candidates import TOO_LONG, CandidateFilter, Constraints, Filtered, no_candidate
from .classify import WINDOW_CHARS, TaskModel, default_model, window
from .decision import DeferredAnalysis, LazyDecision
from .features import Features
from .hooks import RoutingHooks
from .ranking import Ranking
from .strategies import Strategy, StrategyConfigError, StrategyContext, lookup
from .strategies.base import as_strategy
from .strategies.order import InGroupOrder
from .usage import UsageMeter
from .validate import split_options

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..config import Config

@dataclass(slots=True)
class Route:
    """What a public model name resolves to: a group's deployments or one deployment."""

    name: str
    deployments: list[Deployment]
    strategy: str = "first-healthy"
    fallbacks: list[Deployment] = field(default_factory=list)
    # where a request goes when no member's context window holds it (`context_window_fallbacks`)
    context_fallbacks: list[Deployment] = field(default_factory=list)
    is_group: bool = False
    description: str | None = None
    plan_key: str = ""  # the router's plan for it: the name, or an experiment variant's own key

    def __post_init__(self) -> None:
        if not self.plan_key:
            self.plan_key = self.name


@dataclass(slots=True)
class GroupPlan:
    """A model group, ready to route: built at config load."""

    name: str
    deployments: list[Deployment]
    strategy_name: str
    strategy: Strategy
    filter: CandidateFilter
    by_name: dict[str, Deployment]
    names: list[str]  # group order
    counter: MessageCounter | None = None  # exact token counts (tiktoken), when the group asks
    meters_usage: bool = False  # charge picks to the usage meter (rpm/tpm limits or `usage` strategy)
    light: bool = False  # neither strategy nor constraints read task/complexity: skip the classifier
    quick: bool = False  # light, and the strategy reads no features: skip the analysis when nothing needs it
    # The request log's JSON of decisions whose candidates follow from the group alone (see _Verdicts)
    log_cache: dict[Any, str] = field(default_factory=dict)


class Router:
    def __init__(self, health: HealthTracker, *, config: Config | None = None,
                 deployments: dict[str, Deployment] | None = None, catalog: Catalog | None = None,
                 source: str = "<config>", seed: int | None = None, deterministic: bool = False,
                 task_model: TaskModel | None = None) -> None:
        self.health = health
        self.rng = random.Random(seed)
        self.deterministic = deterministic
        self.catalog = catalog
        self.source = source
        # Shared with every strategy and filter, read per request (see hooks.py); the rpm/tpm
        # headroom of the deployments that set limits is the router's own (`rate_headroom`).
        self.hooks = RoutingHooks()
        self.usage = UsageMeter()
        self.deployments: dict[str, Deployment] = dict(deployments or {})
        if any(d.rpm or d.tpm for d in self.deployments.values()):
            self.hooks.headroom = self.rate_headroom
        self.groups: dict[str, list[str]] = {}
        self.plans: dict[str, GroupPlan] = {}
        if task_model is None and config is not None and config.task_classifier == "minilm":
            from .task_minilm import minilm_model

            task_model = minilm_model()  # type: ignore[assignment]  # TaskModel's request-path interface
        self._task_model = task_model
        if config is not None:
            self.groups = {g: list(gc.deployments) for g, gc in config.model_groups.items()}
            for gname, gc in config.model_groups.items():
                self.plans[gname] = self._build(gname, [self.deployments[d] for d in gc.deployments], gc.strategy,
                                                dict(gc.options))
        # Groups whose strategy has slow per-request work (an embedding) to run off the event loop first.
        self.prepares: dict[str, Callable[[ChatRequest], None]] = {
            g: p.strategy.prepare for g, p in self.plans.items() if p.strategy.traits.prepares}
        if hasattr(self._task_model, "prepare"):  # the minilm classifier: embed off the event loop too
            for g, p in self.plans.items():
                if not p.light:
                    self.prepares[g] = self._with_task_prepare(self.prepares.get(g))

    def _with_task_prepare(self, inner: Callable[[ChatRequest], None] | None) -> Callable[[ChatRequest], None]:
        """A pre-routing step (worker thread) that embeds the prompt for the task classifier, then
        runs the strategy's own step if it has one."""
        model: Any = self._task_model

        def prepare(req: ChatRequest) -> None:
            text = last_user_text(req)
            model.prepare(text if len(text) <= WINDOW_CHARS else window(text))
            if inner is not None:
                inner(req)
        return prepare

    @property
    def task_model(self) -> TaskModel:
        if self._task_model is None:
            self._task_model = default_model()
        return self._task_model

    # --- build (config load) -------------------------------------------------------------------
    def _build(self, gname: str, deps: list[Deployment], strategy: str, options: dict[str, Any]) -> GroupPlan:
        for d in deps:
            self.deployments.setdefault(d.name, d)
        self.groups.setdefault(gname, [d.name for d in deps])
        where = f"model_groups.{gname}"
        factory = lookup(strategy)
        if factory is None:
            raise ConfigError(self.source, f"{where}.strategy", f"unknown strategy '{strategy}'")
        ctx = StrategyContext(group=gname, deployments=self.deployments, groups=self.groups, catalog=self.catalog,
                              health=self.health, rng=self.rng, deterministic=self.deterministic,
                              hooks=self.hooks, usage=self.usage)
        try:
            common, own = split_options(options)
            strat = as_strategy(factory(own, ctx), strategy)
        except StrategyConfigError as e:
            from ..config import format_loc

            raise ConfigError(self.source, f"{where}.options.{format_loc(e.loc)}", e.msg) from None
        cons = Constraints(min_quality=common.min_quality, max_cost_usd=common.max_cost_usd,
                           max_latency_ms=common.max_latency_ms, tags=frozenset(common.tags))
        if any(d.rpm or d.tpm for d in deps) and self.hooks.headroom is None:  # (a group built after load)
            self.hooks.headroom = self.rate_headroom
        filt = CandidateFilter(deps, cons, self.health, self.hooks)
        counter = self._exact_counter(deps, where) if common.exact_tokens else None
        traits = strat.traits
        meters = any(d.rpm or d.tpm for d in deps) or strategy == "usage"
        light = not traits.needs_task and cons.min_quality is None and cons.max_cost_usd is None \
            and cons.max_latency_ms is None
        if not light:
            self.task_model  # noqa: B018  (load the classifier now, not on the first request)
        quick = light and counter is None and not meters and not traits.reads_features
        return GroupPlan(gname, deps, strategy, strat, filt, {d.name: d for d in deps}, [d.name for d in deps],
                         counter, meters, light, quick)

    def _exact_counter(self, deps: list[Deployment], where: str) -> MessageCounter:
        from .exact_tokens import ExactTokensUnavailable, encoding_for, message_counter

        enc = next((e for d in deps if (e := encoding_for(d.model))), "o200k_base")
        try:
            return message_counter(enc)
        except ExactTokensUnavailable as e:
            raise ConfigError(self.source, f"{where}.options.exact_tokens", str(e)) from None

    def rate_headroom(self, dep: Deployment, f: Features) -> str | None:
        """The built-in rpm/tpm soft filter, against what this router sent this minute."""
        if not (dep.rpm or dep.tpm):
            return None
        reqs, toks = self.usage.used(dep.name)
        if dep.rpm and reqs >= dep.rpm:
            return f"rpm limit reached ({reqs}/{dep.rpm} this minute)"
        if dep.tpm and toks + f.input_tokens > dep.tpm:
            return f"tpm limit reached ({toks}/{dep.tpm} this minute)"
        return None

    def plan_for(self, route: Route) -> GroupPlan:
        """The group's plan; groups unknown at load (a Router built without config) get one now."""
        plan = self.plans.get(route.plan_key)
        if plan is None:
            plan = self.plans[route.plan_key] = self._build(route.name, route.deployments, route.strategy, {})
        return plan

    def add_variant(self, route: Route, options: dict[str, Any], where: str) -> None:
        """Plan a route that serves a group with other deployments or another strategy (an experiment's
        variant) under `route.plan_key`; `where` names its config field in errors."""
        try:
            plan = self._build(route.name, route.deployments, route.strategy, options)
        except ConfigError as e:
            raise ConfigError.from_problems(e.file, [(p.replace(f"model_groups.{route.name}", where, 1), m)
                                                     for p, m in e.problems]) from None
        self.plans[route.plan_key] = plan
        if plan.strategy.traits.prepares:
            self.prepares[route.plan_key] = plan.strategy.prepare
        if hasattr(self._task_model, "prepare") and not plan.light:
            self.prepares[route.plan_key] = self._with_task_prepare(self.prepares.get(route.plan_key))

    # --- per request -----------------------------------------------------------------------------
    def plan(self, route: Route, req: ChatRequest) -> tuple[list[Deployment], RouteDecision]:
        """Order the route's deployments: the one to call first, then the fallbacks."""
        if not route.is_group:
            return self._direct(route)
        chain, decision, rejected = self.decide(route, req)
        if not chain:
            raise no_candidate(route.name, rejected)
        return chain, decision

    def decide(self, route: Route, req: ChatRequest, *, now: float | None = None, explain: bool = False
               ) -> tuple[list[Deployment], RouteDecision, dict[str, str]]:
        """Like `plan`, but never raises NoCandidate: an empty chain and the rejections instead
        (what `explain` shows). `explain` adds the strategy's `describe` detail to each reason."""
        plan = self.plan_for(route)
        hooks = self.hooks
        if plan.quick and not explain and not req.metadata and not req.tools and not route.fallbacks \
                and hooks.budget is None and hooks.headroom is None:
            bound = token_bound(req.messages) + (req.max_tokens or LIGHT_OUTPUT)
            if plan.filter.unconstrained(request_capabilities(req), bound, req.max_tokens):
                # nothing to analyse: the strategy reads no features and no hard filter can remove a
                # deployment; the features are worked out if the decision is explained or logged
                filt = plan.filter.soft(plan.deployments, None, {}, now)
                return self._finish(route, plan, req, _UNREAD, filt, False, _LightFeatures(req, time.time()))
        light = plan.light and not explain and hooks.budget is None  # cost filters want the task
        model = self._task_model if light else self._task_model or self.task_model  # (light: no classifier)
        f = analyze(req, model=model, counter=plan.counter, light=light)
        return self._finish(route, plan, req, f, plan.filter.run(f, req.max_tokens, now), explain, f.to_dict)

    def _finish(self, route: Route, plan: GroupPlan, req: ChatRequest, f: Features, filt: Filtered, explain: bool,
                features: Callable[[], dict[str, Any]]) -> tuple[list[Deployment], RouteDecision, dict[str, str]]:
        """Rank what the filters left, build the chain and the (lazily explained) decision."""
        rejected = filt.rejected
        pool = filt.eligible or filt.deferred  # nothing healthy: rank the rest anyway, better than failing
        ranking = plan.strategy.order(req, f, pool) if pool else None
        if explain and ranking is not None:
            detail = plan.strategy.describe(req, f, pool)
            for s in ranking.scored():
                if s.deployment in detail:
                    s.reason = f"{s.reason}; {detail[s.deployment]}"
        chain = ranking.deployments if ranking is not None else []
        if filt.eligible and filt.deferred:
            chain = chain + filt.deferred
        if route.fallbacks:
            fb = [d for d in route.fallbacks if d.name not in plan.by_name]
            if fb:
                fb_rejected: dict[str, str] = {}
                chain = chain + plan.filter.hard(fb, f, req.max_tokens, fb_rejected)
                rejected.update({f"{k} (fallback)": v for k, v in fb_rejected.items()})
        if not chain and route.context_fallbacks and any(why.startswith(TOO_LONG) for why in rejected.values()):
            ctx_rejected: dict[str, str] = {}
            chain = plan.filter.hard([d for d in route.context_fallbacks if d.name not in plan.by_name], f,
                                     req.max_tokens, ctx_rejected)
            rejected.update({f"{k} (context-window fallback)": v for k, v in ctx_rejected.items()})
        if plan.meters_usage and chain:
            self.usage.charge(chain[0].name, f.input_tokens + f.output_tokens)
        if ranking is not None:
            reason = ranking.top_reason()
        else:
            reason = f"only fallbacks fit; first fallback {chain[0].name}" if chain else "no deployment fits"
        verdicts = _Verdicts(plan, ranking, rejected, bool(filt.eligible))
        decision = LazyDecision.build(route.name, chain[0].name if chain else "", plan.strategy_name, reason,
                                      ranking.rule if ranking is not None else None, verdicts, features,
                                      verdicts.log_cache())
        if explain:
            decision.candidates  # noqa: B018  (built now: the describe details are in them)
        return chain, decision, rejected

    def _direct(self, route: Route) -> tuple[list[Deployment], RouteDecision]:
        dep = route.deployments[0]
        ok = self.health.healthy(dep.name, time.monotonic())
        chain = [dep, *[d for d in route.fallbacks if d is not dep]]
        decision = RouteDecision(model=route.name, deployment=dep.name, strategy=route.strategy,
                                 reason="explicit deployment",
                                 candidates=[Scored(dep.name, 1.0 if ok else 0.0, ok,
                                                    "healthy" if ok else "cooling down after failures")])
        return chain, decision

    def explain(self, route: Route, req: ChatRequest) -> dict[str, Any]:
        """The decision as `route --explain --json` and POST /v1/route/explain print it."""
        if not route.is_group:
            chain, decision = self._direct(route)
            f = analyze(req, model=self.task_model)
            decision.features = f.to_dict()
            rejected: dict[str, str] = {}
        else:
            chain, decision, rejected = self.decide(route, req, explain=True)
        d = decision.to_dict()
        out: dict[str, Any] = {"model": route.name, "features": d["features"], "candidates": d["candidates"],
                               "chosen": d["chosen"] or None, "strategy": d["strategy"], "rule": d.get("rule"),
                               "reason": d["reason"], "chain": [x.name for x in chain]}
        if not chain:
            out["error"] = no_candidate(route.name, rejected).message
        return out


_UNREAD = Features(analyzed=False)  # what strategies that read no features are handed on the quick path


class _LightFeatures(DeferredAnalysis):
    """The light analysis of a request routed without one (the quick path), run when the decision's
    features are first read, with the clock of the decision."""

    __slots__ = ("req", "wall")

    def __init__(self, req: ChatRequest, wall: float) -> None:
        self.req, self.wall = req, wall

    def __call__(self) -> dict[str, Any]:
        return analyze(self.req, light=True, now=self.wall).to_dict()


class _Verdicts:
    """Every candidate of the group, in group order, with its verdict: the decision's `candidates`,
    built when the decision is first explained or logged."""

    __slots__ = ("eligible", "plan", "ranking", "rejected")

    def __init__(self, plan: GroupPlan, ranking: Ranking | None, rejected: dict[str, str], eligible: bool) -> None:
        self.plan, self.ranking, self.rejected, self.eligible = plan, ranking, rejected, eligible

    def log_cache(self) -> dict[Any, str] | None:
        """The group's cache of logged decisions when these verdicts are the group's fixed ones: every
        deployment eligible and in group order (first-healthy: scores and reasons by position)."""
        ranking = self.ranking
        if self.rejected or type(ranking) is not InGroupOrder or len(ranking.order) != len(self.plan.names):
            return None
        return self.plan.log_cache

    def __call__(self) -> list[Scored]:
        plan, rejected = self.plan, self.rejected
        ranked = self.ranking.scored() if self.ranking is not None else []
        by_rank = {s.deployment: s for s in ranked}
        if not rejected and len(ranked) == len(plan.deployments):
            return [by_rank[n] for n in plan.names]
        candidates = []
        for d in plan.deployments:
            s = by_rank.get(d.name)
            if s is None:
                candidates.append(Scored(d.name, 0.0, False, rejected.get(d.name, "not ranked")))
            elif self.eligible:
                candidates.append(s)
            else:  # ranked although it failed a soft filter: say so
                candidates.append(Scored(d.name, s.score, False, f"{rejected[d.name]}; ranked anyway, nothing "
                                                                   f"healthy: {s.reason}"))
        return candidates


__all__ = ["GroupPlan", "NoCandidate", "Route", "Router"]
