"""Pipelines: named multi-step workflows from config, served as model `pipeline/<name>` — what a
pipeline is, and its checks and compilation at config load (running one: pipeline_run.py).

    pipelines:
      research:
        inputs: [topic]
        steps:
          - {name: queries, model: fast, prompt: "Three search queries about {{ topic }}", schema: {...}}
          - parallel:
              - {name: background, model: smart, prompt: "Explain {{ topic }}"}
              - {name: doubts, model: fast, prompt: "What is contested about {{ topic }}?"}
          - {name: synthesis, model: smart, prompt: "{{ background }} {{ doubts }} {{ queries.queries }}"}
          - {name: summary, model: cheap, prompt: "Three bullets: {{ synthesis }}"}

A step has a model (deployment or group), a `route` (pick the model from an earlier step's output)
or an `ensemble` (any multi-model mode, e.g. a vote); a prompt template over the inputs and earlier
steps; an optional output parser (`text`, `json`, `regex` with `pattern`; `schema` asks the model
for JSON that fits it). Everything is checked when the config loads — unknown variables, forward
references, fields of a text output, bad patterns, unknown models — as errors naming the field.
At run time a step that fails, or whose output does not parse, fails the request naming the step,
unless the step is `optional` (its output is then empty). The response carries every step's
output, model, deployment, tokens, cost and latency under `modelyard.steps`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ModelyardError
from .parse import OutputParser
from .spec import Spec, SpecError, parse_spec
from .template import Ref, Template, TemplateError, compile_template, parse_ref

if TYPE_CHECKING:
    from ..config import PipelineConfig, PipelineStepConfig

PREFIX = "pipeline/"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_PIPELINE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_RESERVED = frozenset(("input",))


class PipelineStepFailed(ModelyardError):
    """A step's output was unusable (did not parse, lacked a referenced field, named no route)."""

    status = 502
    type = "pipeline_step_failed"
    anthropic_type = "api_error"


class PipelineConfigError(ValueError):
    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


@dataclass(slots=True, frozen=True)
class StepRoute:
    by: Ref
    cases: dict[str, str]  # case-folded output -> model
    default: str


@dataclass(slots=True, frozen=True)
class Step:
    name: str
    model: str | None
    route: StepRoute | None
    ensemble: Spec | None
    system: Template | None
    prompt: Template
    parser: OutputParser
    optional: bool = False
    temperature: float | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None


@dataclass(slots=True, frozen=True)
class Pipeline:
    name: str
    inputs: tuple[str, ...]
    blocks: tuple[tuple[Step, ...], ...]  # run in order; the steps of one block run in parallel
    output: str  # the step whose text is the answer
    description: str | None = None
    budget_usd: float | None = None


def compile_pipeline(name: str, cfg: PipelineConfig, known_models: set[str] | frozenset[str]) -> Pipeline:
    """Check and compile one pipeline; raise PipelineConfigError with the location of the problem."""
    if not _PIPELINE_NAME.match(name):
        raise PipelineConfigError((), "a pipeline name is letters, digits, '_', '-' and '.'")
    inputs: list[str] = []
    for i, n in enumerate(cfg.inputs):
        if not _NAME.match(n) or n in _RESERVED or n in inputs:
            raise PipelineConfigError(("inputs", i), f"'{n}' is not a usable input name: a unique identifier, "
                                      "not 'input' (the request's last user message is always {{ input }})")
        inputs.append(n)
    all_names = {s.name for e in cfg.steps for s in (e.parallel or [e]) if s.name}
    visible: dict[str, OutputParser | None] = {"input": None, **dict.fromkeys(inputs)}
    taken = set(visible)
    blocks: list[tuple[Step, ...]] = []
    for i, entry in enumerate(cfg.steps):
        loc: tuple[Any, ...] = ("steps", i)
        if entry.parallel is not None:
            extra = entry.model_fields_set - {"parallel"}
            if extra:
                raise PipelineConfigError((*loc, sorted(extra)[0]), "a parallel block holds only `parallel:`, "
                                          "a list of steps; put this field on one of its steps")
            if not entry.parallel:
                raise PipelineConfigError((*loc, "parallel"), "list at least one step")
            before = dict(visible)  # siblings run at the same time: none can use another's output
            block = tuple(_step(s, (*loc, "parallel", j), before, taken, all_names, known_models)
                          for j, s in enumerate(entry.parallel))
        else:
            block = (_step(entry, loc, visible, taken, all_names, known_models),)
        for st in block:
            visible[st.name] = st.parser
        blocks.append(block)
    if cfg.output is not None:
        if cfg.output not in all_names:
            steps = ", ".join(sorted(all_names))
            raise PipelineConfigError(("output",), f"no step named '{cfg.output}'; steps: {steps}")
        output = cfg.output
    elif len(blocks[-1]) == 1:
        output = blocks[-1][0].name
    else:
        raise PipelineConfigError(("output",), "required when the last block is parallel: the name of the step "
                                  "whose output is the answer")
    return Pipeline(name=name, inputs=tuple(inputs), blocks=tuple(blocks), output=output,
                    description=cfg.description, budget_usd=cfg.budget_usd)


def _step(cfg: PipelineStepConfig, loc: tuple[Any, ...], visible: dict[str, OutputParser | None], taken: set[str],
          all_names: set[str], known: set[str] | frozenset[str]) -> Step:
    if cfg.parallel is not None:
        raise PipelineConfigError((*loc, "parallel"), "parallel blocks cannot be nested")
    if not cfg.name:
        raise PipelineConfigError((*loc, "name"), "required: the name later steps use as {{ name }}")
    name = cfg.name
    if not _NAME.match(name):
        raise PipelineConfigError((*loc, "name"), f"'{name}' is not a usable step name: letters, digits, '_' and "
                                  "'-', starting with a letter or '_'")
    if name in taken:
        raise PipelineConfigError((*loc, "name"), f"'{name}' is already used by an input or another step")
    taken.add(name)

    def known_model(value: str, where: tuple[Any, ...]) -> str:
        if value not in known:
            import difflib

            close = difflib.get_close_matches(value, sorted(known), n=3)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise PipelineConfigError(where, f"unknown model '{value}': use a deployment or model group{hint}")
        return value

    spec: Spec | None = None
    if cfg.ensemble is not None:
        if cfg.route is not None:
            raise PipelineConfigError((*loc, "ensemble"), "give either route or ensemble, not both")
        try:
            spec = parse_spec(cfg.ensemble)
        except SpecError as e:
            raise PipelineConfigError((*loc, "ensemble", *_field_loc(e.field)), e.message) from None
        for j, m in enumerate(spec.models):
            known_model(m, (*loc, "ensemble", "models", j))
        for key in ("judge", "aggregator"):
            if getattr(spec, key):
                known_model(getattr(spec, key), (*loc, "ensemble", key))
        if not spec.models and not cfg.model:
            raise PipelineConfigError((*loc, "ensemble", "models"), "required unless the step names a model group")
    route: StepRoute | None = None
    if cfg.route is not None:
        if cfg.model is not None:
            raise PipelineConfigError((*loc, "route"), "give either model or route, not both")
        try:
            on = parse_ref(cfg.route.by)
        except TemplateError as e:
            raise PipelineConfigError((*loc, "route", "by"), str(e)) from None
        _check_ref(on, visible, all_names, (*loc, "route", "by"))
        cases = {k.strip().casefold(): known_model(v, (*loc, "route", "cases", k)) for k, v in cfg.route.cases.items()}
        route = StepRoute(on, cases, known_model(cfg.route.default, (*loc, "route", "default")))
    if cfg.model is not None:
        known_model(cfg.model, (*loc, "model"))
    elif route is None and spec is None:
        raise PipelineConfigError((*loc, "model"), "required: the model or group that runs this step "
                                  "(or `route:` to pick one from an earlier output, or `ensemble:`)")
    if not cfg.prompt:
        raise PipelineConfigError((*loc, "prompt"), "required: the message sent to the model, e.g. '{{ input }}'")
    templates: dict[str, Template] = {}
    for key in ("system", "prompt"):
        source = getattr(cfg, key)
        if source is None:
            continue
        try:
            t = compile_template(source)
        except TemplateError as e:
            raise PipelineConfigError((*loc, key), str(e)) from None
        for ref in t.refs:
            _check_ref(ref, visible, all_names, (*loc, key))
        templates[key] = t
    kind = cfg.parse or ("json" if cfg.schema_ is not None else "text")
    pattern = None
    if kind == "regex":
        if not cfg.pattern:
            raise PipelineConfigError((*loc, "pattern"), "required with parse: regex (group 1, or named groups, "
                                      "is the output)")
        try:
            pattern = re.compile(cfg.pattern)
        except re.error as e:
            raise PipelineConfigError((*loc, "pattern"), f"not a valid regular expression: {e}") from None
    elif cfg.pattern is not None:
        raise PipelineConfigError((*loc, "pattern"), "only used with parse: regex")
    rf = None
    if cfg.schema_ is not None:
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
        rf = {"type": "json_schema", "json_schema": {"name": safe, "schema": cfg.schema_}}
    return Step(name=name, model=cfg.model, route=route, ensemble=spec, system=templates.get("system"),
                prompt=templates["prompt"], parser=OutputParser(kind, pattern), optional=cfg.optional,
                temperature=cfg.temperature, max_tokens=cfg.max_tokens, response_format=rf)


def _field_loc(field_path: str) -> tuple[Any, ...]:
    m = re.fullmatch(r"(\w+)\[(\d+)\]", field_path)
    return (m.group(1), int(m.group(2))) if m else (field_path,)


def _check_ref(ref: Ref, visible: dict[str, OutputParser | None], all_names: set[str], loc: tuple[Any, ...]) -> None:
    if ref.root not in visible:
        if ref.root in all_names:
            raise PipelineConfigError(loc, f"'{ref.root}' is not available here: a step may use the inputs and the "
                                      "steps before it (not later steps, not steps of its own parallel block)")
        raise PipelineConfigError(loc, f"unknown variable '{ref.root}'; available here: {', '.join(visible)}")
    if not ref.path:
        return
    parser = visible[ref.root]
    if parser is None:
        raise PipelineConfigError(loc, f"'{ref.root}' is text and has no fields: use {{{{ {ref.root} }}}}")
    fields = parser.fields
    if fields is None:
        return
    if not fields:
        raise PipelineConfigError(loc, f"step '{ref.root}' outputs text (parse: {parser.kind}), so "
                                  f"'{ref.text}' has nothing to read: use {{{{ {ref.root} }}}}, or parse its "
                                  "output as json or with a regex that has named groups")
    if ref.path[0] not in fields:
        raise PipelineConfigError(loc, f"step '{ref.root}' has no field '{ref.path[0]}'; its pattern's named "
                                  f"groups: {', '.join(sorted(fields))}")


def compile_pipelines(pipelines: dict[str, PipelineConfig], known_models: set[str]) -> dict[str, Pipeline]:
    """`pipeline/<name>` -> Pipeline, for the gateway's dispatch (config was validated on load)."""
    return {PREFIX + name: compile_pipeline(name, p, known_models) for name, p in pipelines.items()}
