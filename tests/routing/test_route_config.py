"""Routing config: every mistake is a ConfigError naming file:field; every example loads and routes;
strategies registered by other packages are usable from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from routekit import FLEET, chain, gateway, req

from modelyard.errors import ConfigError
from modelyard.gateway import Gateway
from modelyard.loader import load_config, parse_config
from modelyard.routing.strategies import register_strategy
from modelyard.types import Scored

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("routing-*.yaml"))


def bad(group: dict) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        parse_config({"deployments": FLEET, "model_groups": {"smart": {"deployments": ["frontier"]}, "g": group}},
                     "routing.yaml")
    return e.value


@pytest.mark.parametrize(("group", "field", "msg"), [
    ({"strategy": "smartest"}, "model_groups.g.strategy", "unknown strategy 'smartest'; one of: budget-aware"),
    ({"strategy": "score", "options": {"weigths": {}}}, "model_groups.g.options.weigths", "unknown option 'weigths'"),
    ({"strategy": "score", "options": {"weights": {"cost": 0}}}, "model_groups.g.options.weights",
     "at least one of cost, latency, quality"),
    ({"strategy": "score", "options": {"optimize_for": "vibes"}}, "model_groups.g.options.optimize_for", "vibes"),
    ({"strategy": "score", "options": {"quality": {"nope": {"math": 0.5}}}}, "model_groups.g.options.quality.nope",
     "not a deployment of model group 'g'"),
    ({"strategy": "score", "options": {"min_quality": 2}}, "model_groups.g.options.min_quality", "less than or equal"),
    ({"strategy": "rules", "options": {"rules": [{"when": {"task": "math"}, "to": "fast"},
                                                 {"when": {"complexty": 1}, "to": "fast"}]}},
     "model_groups.g.options.rules[1].when.complexty", "unknown feature 'complexty' (did you mean 'complexity'?)"),
    ({"strategy": "rules", "options": {"rules": [{"when": {"complexity": {"gte": "x"}}, "to": "fast"}]}},
     "model_groups.g.options.rules[0].when.complexity.gte", "must be a number"),
    ({"strategy": "rules", "options": {"rules": [{"when": {}, "to": "gpt5"}]}},
     "model_groups.g.options.rules[0].to", "unknown target 'gpt5'"),
    ({"strategy": "rules", "options": {"rules": [{"when": {}, "to": ["fast", "smart"]}]}},
     "model_groups.g.options.rules[0].to[1]", "target 'smart' has no deployment in model group 'g': add frontier"),
    ({"strategy": "rules", "options": {"rules": [{"when": {}}]}}, "model_groups.g.options.rules[0].to",
     "Field required"),
    ({"strategy": "rules", "options": {"default": "nowhere"}}, "model_groups.g.options.default", "unknown target"),
    ({"strategy": "rules", "options": {"then": "magic"}}, "model_groups.g.options.then", "unknown strategy 'magic'"),
    ({"strategy": "rules", "options": {"then": "score", "then_options": {"optimize_for": "x"}}},
     "model_groups.g.options.then_options.optimize_for", "'x'"),
    ({"strategy": "tier", "options": {"matrix": {"free": {"*": "gold"}}}}, "model_groups.g.options.matrix.free.*",
     "unknown class 'gold'"),
    ({"strategy": "tier", "options": {"default_tier": "vip"}}, "model_groups.g.options.default_tier", "'vip'"),
    ({"strategy": "weighted", "options": {"x": 1}}, "model_groups.g.options.x", "unknown option 'x'"),
])
def test_config_errors_name_the_field(group: dict, field: str, msg: str) -> None:
    e = bad({"deployments": ["fast", "local"], **group})
    assert e.file == "routing.yaml" and e.path == field, str(e)
    assert msg in e.message, str(e)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_and_routes(path: Path) -> None:
    cfg = load_config(path)
    gw = Gateway(cfg, source=str(path), request_log=False)
    groups = yaml.safe_load(path.read_text())["model_groups"]
    assert groups
    for name in groups:
        c, d = gw.plan(gw.resolve(name), req("Summarize this paragraph in one line: the meeting moved to Friday.",
                                             model=name, metadata={"tier": "pro"}))
        assert c and d.deployment == c[0].name and d.features["input_tokens"] > 0
        assert d.features["task"] or gw.router.plans[name].light  # light groups skip the classifier


def test_routing_examples_cover_the_patterns() -> None:
    strategies = set()
    for path in EXAMPLES:
        for g in (yaml.safe_load(path.read_text()).get("model_groups") or {}).values():
            strategies.add(g.get("strategy", "first-healthy"))
    assert {"rules", "tier", "score", "fastest", "cheapest", "budget-aware"} <= strategies


def test_a_registered_strategy_is_usable_from_yaml() -> None:
    class Reverse:
        name = "reverse-test"

        def __init__(self, options, ctx) -> None:
            self.bias = options.get("bias", 0)

        def rank(self, req, features, candidates):
            return [Scored(d.name, float(i), True, "reversed") for i, d in enumerate(candidates)][::-1]

    register_strategy("reverse-test", Reverse)
    gw = gateway({"g": {"deployments": ["fast", "local", "balanced"], "strategy": "reverse-test",
                        "options": {"bias": 1, "max_cost_usd": 1}}})
    assert chain(gw) == ["balanced", "local", "fast"]


def test_a_broken_strategy_is_repaired_not_trusted() -> None:
    class Sloppy:
        name = "sloppy-test"

        def __init__(self, options, ctx) -> None:
            pass

        def rank(self, req, features, candidates):
            return [Scored("ghost"), Scored(candidates[-1].name), Scored(candidates[-1].name)]

    register_strategy("sloppy-test", Sloppy)
    gw = gateway({"g": {"deployments": ["fast", "local", "balanced"], "strategy": "sloppy-test"}})
    assert chain(gw) == ["balanced", "fast", "local"]


def test_factory_errors_at_build_time_name_file_and_field() -> None:
    from modelyard.routing.strategies import StrategyConfigError

    def factory(options, ctx):
        raise StrategyConfigError(("model_path",), "file not found")

    register_strategy("failing-test", factory)
    with pytest.raises(ConfigError) as e:
        gateway({"g": {"deployments": ["fast"], "strategy": "failing-test"}})
    assert str(e.value).startswith("t.yaml: model_groups.g.options.model_path: file not found")


def test_default_auto_group_is_routed_by_rules() -> None:
    gw = Gateway.default(sim_only=True, request_log=False)
    assert gw.resolve("auto").strategy == "rules"
    assert chain(gw, req("hi!", model="auto"), "auto")[0] == "sim/fast"
    hard = req("Prove rigorously, step by step, that there are infinitely many primes; then derive a bound on "
               "prime gaps and justify every step.", model="auto")
    assert chain(gw, hard, "auto")[0] == "sim/frontier"
    assert chain(gw, req("Write a Python function that merges two sorted lists.", model="auto"), "auto")[0] \
        == "sim/balanced"
