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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ...types import ChatRequest, Scored
from ..conditions import Condition, compile_condition, first_true
from ..features import Features
from ..ranking import BONUS, Boosted, Preferred, Ranking
from .base import (
    VALIDATORS,
    ConfigNames,
    Ranked,
    StrategyConfigError,
    StrategyContext,
    lookup,
    plugin_errors,
    register_strategy,
)
from .util import Options, parse_options

if TYPE_CHECKING:
    from ...deployment import Deployment

Target = str | list[str]


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
    __slots__ = ("bonus", "hit", "label", "mask", "match", "miss", "targets")

    def __init__(self, label: str, match: Condition, targets: frozenset[str], group: tuple[str, ...]) -> None:
        self.label, self.match, self.targets = label, match, targets
        # reasons built once: rank must not format a string per candidate
        self.hit = f"rule '{label}' target" if label != "default" else "default target"
        self.miss = f"not a target of rule '{label}' (fallback)" if label != "default" else \
            "not the default target (fallback)"
        self.mask = [n in targets for n in group]  # by group position: the common candidate list
        self.bonus = [BONUS if m else 0.0 for m in self.mask]


class Rules:
    name = "rules"

    def __init__(self, options: dict[str, Any], ctx: StrategyContext) -> None:
        opts = parse_options(RulesOptions, options)
        names = ConfigNames(group=ctx.group, group_deployments=tuple(ctx.groups.get(ctx.group, ())),
                            deployments=frozenset(ctx.deployments),
                            groups={g: tuple(d) for g, d in ctx.groups.items()})
        group = names.group_deployments
        self.group = tuple(ctx.deployments[n] for n in group if n in ctx.deployments)
        self.rules = [
            _CompiledRule(r.name or f"rule {i + 1}", compile_condition(r.when, ("rules", i, "when")),
                          _targets(r.to, ("rules", i, "to"), names), group)
            for i, r in enumerate(opts.rules)
        ]
        self._first = first_true([r.match for r in self.rules])  # the rules in one function
        default = _targets(opts.default, ("default",), names) if opts.default is not None else None
        self.default = _CompiledRule("default", lambda f: True, default, group) if default is not None else None
        _inner(opts.then, opts.then_options, None)
        factory = lookup(opts.then)
        assert factory is not None
        self.inner = factory(opts.then_options, ctx)
        self._inner_order = getattr(self.inner, "order", None)
        self._boost = getattr(self.inner, "takes_bonus", False)  # one sort puts the targets first
        self.then = opts.then
        self._whole: Sequence[Deployment] | None = None

    def _whole_group(self, candidates: Sequence[Deployment]) -> bool:
        g = self.group
        if len(candidates) != len(g):
            return False
        if candidates is self._whole:  # the list last found to be the group (the router's: never mutated)
            return True
        if tuple(candidates) == g:
            self._whole = candidates
            return True
        return False

    def pick(self, features: Features, candidates: list[Deployment], whole: bool | None = None
             ) -> tuple[_CompiledRule | None, list[str]]:
        """The first matching rule with a target among the candidates (or the default), and the rules
        that matched but whose targets were all filtered out. `whole`: whether the candidates are
        the whole group (worked out when not given)."""
        if whole if whole is not None else self._whole_group(candidates):
            i = self._first(features)  # every target (validated at load) is a candidate: the first match
            return self.rules[i] if i >= 0 else self.default, []
        skipped: list[str] = []
        names = {d.name for d in candidates}
        for rule in self.rules:
            if rule.match(features):
                if not rule.targets.isdisjoint(names):
                    return rule, skipped
                skipped.append(rule.label)
        return self.default, skipped

    def rank(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> list[Scored]:
        r = self.order(req, features, candidates)
        return Ranked(r.scored(), rule=r.rule)

    def order(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> Ranking:
        """`rank` without building the per-candidate entries (see ranking.py)."""
        whole = self._whole_group(candidates)
        rule, skipped = self.pick(features, candidates, whole)
        if rule is not None and self._boost:
            if whole:
                bonus = rule.bonus
            else:
                targets = rule.targets
                bonus = [BONUS if d.name in targets else 0.0 for d in candidates]
            ranked = self.inner.order(req, features, candidates, bonus)  # type: ignore[attr-defined]
            return Boosted(ranked, bonus, rule.hit, rule.miss, rule.label)
        order = self._inner_order
        inner = order(req, features, candidates) if order is not None else \
            Ranking.of(self.inner.rank(req, features, candidates), candidates)
        if rule is None:
            why = "no rule matched: whole group" if not skipped else \
                f"rules {', '.join(skipped)} matched but their targets were filtered out: whole group"
            return inner.relabel(why, "default")
        if whole:  # the inner ranking is over the group, in group order
            mask = rule.mask
        else:
            targets = rule.targets
            mask = [d.name in targets for d in inner.candidates]
        return Preferred(inner, mask, rule.hit, rule.miss, rule.label)

    def describe(self, req: ChatRequest, features: Features, candidates: list[Deployment]) -> dict[str, str]:
        detail = getattr(self.inner, "describe", None)
        inner = detail(req, features, candidates) if detail is not None else {}
        return {d.name: f"{self.then}: {inner[d.name]}" if d.name in inner else self.then for d in candidates}


register_strategy("rules", Rules, validate=validate_rules)
