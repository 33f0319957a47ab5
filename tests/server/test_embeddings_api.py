"""POST /v1/embeddings through the official openai SDK against the real server: fake upstreams
speaking OpenAI's /embeddings and Gemini's batchEmbedContents, a failing one to fall back from, and
the local MiniLM (when the learned extra is installed); cost from the card, one log row each."""

from __future__ import annotations

import asyncio
import base64
import math
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from conftest import ServerThread, make_server


def _vec(text: str, dim: int) -> list[float]:
    return [((hash((text, i)) % 1000) - 500) / 500 for i in range(dim)]


class FakeEmbedders:
    """OpenAI /v1/embeddings, Gemini /v1beta/models/{m}:batchEmbedContents, and a /down/ that answers 503."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(5)

    async def openai(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("openai", body))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dim = body.get("dimensions") or 8
        data = [{"object": "embedding", "index": i, "embedding": _vec(str(t), dim)} for i, t in enumerate(inputs)]
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}})

    async def gemini(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append(("gemini", body))
        out = [{"values": _vec(r["content"]["parts"][0]["text"], r.get("outputDimensionality") or 6)}
               for r in body["requests"]]
        return web.json_response({"embeddings": out})

    async def down(self, request: web.Request) -> web.Response:
        self.seen.append(("down", await request.json()))
        return web.json_response({"error": {"message": "overloaded", "type": "server_error"}}, status=503)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/embeddings", self.openai)
        app.router.add_post("/v1beta/models/{model}:batchEmbedContents", self.gemini)
        app.router.add_post("/down/embeddings", self.down)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self.loop.run_forever()


def _minilm() -> bool:
    from modelyard.embed.backends import available

    return available()


@pytest.fixture(scope="module")
def fake() -> FakeEmbedders:
    return FakeEmbedders()


@pytest.fixture(scope="module")
def gw_server(tmp_path_factory: pytest.TempPathFactory, fake: FakeEmbedders) -> Iterator[ServerThread]:
    base = f"http://127.0.0.1:{fake.port}"
    deployments: dict[str, Any] = {
        "oa-small": {"provider": "openai", "model": "text-embedding-3-small", "api_base": base + "/v1",
                     "api_key": "env:EMB_TEST_OPENAI_KEY"},
        "down": {"provider": "openai", "model": "text-embedding-3-large", "api_base": base + "/down"},
        "gem": {"provider": "gemini", "model": "gemini-embedding-001", "api_base": base + "/v1beta",
                "api_key": "env:EMB_TEST_GEMINI_KEY"},
        "sim/fast": {"provider": "sim", "model": "sim/fast"},
    }
    groups: dict[str, Any] = {"embed": {"deployments": ["down", "oa-small"]},
                              "chat-only": {"deployments": ["sim/fast"]}}
    if _minilm():
        deployments["local/minilm"] = {"provider": "local", "model": "minilm"}
    config = {"deployments": deployments, "model_groups": groups,
              "resilience": {"retry": {"max_attempts": 3, "backoff_base_s": 0.01}}}
    os.environ["EMB_TEST_OPENAI_KEY"], os.environ["EMB_TEST_GEMINI_KEY"] = "sk-test-embeddings-123", "gemini-test-key-1"
    try:
        with make_server(tmp_path_factory.mktemp("emb"), config) as s:
            yield s
    finally:
        del os.environ["EMB_TEST_OPENAI_KEY"], os.environ["EMB_TEST_GEMINI_KEY"]


def client(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_float_through_a_group_with_fallback_costed_and_logged(gw_server: ServerThread, fake: FakeEmbedders) -> None:
    raw = client(gw_server).embeddings.with_raw_response.create(model="embed", input=["a cat", "a dog"],
                                                                encoding_format="float")
    r = raw.parse()
    assert [d.index for d in r.data] == [0, 1]
    assert r.data[0].embedding == pytest.approx(_vec("a cat", 8), rel=1e-6)
    assert r.usage.prompt_tokens == 6 and r.model == "text-embedding-3-small"
    assert raw.headers["x-modelyard-deployment"] == "oa-small"
    assert raw.headers["x-modelyard-fallbacks"].startswith("down")
    assert float(raw.headers["x-modelyard-cost-usd"]) == pytest.approx(6 * 0.02 / 1e6)
    assert ("down", {"model": "text-embedding-3-large", "input": ["a cat", "a dog"], "encoding_format": "float"}) \
        in fake.seen
    rid = raw.headers["x-request-id"]
    path = gw_server.server.config.app.gateway.request_log.path
    for _ in range(100):  # the log writes in batches, every 0.5 s
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT api, deployment, input_tokens, cost_usd, status FROM requests WHERE id = ?",
                             (rid,)).fetchone()
        if row:
            break
        time.sleep(0.05)
    assert row == ("embeddings", "oa-small", 6, pytest.approx(6 * 0.02 / 1e6), 200)


def test_base64_and_dimensions(gw_server: ServerThread) -> None:
    r = httpx.post(gw_server.url + "/v1/embeddings", json={"model": "oa-small", "input": "hello",
                                                             "encoding_format": "base64", "dimensions": 4})
    assert r.status_code == 200, r.text
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert list(struct.unpack("<4f", raw)) == pytest.approx(_vec("hello", 4), rel=1e-6)
    # the SDK's default (base64, decoded by the SDK) gives the same floats
    sdk = client(gw_server).embeddings.create(model="oa-small", input="hello", dimensions=4)
    assert sdk.data[0].embedding == pytest.approx(_vec("hello", 4), rel=1e-6)


def test_token_arrays_go_to_openai_format_upstreams(gw_server: ServerThread, fake: FakeEmbedders) -> None:
    r = client(gw_server).embeddings.create(model="oa-small", input=[[1, 2, 3], [4, 5]], encoding_format="float")
    assert len(r.data) == 2
    assert fake.seen[-1][1]["input"] == [[1, 2, 3], [4, 5]]


def test_gemini_batch_embed(gw_server: ServerThread, fake: FakeEmbedders) -> None:
    r = client(gw_server).embeddings.create(model="gem", input=["one", "two", "three"], encoding_format="float",
                                            dimensions=6)
    assert [len(d.embedding) for d in r.data] == [6, 6, 6]
    assert r.data[2].embedding == pytest.approx(_vec("three", 6), rel=1e-6)
    kind, body = fake.seen[-1]
    assert kind == "gemini" and body["requests"][0]["model"] == "models/gemini-embedding-001"
    assert r.usage.prompt_tokens > 0


@pytest.mark.skipif(not _minilm(), reason="the local MiniLM needs the learned extra (make dev installs it)")
def test_local_minilm(gw_server: ServerThread) -> None:
    raw = client(gw_server).embeddings.with_raw_response.create(
        model="local/minilm", input=["The cat sat on the mat.", "A cat was sitting on a rug.", "Stock prices fell."])
    r = raw.parse()
    v = [d.embedding for d in r.data]
    assert all(len(x) == 384 for x in v)
    assert math.isclose(sum(x * x for x in v[0]), 1.0, rel_tol=1e-3)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.2  # real sentence embeddings
    assert r.usage.prompt_tokens > 10 and float(raw.headers["x-modelyard-cost-usd"]) == 0.0


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "oa-small"}, "input"),
    ({"model": "oa-small", "input": ""}, "input"),
    ({"model": "oa-small", "input": ["a", 3]}, "input[0]"),
    ({"model": "oa-small", "input": "a", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "oa-small", "input": "a", "dimensions": 0}, "dimensions"),
    ({"model": "oa-small", "input": "a", "bogus": 1}, "bogus"),
    ({"model": "chat-only", "input": "a"}, "model"),
    ({"model": "gem", "input": [[1, 2]]}, "input"),
])
def test_bad_requests_name_the_field(gw_server: ServerThread, body: dict[str, Any], param: str) -> None:
    r = httpx.post(gw_server.url + "/v1/embeddings", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert "sk-test" not in r.text and "gemini-test-key" not in r.text
