"""Pipeline mistakes are config-load errors naming file:field, never runtime 500s; the example
pipelines load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import ConfigError
from modelyard.loader import load_config, parse_config

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "pipelines").glob("*.yaml"))
DEPLOYMENTS = {"fast": {"provider": "sim", "model": "sim/fast"}, "smart": {"provider": "sim", "model": "sim/frontier"}}


def load(steps: list[dict[str, Any]], **pipeline: Any) -> Any:
    return parse_config({"deployments": DEPLOYMENTS, "pipelines": {"p": {"steps": steps, **pipeline}}}, "p.yaml")


def error(steps: list[dict[str, Any]], **pipeline: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(steps, **pipeline)
    return str(info.value)


def step(name: str, prompt: str = "{{ input }}", **kw: Any) -> dict[str, Any]:
    return {"name": name, "model": kw.pop("model", "fast"), "prompt": prompt, **kw}


@pytest.mark.parametrize("steps, pipeline, expected", [
    ([step("a", "Use {{ qeries }}")], {},
     "p.yaml: pipelines.p.steps[0].prompt: unknown variable 'qeries'; available here: input"),
    ([step("a", "{{ b }}"), step("b")], {},
     "p.yaml: pipelines.p.steps[0].prompt: 'b' is not available here: a step may use the inputs and the steps "
     "before it"),
    ([{"parallel": [step("a"), step("b", "{{ a }}")]}, step("c", "{{ a }}{{ b }}")], {},
     "p.yaml: pipelines.p.steps[0].parallel[1].prompt: 'a' is not available here"),
    ([step("a", "Hello {{ input ")], {}, "p.yaml: pipelines.p.steps[0].prompt: unclosed '{{'"),
    ([step("a", "{{ input.x }}")], {}, "pipelines.p.steps[0].prompt: 'input' is text and has no fields"),
    ([step("a"), step("b", "{{ a.items }}")], {},
     "pipelines.p.steps[1].prompt: step 'a' outputs text (parse: text), so 'a.items' has nothing to read"),
    ([step("a", parse="regex", pattern=r"(?P<label>\w+)"), step("b", "{{ a.lable }}")], {},
     "pipelines.p.steps[1].prompt: step 'a' has no field 'lable'; its pattern's named groups: label"),
    ([step("a", parse="regex", pattern="([a-z")], {}, "pipelines.p.steps[0].pattern: not a valid regular expression"),
    ([step("a", parse="regex")], {}, "pipelines.p.steps[0].pattern: required with parse: regex"),
    ([step("a", pattern="x")], {}, "pipelines.p.steps[0].pattern: only used with parse: regex"),
    ([step("a", model="fsat")], {}, "pipelines.p.steps[0].model: unknown model 'fsat': use a deployment or model "
                                    "group (did you mean 'fast'"),
    ([{"name": "a", "prompt": "x"}], {}, "pipelines.p.steps[0].model: required"),
    ([{"name": "a", "model": "fast"}], {}, "pipelines.p.steps[0].prompt: required"),
    ([{"model": "fast", "prompt": "x"}], {}, "pipelines.p.steps[0].name: required"),
    ([step("a"), step("a")], {}, "pipelines.p.steps[1].name: 'a' is already used"),
    ([step("topic")], {"inputs": ["topic"]}, "pipelines.p.steps[0].name: 'topic' is already used"),
    ([step("a")], {"inputs": ["input"]}, "pipelines.p.inputs[0]: 'input' is not a usable input name"),
    ([{"parallel": [step("a")], "model": "fast"}], {}, "pipelines.p.steps[0].model: a parallel block holds only"),
    ([{"parallel": [{"parallel": [step("a")]}]}], {}, "pipelines.p.steps[0].parallel[0].parallel: parallel blocks "
                                                      "cannot be nested"),
    ([{"parallel": [step("a"), step("b")]}], {}, "pipelines.p.output: required when the last block is parallel"),
    ([step("a")], {"output": "z"}, "pipelines.p.output: no step named 'z'"),
    ([step("a", ensemble={"mode": "vote", "models": ["fast", "smart"], "min_agreement": 0})], {},
     "pipelines.p.steps[0].ensemble.min_agreement: must be an integer >= 1"),
    ([step("a", ensemble={"mode": "vote", "models": ["fast", "slow"]})], {},
     "pipelines.p.steps[0].ensemble.models[1]: unknown model 'slow'"),
    ([step("a"), {"name": "b", "prompt": "x", "route": {"by": "nope", "cases": {"x": "fast"}, "default": "fast"}}],
     {}, "pipelines.p.steps[1].route.by: unknown variable 'nope'"),
    ([step("a"), {"name": "b", "prompt": "x", "route": {"by": "a", "cases": {"x": "fats"}, "default": "fast"}}],
     {}, "pipelines.p.steps[1].route.cases.x: unknown model 'fats'"),
    ([step("a", bogus=1)], {}, "pipelines.p.steps[0].bogus: unknown field 'bogus'"),
    ([step("a", parse="yaml")], {}, "pipelines.p.steps[0].parse:"),
])
def test_mistakes_name_the_field(steps, pipeline, expected) -> None:
    assert expected in error(steps, **pipeline)


def test_a_valid_pipeline_compiles() -> None:
    cfg = load([step("q", "Queries about {{ topic }}", schema={"type": "object"}),
                {"parallel": [step("a", "{{ q.queries.0 }}"), step("b", "{{ q }} {{ input }}", optional=True)]},
                step("c", "{{ a }} {{ b }}", parse="regex", pattern=r"(?P<label>\w+)"),
                {"name": "d", "prompt": "{{ c.label }}", "route": {"by": "c.label", "cases": {"x": "smart"},
                                                                   "default": "fast"}}],
               inputs=["topic"], budget_usd=0.5)
    assert list(cfg.pipelines) == ["p"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_load(path: Path) -> None:
    assert load_config(path).pipelines
