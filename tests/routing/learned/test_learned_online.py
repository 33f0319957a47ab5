"""Online learning outlives the process and reaches other workers: feedback sent to one gateway
teaches a second gateway sharing its database (at its next poll) and a gateway started afterwards
(at start-up), because the feedback table, not process memory, is the record."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from learnkit import synthetic
from test_learned_gateway import _chat, _config

from conftest import make_server
from modelyard.routing.learned.online import POLL_S
from modelyard.routing.learned.train import fit_router

NOVEL = "hello there friend, what colour is my cat on a sunny day"


def test_feedback_teaches_other_gateways_on_the_same_database_and_survives_a_restart(tmp_path: Path) -> None:
    router = tmp_path / "knn.npz"
    fit_router("knn", synthetic(), strong="strong", weak="weak", backend="hash-ngram-v1", params={"k": 10}).save(router)
    opts = {"router_file": str(router), "threshold": 0.3, "models": {"sim/frontier": "strong", "sim/fast": "weak"}}
    with make_server(tmp_path, _config(tmp_path, opts)) as a, make_server(tmp_path, _config(tmp_path, opts)) as b:
        assert _chat(a.url, "routed", NOVEL).headers["x-modelyard-deployment"] == "sim/fast"
        assert _chat(b.url, "routed", NOVEL).headers["x-modelyard-deployment"] == "sim/fast"
        rid = _chat(a.url, "routed", NOVEL).headers["x-request-id"]
        for _ in range(7):  # the weak model fails on this prompt
            r = httpx.post(f"{a.url}/v1/feedback", json={"request_id": rid, "score": 0.0, "prompt": NOVEL}, timeout=10)
            assert r.status_code == 200 and r.json()["learned_by"] == 1, r.text
        assert _chat(a.url, "routed", NOVEL).headers["x-modelyard-deployment"] == "sim/frontier"
        deadline = time.monotonic() + POLL_S + 5
        while _chat(b.url, "routed", NOVEL).headers["x-modelyard-deployment"] != "sim/frontier":
            assert time.monotonic() < deadline, "the second gateway never read the feedback table"
            time.sleep(0.5)
    with make_server(tmp_path, _config(tmp_path, opts)) as c:  # a restart: learned at start-up
        assert _chat(c.url, "routed", NOVEL).headers["x-modelyard-deployment"] == "sim/frontier"
