"""Config-time checks of the `experiments:` section (called by loader.py), so a wrong group, variant,
deployment, strategy option or split is reported as `file: experiments.<name>.<field>: ...` before
anything starts — every problem at once, like the rest of the config."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config, ExperimentConfig, Problem

CONTROL = "control"
# names travel in a response header and a log column as `name=variant`: keep them plain
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def experiment_problems(config: Config) -> list[Problem]:
    """Every problem of the config's experiments, in file order."""
    out: list[Problem] = []
    owner: dict[str, str] = {}  # group -> the enabled experiment that splits it
    for name, exp in config.experiments.items():
        where = f"experiments.{name}"
        if not NAME.fullmatch(name):
            out.append((where, "experiment names are letters, digits, '_', '.', '-' (at most 64; they go "
                               "into the x-modelyard-experiment header)"))
        out += _group_problems(config, name, exp, owner)
        out += _variant_problems(config, name, exp)
        out += _split_problems(name, exp)
        if exp.metric == "judge" and exp.judge is None:
            out.append((f"{where}.judge", "metric 'judge' needs judge scoring: judge: {model: <group or "
                                          "deployment>, sample_pct: 10}"))
        if exp.judge is not None and exp.judge.model not in config.model_groups \
                and exp.judge.model not in config.deployments:
            out.append((f"{where}.judge.model", f"unknown group or deployment '{exp.judge.model}'"
                        + _close(exp.judge.model, [*config.model_groups, *config.deployments])))
        if not config.server.request_log.enabled:
            out.append((where, "experiments are measured from the request log, which is disabled "
                               "(server.request_log.enabled: false)"))
    return out


def _group_problems(config: Config, name: str, exp: ExperimentConfig, owner: dict[str, str]) -> list[Problem]:
    where = f"experiments.{name}.group"
    if exp.group not in config.model_groups:
        hint = " (experiments split a model group, not a deployment)" if exp.group in config.deployments \
            else _close(exp.group, config.model_groups)
        return [(where, f"unknown model group '{exp.group}'{hint}")]
    if exp.enabled and exp.group in owner:
        return [(where, f"group '{exp.group}' is already split by experiment '{owner[exp.group]}'; one enabled "
                        "experiment per group (set enabled: false on the other)")]
    if exp.enabled:
        owner[exp.group] = name
    return []


def _variant_problems(config: Config, name: str, exp: ExperimentConfig) -> list[Problem]:
    from ..routing.validate import check_group

    out: list[Problem] = []
    if CONTROL not in exp.variants:
        out.append((f"experiments.{name}.variants", f"needs a '{CONTROL}' variant: the baseline the others are "
                                                    "compared with ('control: {}' is the group as configured)"))
    group = config.model_groups.get(exp.group)
    members = {g: c.deployments for g, c in config.model_groups.items()}
    for vname, v in exp.variants.items():
        where = f"experiments.{name}.variants.{vname}"
        if not NAME.fullmatch(vname):
            out.append((where, "variant names are letters, digits, '_', '.', '-' (at most 64)"))
        unknown = False
        for i, d in enumerate(v.deployments or ()):
            if d not in config.deployments:
                unknown = True
                out.append((f"{where}.deployments[{i}]", f"unknown deployment '{d}'" + _close(d, config.deployments)))
        if unknown or group is None:
            continue
        strategy = v.strategy or group.strategy
        options = v.options if v.options is not None else (group.options if v.strategy is None else {})
        problem = check_group(exp.group, strategy, options, v.deployments or group.deployments, config.deployments,
                              members)
        if problem is not None:
            loc, msg = problem
            field = ".".join(str(p) for p in loc)
            if v.strategy is None and loc and loc[0] == "strategy":
                field = "deployments"  # the group's strategy does not fit the variant's deployments
            out.append((f"{where}.{field}", msg))
    return out


def _split_problems(name: str, exp: ExperimentConfig) -> list[Problem]:
    where = f"experiments.{name}.split"
    out: list[Problem] = []
    for vname, pct in exp.split.items():
        if vname not in exp.variants:
            out.append((f"{where}.{vname}", f"unknown variant '{vname}'; variants: {', '.join(exp.variants)}"))
        elif not 0 <= pct <= 100:
            out.append((f"{where}.{vname}", f"must be a percentage from 0 to 100, got {pct:g}"))
    if exp.split:
        total = sum(exp.split.values())
        if total > 100:
            out.append((where, f"shares add up to {total:g}%; at most 100"))
        missing = [v for v in exp.variants if v != CONTROL and v not in exp.split]
        if missing:
            out.append((where, f"variant {', '.join(repr(m) for m in missing)} has no share: give it a percentage "
                               "(control gets what the others leave)"))
    return out


def _close(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
