"""POST /v1/completions through the official openai SDK against the real server on the sim fleet."""

from __future__ import annotations

import httpx
import openai


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_plain_matches_chat_and_is_costed(server) -> None:
    raw = client(server).completions.with_raw_response.create(model="smart", prompt="Say hello.", max_tokens=50)
    r = raw.parse()
    assert r.object == "text_completion" and r.choices[0].text and r.choices[0].index == 0
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert raw.headers["x-modelyard-deployment"] == "sim/frontier"
    assert float(raw.headers["x-modelyard-cost-usd"]) > 0
    chat = client(server).chat.completions.create(model="smart", messages=[{"role": "user", "content": "Say hello."}],
                                                  max_tokens=50)
    assert chat.choices[0].message.content == r.choices[0].text


def test_list_of_prompts_and_echo(server) -> None:
    r = client(server).completions.create(model="fast", prompt=["one", "two"], echo=True, max_tokens=20)
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].text.startswith("one") and r.choices[1].text.startswith("two")


def test_streamed_with_usage(server) -> None:
    c = client(server)
    text, usage = "", None
    for chunk in c.completions.create(model="fast", prompt="Tell me a story.", max_tokens=60, stream=True,
                                      stream_options={"include_usage": True}):
        if chunk.choices:
            text += chunk.choices[0].text
        if chunk.usage:
            usage = chunk.usage
    plain = c.completions.create(model="fast", prompt="Tell me a story.", max_tokens=60)
    assert text == plain.choices[0].text and usage is not None
    assert usage.completion_tokens == plain.usage.completion_tokens


def test_bad_fields_are_400s(server) -> None:
    for body, param in (({"model": "fast"}, "prompt"), ({"model": "fast", "prompt": "x", "suffix": "y"}, "suffix"),
                        ({"model": "fast", "prompt": "x", "bogus": 1}, "bogus")):
        r = httpx.post(server.url + "/v1/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == param
