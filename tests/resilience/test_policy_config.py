"""Resilience config: validation, group overrides, and per-request overrides in metadata."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import BadRequest, ConfigError
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message

DEPS = {n: {"provider": "sim", "model": "sim/fast"} for n in ("a", "b", "c")}


def gw(groups: dict[str, Any], resilience: dict[str, Any] | None = None, **deps: Any) -> Gateway:
    data: dict[str, Any] = {"deployments": {**DEPS, **deps}, "model_groups": groups}
    if resilience is not None:
        data["resilience"] = resilience
    return Gateway(parse_config(data, "r.yaml"), request_log=False)


def req(**metadata: Any) -> ChatRequest:
    return ChatRequest(model="g", messages=[Message("user", "hi")], metadata=metadata)


@pytest.mark.parametrize("kind", ["fallbacks", "rate_limit_fallbacks", "context_window_fallbacks",
                                  "content_policy_fallbacks"])
def test_unknown_fallback_names_are_config_errors_naming_the_field(kind) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"deployments": DEPS, "model_groups": {"g": {"deployments": ["a"], kind: ["a", "nope"]}}},
                     "r.yaml")
    assert str(e.value) == f"r.yaml: model_groups.g.{kind}[1]: unknown group or deployment 'nope'"


def test_bad_resilience_values_name_the_field() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"resilience": {"retry": {"max_attempts": 0}}}, "r.yaml")
    assert "resilience.retry.max_attempts" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"resilience": {"retry": {"retries": {"teapot": 1}}}}, "r.yaml")
    assert "resilience.retry.retries.teapot" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"deployments": {"a": {**DEPS["a"], "idle_timeout_s": 0}}}, "r.yaml")
    assert "deployments.a.idle_timeout_s" in str(e.value)


def test_group_settings_override_only_what_they_set() -> None:
    g = gw({"g": {"deployments": ["a", "b"], "fallbacks": ["c"], "retry": {"max_attempts": 5}, "timeout_s": 9,
                  "context_window_fallbacks": ["c"], "hedge": {"delay_s": 0.2}}},
           resilience={"retry": {"backoff_base_s": 0.5}, "hedge": {"budget_pct": 30}})
    p = g.resilience.policy("g", req())
    assert p.retry.max_attempts == 5 and p.retry.backoff_base_s == 0.5 and p.timeout_s == 9
    assert [d.name for d in p.context_window_fallbacks] == ["c"] and p.drop == {"c"}
    assert p.hedge is not None and p.hedge.delay_s == 0.2 and p.hedge.budget_pct == 30
    direct = g.resilience.policy("a", req())
    assert direct.retry.max_attempts == 3 and direct.hedge is None and direct.timeout_s == 600


def test_requests_without_overrides_share_the_prebuilt_policy() -> None:
    g = gw({"g": {"deployments": ["a"]}})
    p = g.resilience.policy("g", req())
    assert g.resilience.policy("g", req()) is p
    assert g.resilience.policy("g", req(user_tag="x")) is p  # unrelated metadata


def test_request_overrides() -> None:
    g = gw({"g": {"deployments": ["a"], "fallbacks": ["b"]}})
    p = g.resilience.policy("g", req(timeout_s="2.5", max_attempts="2", fallbacks="b, c", mode="hedge"))
    assert p.timeout_s == 2.5 and p.retry.max_attempts == 2 and p.hedge is not None
    assert [d.name for d in p.fallbacks or ()] == ["b", "c"]
    assert g.resilience.policy("g", req(fallbacks=["g"])).fallbacks == (g.deployments["a"],)  # a group expands
    assert g.resilience.policy("g", req(mode="single")).hedge is None


@pytest.mark.parametrize(("metadata", "field"), [
    ({"timeout_s": 0}, "metadata.timeout_s"), ({"timeout_s": True}, "metadata.timeout_s"),
    ({"timeout_s": "inf"}, "metadata.timeout_s"), ({"max_attempts": 0}, "metadata.max_attempts"),
    ({"max_attempts": 2.5}, "metadata.max_attempts"), ({"fallbacks": [1]}, "metadata.fallbacks"),
    ({"fallbacks": ["a", "zzz"]}, "metadata.fallbacks[1]"),
    ({"content_policy_fallbacks": ["zzz"]}, "metadata.content_policy_fallbacks[0]"),
])
def test_bad_request_overrides_are_400s_naming_the_field(metadata, field) -> None:
    g = gw({"g": {"deployments": ["a"]}})
    with pytest.raises(BadRequest) as e:
        g.resilience.policy("g", req(**metadata))
    assert e.value.message.startswith(field + ":")
