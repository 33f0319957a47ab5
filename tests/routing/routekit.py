"""Helpers for the routing tests: gateways from small config dicts, requests, chains."""

from __future__ import annotations

from typing import Any

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message


def sim(card: str, **kw: Any) -> dict[str, Any]:
    """A sim deployment wearing `card` (prices, window, capabilities, priors)."""
    return {"provider": "sim", "model": card, "card": card, **kw}


FLEET = {"frontier": sim("sim/frontier"), "balanced": sim("sim/balanced"), "fast": sim("sim/fast"),
         "local": sim("sim/local")}


def gateway(groups: dict[str, Any], deployments: dict[str, Any] | None = None, **kw: Any) -> Gateway:
    cfg = parse_config({"deployments": deployments or FLEET, "model_groups": groups}, "t.yaml")
    return Gateway(cfg, source="t.yaml", request_log=False, **kw)


def group(strategy: str, options: dict[str, Any] | None = None, deps: list[str] | None = None) -> dict[str, Any]:
    return {"g": {"deployments": deps or list(FLEET), "strategy": strategy, "options": options or {}}}


def req(text: str = "hello there", **kw: Any) -> ChatRequest:
    return ChatRequest(model=kw.pop("model", "g"), messages=[Message("user", text)], **kw)


def chain(gw: Gateway, r: ChatRequest | None = None, model: str = "g") -> list[str]:
    c, _ = gw.plan(gw.resolve(model), r or req(model=model))
    return [d.name for d in c]


def decide(gw: Gateway, r: ChatRequest | None = None, model: str = "g"):
    return gw.plan(gw.resolve(model), r or req(model=model))
