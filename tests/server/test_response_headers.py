"""The gateway's response headers (server/app.py): the model, deployment and route of every answer,
whichever way the same deployment was reached (the app builds them once per combination)."""

from __future__ import annotations

from typing import Any

import httpx

MSGS = [{"role": "user", "content": "hi"}]


def chat(server: Any, model: str) -> httpx.Response:
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": model, "messages": MSGS}, timeout=10)
    assert r.status_code == 200, r.text
    return r


def test_a_deployment_reached_directly_and_through_its_group_says_which_way_each_time(server) -> None:
    models = httpx.get(server.url + "/v1/models", timeout=10).json()["data"]
    group = next(m for m in models if m["modelyard"]["type"] == "group")
    for _ in range(2):  # (the second round from the app's built headers)
        via_group = chat(server, group["id"]).headers
        dep = via_group["x-modelyard-deployment"]
        assert dep in group["modelyard"]["deployments"]
        assert via_group["x-modelyard-route"] not in ("", "direct")
        direct = chat(server, dep).headers
        assert direct["x-modelyard-deployment"] == dep and direct["x-modelyard-route"] == "direct"
        assert direct["x-modelyard-model"] == via_group["x-modelyard-model"] != ""
        for h in (via_group, direct):
            assert h["x-request-id"] and h["content-type"] == "application/json"
            assert float(h["x-modelyard-cost-usd"]) >= 0 and float(h["x-modelyard-latency-ms"]) >= 0
