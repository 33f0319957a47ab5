"""Config-time checks of a model group's routing settings (called from config.py while parsing),
so a wrong strategy name, option, rule condition or target is reported as
`file: model_groups.<group>.<field>: ...` before anything starts.

A group's `options:` mixes group-level constraints, which every strategy honours (they become
candidate filters), with the strategy's own options; `split_options` separates them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .strategies import ConfigNames, StrategyConfigError, lookup
from .strategies.base import VALIDATORS, known_strategies, plugin_errors
from .strategies.util import Options, parse_options


class GroupConstraints(Options):
    min_quality: float | None = Field(None, ge=0, le=1)  # for the request's task (card prior / overrides)
    max_cost_usd: float | None = Field(None, ge=0)  # expected cost of one request
    max_latency_ms: float | None = Field(None, gt=0)  # expected time to the whole reply
    tags: list[str] = []  # deployments must carry all of these
    exact_tokens: bool = False  # count prompts with tiktoken (OpenAI-family encodings; `tokens` extra)


COMMON = frozenset(GroupConstraints.model_fields)


def split_options(options: dict[str, Any]) -> tuple[GroupConstraints, dict[str, Any]]:
    """(group constraints, the strategy's own options)."""
    common = parse_options(GroupConstraints, {k: v for k, v in options.items() if k in COMMON})
    return common, {k: v for k, v in options.items() if k not in COMMON}


def check_group(group: str, strategy: str, options: dict[str, Any], deployments: list[str],
                all_deployments: set[str] | dict[str, Any],
                groups: dict[str, list[str]]) -> tuple[tuple[Any, ...], str] | None:
    """None when fine, else (location under the group, message)."""
    if lookup(strategy) is None:
        errs = plugin_errors()
        extra = f" ({'; '.join(errs)})" if errs else ""
        return ("strategy",), f"unknown strategy '{strategy}'; one of: {', '.join(known_strategies())}{extra}"
    try:
        _, own = split_options(options)
        validate = VALIDATORS.get(strategy)
        if validate is not None:
            validate(own, ConfigNames(group=group, group_deployments=tuple(deployments),
                                      deployments=frozenset(all_deployments),
                                      groups={g: tuple(d) for g, d in groups.items()}))
    except StrategyConfigError as e:
        return ("options", *e.loc), e.msg
    return None
