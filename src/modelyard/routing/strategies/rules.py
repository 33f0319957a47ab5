"""`rules`: ordered conditions on request features → a target group or deployment; first match wins.

    strategy: rules
    options:
      rules:
        - name: vision
          when: {capabilities: vision}
          to: sim/frontier
        - name: hard
          when: {complexity: {gte: 0.6}}
          to: smart                  # a model group (its deployments) or a deployment
      default: sim/balanced          # when no rule matches (omitted: the whole group)
      then: score                    # orders the target's deployments, then everything else
      then_options: {optimize_for: cost}

Targets must share at least one deployment with the group (the group's deployments are the candidate
set; rules pick among them). A rule whose targets were all filtered out for this request (say they
lack vision) does not match: the next rule gets its chance, and the explanation says so. The ranking
is the target's deployments first, then the rest of the candidates as fallbacks, both in the inner
strategy's order; targets score 1 + their inner score.
"""

from __future__ import annotations

from operator import attrgetter
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ...types import ChatRequest, Scored
from ..analyze import TASK_FEATURES
from ..conditions import Condition, compile_condition, fields_read
from ..features import Features
from ..ranking import Front, Preferred, Ranked, Ranking
from .base import (
    VALIDATORS,
    ConfigNames,
    Strategy,
    StrategyConfigError,
    StrategyContext,
    StrategyTraits,
    build_strategy,
    lookup,
    plugin_errors,
    register_strategy,
)
from .util import Options, PerCandidateSet, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment

Target = str | list[str]
_NAME = attrgetter("name")
_NO_FRONT = Front([])  # (no rule picked)


class Rule(Options):
    name: str | None = None
    when: dict[str, Any] = {}
    to: Target = Field(...)


class RulesOptions(Options):
    rules: list[Rule] = []
    default: Target | None = None
    then: str = "score"  # the strategy that orders within the target and the rest
    then_options: dict[str, Any] = {}


def _targets(target: Target, loc: tuple[str | int, ...], names: ConfigNames) -> frozenset[str]:
    """A target's deployment names (within the group); errors name the target and say what to do."""
    items = [target] if isinstance(target, str) else target
    if not items:
        raise StrategyConfigError(loc, "name at least one model group or deployment")
    out: set[str] = set()
    for i, t in enumerate(items):
        where = loc if isinstance(target, str) else (*loc, i)
        if not isinstance(t, str):
            raise StrategyConfigError(where, f"must be a group or deployment name, got {t!r}")
        if t in names.groups:
            deps = set(names.groups[t])
        elif t in names.deployments:
            deps = {t}
        else:
            import difflib

            close = difflib.get_close_matches(t, [*names.groups, *names.deployments], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise StrategyConfigError(where, f"unknown target '{t}'{hint}: name a model group or a deployment")
        inside = deps & set(names.group_deployments)
        if not inside:
            raise StrategyConfigError(where, f"target '{t}' has no deployment in model group '{names.group}': "
                                             f"add {', '.join(sorted(deps))} to model_groups.{names.group}.deployments")
        out |= inside
    return frozenset(out)


def _inner(then: str, then_options: dict[str, Any], names: ConfigNames | None) -> None:
    """Check the `then` strategy (and, at config time, its options)."""
    if then in ("rules", "tier"):
        raise StrategyConfigError(("then",), f"'then' orders deployments; '{then}' picks targets itself: "
                                             "use score, cheapest, fastest, first-healthy, ...")
    if lookup(then) is None:
        errs = plugin_errors()
        raise StrategyConfigError(("then",), f"unknown strategy '{then}'" + (f" ({'; '.join(errs)})" if errs
                                                                            else ""))
    validate = VALIDATORS.get(then)
    if validate is not None and names is not None:
        try:
            validate(then_options, names)
        except StrategyConfigError as e:
            raise StrategyConfigError(("then_options", *e.loc), e.msg) from None


def validate_rules(options: dict[str, Any], names: ConfigNames) -> None:
    opts = parse_options(RulesOptions, options)
    for i, rule in enumerate(opts.rules):
        compile_condition(rule.when, ("rules", i, "when"))
        _targets(rule.to, ("rules", i, "to"), names)
    if opts.default is not None:
        _targets(opts.default, ("default",), names)
    _inner(opts.then, opts.then_options, names)


class _CompiledRule:
    __slots__ = ("hit", "label", "match", "miss", "reads", "targets")

    def __init__(self, label: str, match: Condition, targets: frozenset[str],
                 reads: frozenset[str] = frozenset()) -> None:
        self.label, self.match, self.targets = label, match, targets
        self.reads = reads  # the features its condition reads
        # reasons built once: a decision must not format a string per candidate
        self.hit = f"rule '{label}' target" if label != "default" else "default target"
        self.miss = f"not a target of rule '{label}' (fallback)" if label != "default" else \
            "not the default target (fallback)"


def inner_strategy(then: str, options: dict[str, Any], ctx: StrategyContext) -> Strategy:
    """The strategy that orders within the targets and the rest (`then`), built at load."""
    _inner(then, options, None)
    return build_strategy(then, options, ctx)


def inner_detail(inner: Strategy, then: str, req: ChatRequest, features: Features,
                 candidates: list[Deployment]) -> dict[str, str]:
    """The inner strategy's explanation of each candidate, prefixed with its name."""
    detail = inner.describe(req, features, candidates)
    return {d.name: f"{then}: {detail[d.name]}" if d.name in detail else then for d in candidates}


class Rules(Strategy):
    name = "rules"

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        opts = parse_options(RulesOptions, options)
        names = ConfigNames(group=ctx.group, group_deployments=tuple(ctx.groups.get(ctx.group, ())),
                            deployments=frozenset(ctx.deployments),
                            groups={g: tuple(d) for g, d in ctx.groups.items()})
        self.rules = [
            _CompiledRule(r.name or f"rule {i + 1}", compile_condition(r.when, ("rules", i, "when")),
                          _targets(r.to, ("rules", i, "to"), names), fields_read(r.when))
            for i, r in enumerate(opts.rules)
        ]
        default = _targets(opts.default, ("default",), names) if opts.default is not None else None
        self.default = _CompiledRule("default", lambda f: True, default) if default is not None else None
        self.tried = (*self.rules, self.default) if self.default is not None else tuple(self.rules)
        self._fronts: PerCandidateSet[list[Front | None]] = PerCandidateSet(lambda _: [None] * len(self.tried))
        self.inner = inner_strategy(opts.then, opts.then_options, ctx)
        self.then = opts.then
        # the classifier runs only if a condition or the inner strategy reads what it works out
        needs_task = self.inner.traits.needs_task or any(not TASK_FEATURES.isdisjoint(r.reads) for r in self.rules)
        self.traits = StrategyTraits(needs_task=needs_task)

    def pick(self, features: Features, candidates: list[Deployment]) -> tuple[_CompiledRule | None, Front, list[str]]:
        """The first matching rule with a target among the candidates (or the default), which
        candidates are its targets (a `Front` kept for the candidate set: read it, do not change it),
        and the rules that matched but whose targets were all filtered out."""
        skipped: list[str] = []
        fronts = None
        for i, rule in enumerate(self.tried):
            if rule.match(features):
                if fronts is None:
                    fronts = self.fronts(candidates)
                front = fronts[i]
                if front is None:
                    front = fronts[i] = Front(list(map(rule.targets.__contains__, map(_NAME, candidates))))
                if front.any or rule is self.default:
                    return rule, front, skipped
                skipped.append(rule.label)
        return None, _NO_FRONT, skipped

    def fronts(self, candidates: list[Deployment]) -> list[Front | None]:
        """Per rule, which candidates are its targets: worked out on first use for each candidate set
        (the filters hand over one of a few lists), so a request does not look each candidate up in
        the targets, and the inner strategy's sort key for them is made once."""
        return self._fronts.get(candidates)

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        r = self.order(req, features, candidates)
        return Ranked(r.scored(), rule=r.rule)

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> Ranking:
        """The inner strategy's order, with the matching rule's targets moved to the front."""
        rule, front, skipped = self.pick(features, candidates)
        if rule is None:
            why = "no rule matched: whole group" if not skipped else \
                f"rules {', '.join(skipped)} matched but their targets were filtered out: whole group"
            return self.inner.order(req, features, candidates).relabel(why, "default")
        return Preferred(self.inner.order_front(req, features, candidates, front), front, rule.hit, rule.miss,
                         rule.label)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        return inner_detail(self.inner, self.then, req, features, candidates)


register_strategy("rules", Rules, validate=validate_rules)
