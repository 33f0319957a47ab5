"""Load a configuration that can run: the shapes (config.py) plus the checks that need the subsystems —
group members and fallbacks exist, strategy options fit their strategy (routing/validate.py),
pipelines compile (modes/pipeline.py), and there is something to serve.

config.py knows no subsystem; this module sits above it and above routing/ and execution/, so the
dependency runs one way. Every problem is reported at once, one `file: field: message` line each.

    config = load_config("config.yaml")          # file → Config, or ConfigError listing every problem
    config = parse_config(data, "config.yaml")   # an already parsed document
    check_config(config, "<Config>")             # a Config built in code
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import Config, Problem, format_loc, parse_shapes, read_yaml
from .errors import ConfigError

_KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FALLBACK_KINDS = ("fallbacks", "rate_limit_fallbacks", "context_window_fallbacks", "content_policy_fallbacks")
EMPTY = ("deployments", "no deployments: add at least one, e.g.\n"
         "  deployments:\n"
         "    gpt-4o-mini: {provider: openai, model: gpt-4o-mini, api_key: env:OPENAI_API_KEY}\n"
         "  or run without --config for the embedded defaults (the simulated fleet plus a deployment "
         "per provider key in the environment)")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate, validate and cross-check a YAML config file."""
    from .catalog.importer import merge_catalog_files

    return parse_config(merge_catalog_files(read_yaml(path), Path(path).parent), str(path), environ)


def parse_config(data: Any, file: str = "<config>", environ: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed YAML document and cross-check it; one ConfigError lists every problem."""
    try:
        config = parse_shapes(data, file, environ)
    except ConfigError as e:
        problems = list(e.problems)
        if isinstance(data, dict) and not data.get("deployments") and EMPTY not in problems:
            problems.append(EMPTY)
        raise ConfigError.from_problems(file, problems) from None
    check_config(config, file)
    return config


def check_config(config: Config, file: str = "<config>") -> None:
    """Raise one ConfigError with every cross-reference problem of `config` (none: return)."""
    problems = config_problems(config)
    if problems:
        raise ConfigError.from_problems(file, problems)


def config_problems(config: Config) -> list[Problem]:
    """Every cross-reference problem, in the order of the file's sections."""
    if not config.deployments:
        return [EMPTY]
    return [*_group_problems(config), *_pipeline_problems(config), *_key_problems(config),
            *_experiment_problems(config), *_cache_state_problems(config)]


def _cache_state_problems(config: Config) -> list[Problem]:
    """`cache.backend: redis` needs a Redis: its own `cache.url` or a redis:// `state`."""
    c = config.cache
    if c.url is not None and not c.url.startswith(("redis://", "rediss://")):
        return [("cache.url", "must be a Redis URL (redis://host:6379/0, rediss://…)")]
    if c.backend == "redis" and c.url is None and not config.state.shared:
        return [("cache.backend", "redis needs a Redis: set cache.url, or state: redis://host:6379/0")]
    return []


def _group_problems(config: Config) -> list[Problem]:
    from .routing.validate import check_group

    out: list[Problem] = []
    members = {g: c.deployments for g, c in config.model_groups.items()}
    for gname, group in config.model_groups.items():
        where = ("model_groups", gname)
        if gname in config.deployments:
            out.append((format_loc(where), f"'{gname}' is also a deployment name"))
        unknown = False
        for i, d in enumerate(group.deployments):
            if d not in config.deployments:
                unknown = True
                out.append((format_loc((*where, "deployments", i)),
                            f"unknown deployment '{d}'" + _choices(d, config.deployments)))
        for kind in _FALLBACK_KINDS:
            for i, f in enumerate(getattr(group, kind)):
                if f not in config.deployments and f not in config.model_groups:
                    out.append((format_loc((*where, kind, i)), f"unknown group or deployment '{f}'"))
        if unknown:  # the strategy's own checks assume its members exist
            continue
        problem = check_group(gname, group.strategy, group.options, group.deployments, config.deployments, members)
        if problem is not None:
            out.append((format_loc((*where, *problem[0])), problem[1]))
    return out


def _pipeline_problems(config: Config) -> list[Problem]:
    if not config.pipelines:
        return []
    from .modes.pipeline import PipelineConfigError, compile_pipeline

    out: list[Problem] = []
    known = set(config.deployments) | set(config.model_groups)
    for name, p in config.pipelines.items():  # templates, references and models: now, not at request time
        try:
            compile_pipeline(name, p, known)
        except PipelineConfigError as e:
            out.append((format_loc(("pipelines", name, *e.loc)), e.message))
    return out


def _key_problems(config: Config) -> list[Problem]:
    """`keys:` entries: named (list form), names unique and usable as ids, models that exist."""
    out: list[Problem] = []
    known = {*config.deployments, *config.model_groups, *(f"pipeline/{p}" for p in config.pipelines)}
    seen: set[str] = set()
    for i, (name, k) in enumerate(config.declared_keys()):
        where = ("keys", name) if isinstance(config.keys, dict) else ("keys", i)
        if isinstance(config.keys, list) and not k.name:
            out.append((format_loc((*where, "name")), "a key in the list form needs a name"))
        elif not _KEY_NAME.fullmatch(name):
            out.append((format_loc(where), f"key name '{name}' may use letters, digits, '.', '_' and '-' only"))
        elif name in seen:
            out.append((format_loc(where), f"a second key named '{name}'"))
        seen.add(name)
        for j, m in enumerate(k.models or ()):
            if m not in known:
                out.append((format_loc((*where, "models", j)),
                            f"unknown model '{m}'" + _choices(m, dict.fromkeys(known))))
    return out


def _experiment_problems(config: Config) -> list[Problem]:
    if not config.experiments:
        return []
    from .experiments.check import experiment_problems

    return experiment_problems(config)


def _choices(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
