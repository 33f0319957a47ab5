"""Operator caps (`resilience.caps`): per-request `max_attempts` and `timeout_s` overrides above the
cap are 400s naming the field and the cap; at or below it they apply; the route's own settings are not capped."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard.errors import BadRequest, ConfigError
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message

DEPS = {n: {"provider": "sim", "model": "sim/fast"} for n in ("a", "b")}


def gw(caps: dict[str, Any] | None = None, group: dict[str, Any] | None = None) -> Gateway:
    data: dict[str, Any] = {"deployments": DEPS, "model_groups": {"g": {"deployments": ["a", "b"], **(group or {})}}}
    if caps is not None:
        data["resilience"] = {"caps": caps}
    return Gateway(parse_config(data, "r.yaml"), request_log=False)


def req(**metadata: Any) -> ChatRequest:
    return ChatRequest(model="g", messages=[Message("user", "hi")], metadata=metadata)


def test_default_caps_refuse_what_clients_could_ask_for_before() -> None:
    g = gw()
    with pytest.raises(BadRequest) as e:
        g.resilience.policy("g", req(max_attempts=20))
    assert e.value.param == "metadata.max_attempts"
    assert e.value.message == ("metadata.max_attempts: must be an integer from 1 to 5 "
                               "(resilience.caps.max_attempts), got 20")
    with pytest.raises(BadRequest) as e:
        g.resilience.policy("g", req(timeout_s=86400))
    assert e.value.param == "metadata.timeout_s"
    assert e.value.message == ("metadata.timeout_s: 86400 s is above this gateway's cap of 600 s "
                               "(resilience.caps.max_timeout_s)")


def test_overrides_up_to_the_cap_apply() -> None:
    g = gw({"max_attempts": 8, "max_timeout_s": 30})
    p = g.resilience.policy("g", req(max_attempts=8, timeout_s=30))
    assert p.retry.max_attempts == 8 and p.timeout_s == 30
    with pytest.raises(BadRequest, match=r"from 1 to 8 \(resilience.caps.max_attempts\), got '9'"):
        g.resilience.policy("g", req(max_attempts="9"))
    with pytest.raises(BadRequest, match="cap of 30 s"):
        g.resilience.policy("g", req(timeout_s="30.5"))


def test_the_routes_own_settings_are_not_capped() -> None:
    g = gw({"max_attempts": 2, "max_timeout_s": 5}, group={"retry": {"max_attempts": 6}, "timeout_s": 60})
    p = g.resilience.policy("g", req())
    assert p.retry.max_attempts == 6 and p.timeout_s == 60


@pytest.mark.parametrize(("caps", "field"), [
    ({"max_attempts": 0}, "resilience.caps.max_attempts"), ({"max_attempts": 21}, "resilience.caps.max_attempts"),
    ({"max_timeout_s": 0}, "resilience.caps.max_timeout_s"), ({"max_calls": 0}, "resilience.caps.max_calls"),
    ({"max_fanout": 3}, "resilience.caps.max_fanout"),
])
def test_bad_caps_are_config_errors_naming_the_field(caps, field) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"resilience": {"caps": caps}}, "r.yaml")
    assert field in str(e.value)
