"""The Python API runs the same pipeline as the server."""

from __future__ import annotations

from typing import Any

import pytest

import modelyard
from modelyard.errors import BadRequest, NotFound


def test_sync_client_chat_and_stream() -> None:
    with modelyard.Client(sim_only=True) as client:
        r = client.chat("What is the capital of Italy?", model="smart")
        assert r.text and r.deployment == "sim/frontier" and r.cost_usd > 0
        assert r.decision is not None and r.decision.model == "smart"
        chunks = list(client.stream("What is the capital of Italy?", model="smart"))
        assert "".join(c.text or "" for c in chunks) == r.text
        assert chunks[-1].usage is not None and chunks[-1].usage.output_tokens == r.usage.output_tokens


async def test_async_client_messages_and_params() -> None:
    async with modelyard.AsyncClient(sim_only=True) as client:
        r = await client.chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}],
                              model="fast", max_tokens=5, temperature=0.1)
        assert r.usage.output_tokens <= 5
        with pytest.raises(BadRequest, match="temperature"):
            await client.chat("x", model="fast", temperature="hot")
        with pytest.raises(NotFound):
            await client.chat("x", model="missing")


# --- the library surface -----------------------------------------------------------------------

def test_package_exports_clients_types_and_every_error_class() -> None:
    import inspect

    from modelyard import errors, types

    for name in ("Client", "AsyncClient", "Message", "ChatRequest", "ChatResponse", "Usage", "StreamChunk",
                 "RouteDecision", "ConfigError", "load_config"):
        assert name in modelyard.__all__ and getattr(modelyard, name) is not None
    error_classes = [n for n, c in inspect.getmembers(errors, inspect.isclass)
                     if c.__module__ == errors.__name__ and issubclass(c, Exception)]
    assert set(error_classes) <= set(modelyard.__all__), set(error_classes) - set(modelyard.__all__)
    assert modelyard.Message is types.Message and modelyard.RateLimited is errors.RateLimited
    with pytest.raises(AttributeError, match="nope"):
        modelyard.nope  # noqa: B018


def test_chat_accepts_message_objects_mixed_with_dicts() -> None:
    from modelyard import Message, TextPart

    with modelyard.Client(sim_only=True) as client:
        r = client.chat([Message("system", "Be brief."), {"role": "user", "content": "hi"},
                         Message("assistant", "Hello."), Message("user", [TextPart("What is 2+2?")])], model="fast")
        assert r.text
        with pytest.raises(TypeError, match="Message objects or dicts"):
            client.chat([("user", "hi")], model="fast")  # type: ignore[list-item]


def test_unknown_keyword_is_a_type_error_naming_it() -> None:
    with modelyard.Client(sim_only=True) as client:
        with pytest.raises(TypeError, match=r"chat\(\) got an unexpected keyword argument 'temprature' "
                                            r"\(did you mean 'temperature'\?\).*extra_body"):
            client.chat("hi", model="fast", temprature=0.2)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="'colour'"):
            client.stream("hi", model="fast", colour="red")  # type: ignore[call-arg]  # at the call, not later
        with pytest.raises(TypeError, match="'temprature'"):
            client.vote("hi", ["sim/fast", "sim/local"], temprature=0.2)  # type: ignore[call-arg]
        # OpenAI's own fields are keywords, as in the openai SDK
        assert client.chat("hi", model="fast", presence_penalty=0.1, seed=3).text
        # extra_body is merged into the body: the execution mode given there is honoured
        r = client.chat("Is the sky blue? yes or no", model="auto",
                        extra_body={"modelyard": {"mode": "vote", "models": ["sim/fast", "sim/local", "sim/balanced"]}})
        assert r.modelyard is not None and "votes" in r.modelyard


async def test_async_mode_methods_are_awaitable_and_typed() -> None:
    async with modelyard.AsyncClient(sim_only=True) as client:
        r: modelyard.ChatResponse = await client.race("Say hi", ["sim/fast", "sim/local"])
        assert r.modelyard is not None and r.modelyard["winner"] in ("sim/fast", "sim/local")
        chunks = [c async for c in client.stream([modelyard.Message("user", "hi")], model="fast")]
        assert chunks[-1].usage is not None


# --- request-log rows of a client that is never closed ------------------------------------------

UNCLOSED = """
import asyncio, sys
import modelyard
cfg = sys.argv[1]
if sys.argv[2] == "sync":
    client = modelyard.Client(cfg)
    client.chat("hello", model="a")
    client.pipeline("twice", "hello")
else:
    async def main() -> None:
        client = modelyard.AsyncClient(cfg)
        await client.chat("hello", model="a")
        await client.pipeline("twice", "hello")
        async for _ in client.stream("hello", model="a"):
            pass
    asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_client_never_closed_keeps_every_log_row(tmp_path, kind) -> None:
    import sqlite3
    import subprocess
    import sys

    db = tmp_path / "log.db"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
server: {{request_log: {{path: "{db}", flush_interval_s: 60}}}}
deployments:
  a: {{provider: sim, model: sim/fast}}
pipelines:
  twice:
    steps:
      - {{name: one, model: a, prompt: "{{{{ input }}}}"}}
      - {{name: two, model: a, prompt: "{{{{ one }}}}"}}
""")
    r = subprocess.run([sys.executable, "-c", UNCLOSED, str(cfg), kind], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr, r.stderr
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute("select count(*) from requests").fetchone()
    # chat + the pipeline's request (+ the stream, async): a 60 s flush interval never came round
    assert n >= (2 if kind == "sync" else 3)


def test_a_collected_client_closes_its_gateway_and_thread() -> None:
    import gc

    client = modelyard.Client(sim_only=True)
    client.chat("hi", model="fast")
    thread = client._thread
    del client
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


# --- provider keys in the environment -------------------------------------------------------------

class FakeOpenAI:
    """An OpenAI-wire upstream on loopback that records what it was sent."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        seen: list[tuple[str, dict[str, Any]]] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                seen.append((self.headers.get("authorization", ""), body))
                out = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "from fake"},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_provider_key_in_the_environment_puts_real_deployments_in_the_groups(monkeypatch) -> None:
    fake = FakeOpenAI()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key-from-env")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        with modelyard.Client() as client:
            for group in ("auto", "fast", "smart", "cheap"):
                r = client.chat("What is the capital of Italy?", model=group)
                assert r.text == "from fake" and not r.deployment.startswith("sim/"), (group, r.deployment)
            assert client.chat("hi", model="sim/fast").deployment == "sim/fast"  # the sim stays reachable
        assert len(fake.seen) == 4
        assert {auth for auth, _ in fake.seen} == {"Bearer test-key-from-env"}
        assert {body["model"] for _, body in fake.seen} <= {"gpt-4o", "gpt-4o-mini", "gpt-4.1-mini"}
    finally:
        fake.close()


def test_extra_body_fields_reach_the_upstream(monkeypatch) -> None:
    fake = FakeOpenAI()
    try:
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        with modelyard.Client() as client:
            client.chat("hi", model="gpt-4o-mini", extra_body={"reasoning_effort": "low", "custom_flag": 1})
        assert fake.seen[0][1]["custom_flag"] == 1 and fake.seen[0][1]["reasoning_effort"] == "low"
    finally:
        fake.close()


def test_without_provider_keys_the_groups_are_the_simulated_fleet(monkeypatch) -> None:
    from modelyard.defaults import default_config_data

    data = default_config_data({"MODELYARD_NO_OLLAMA": "1"})
    # (and the in-process model, when the `local` extra is installed)
    assert all(d.startswith(("sim/", "local/")) for g in data["model_groups"].values() for d in g["deployments"])
    data = default_config_data({"ANTHROPIC_API_KEY": "k", "MODELYARD_NO_OLLAMA": "1"})
    assert data["model_groups"]["auto"]["deployments"] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    data = default_config_data({"ANTHROPIC_API_KEY": "", "MODELYARD_NO_OLLAMA": "1"})  # empty: not a key
    assert "claude-haiku-4-5" not in data["deployments"]
