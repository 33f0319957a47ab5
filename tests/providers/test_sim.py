"""The simulated fleet: deterministic, honest about usage, true to the request, failing and waiting
the way a real upstream does."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from modelyard.catalog import builtin_cards
from modelyard.config import SimSettings
from modelyard.deployment import Deployment
from modelyard.errors import BadRequest, ContextWindowExceeded, RateLimited, Unavailable
from modelyard.providers import provider_class
from modelyard.providers.sim import SIM_FLEET, SimProvider
from modelyard.tokens import count_message_tokens, count_tokens, count_tools_tokens
from modelyard.types import ChatRequest, ChatResponse, ImagePart, Message, StreamChunk, TextPart, Tool, ToolCall

TIERS = ("frontier", "balanced", "fast", "local")


def dep(tier: str = "fast", **sim: Any) -> Deployment:
    name = f"sim/{tier}"
    sim.setdefault("zero_latency", True)
    return Deployment(name=name, provider="sim", model=name, card=builtin_cards()[name], sim=SimSettings(**sim))


def req(text: str = "Explain how photosynthesis works.", **kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", text)], **kw)


async def collect(p: SimProvider, r: ChatRequest, d: Deployment) -> list[StreamChunk]:
    return [c async for c in p.stream(r, d)]


def joined(chunks: list[StreamChunk], index: int = 0) -> str:
    return "".join(c.text or "" for c in chunks if c.index == index)


WEATHER = Tool("get_weather", "Get the current weather for a city",
               {"type": "object", "properties": {"city": {"type": "string"},
                                                 "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["city"]})
STOCK = Tool("lookup_stock", "Look up a stock price",
             {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]})
EMAIL = Tool("send_email", "Send an email message to a recipient",
             {"type": "object", "properties": {"to": {"type": "string", "format": "email"},
                                               "subject": {"type": "string"}, "body": {"type": "string"}},
              "required": ["to", "subject", "body"]})
TOOLS = [WEATHER, STOCK, EMAIL]


# --- a small JSON-schema checker (the subset the sim promises) -----------------------------------

def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> bool:
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        return conforms(value, target, root)
    if "enum" in schema:
        return value in schema["enum"]
    if "anyOf" in schema:
        return any(conforms(value, s, root) for s in schema["anyOf"])
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    checks = {
        "object": lambda v: isinstance(v, dict) and all(k in v for k in schema.get("required", []))
        and all(conforms(v[k], s, root) for k, s in schema.get("properties", {}).items() if k in v),
        "array": lambda v: isinstance(v, list) and schema.get("minItems", 0) <= len(v) <= schema.get("maxItems", 10**9)
        and all(conforms(x, schema.get("items", {}), root) for x in v),
        "string": lambda v: isinstance(v, str)
        and schema.get("minLength", 0) <= len(v) <= schema.get("maxLength", 10**9)
        and (schema.get("format") != "email" or "@" in v)
        and (schema.get("format") != "date" or re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
        and schema.get("minimum", -1e18) <= v <= schema.get("maximum", 1e18),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
        and schema.get("minimum", -1e18) <= v <= schema.get("maximum", 1e18),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return any(checks[k](value) for k in kinds if k in checks)


PROFILE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "email": {"type": "string", "format": "email"},
        "born": {"type": "string", "format": "date"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "active": {"type": "boolean"},
        "role": {"type": "string", "enum": ["admin", "editor", "viewer"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
        "address": {"type": "object", "properties": {"city": {"type": "string"},
                                                     "zip": {"type": "string", "maxLength": 5}},
                    "required": ["city", "zip"]},
        "nickname": {"type": ["string", "null"]},
        "manager": {"$ref": "#/$defs/person"},
        "history": {"type": "array", "items": {"$ref": "#/$defs/person"}, "minItems": 1},
        "code": {"type": "string", "minLength": 12},
    },
    "required": ["name", "age", "email", "role", "tags", "address", "manager"],
    "$defs": {"person": {"type": "object", "properties": {"name": {"type": "string"},
                                                          "level": {"type": "integer", "minimum": 1, "maximum": 5}},
                         "required": ["name", "level"]}},
}


# --- determinism and style -------------------------------------------------------------------------

async def test_same_request_same_answer() -> None:
    p, d = SimProvider(seed=1), dep("balanced")
    a, b = await p.complete(req(), d), await p.complete(req(), d)
    assert a.text == b.text and a.usage == b.usage and a.choices[0].finish_reason == "stop"
    assert a.id != b.id and re.fullmatch(r"chatcmpl-sim-[0-9a-f]{24}", a.id)
    # another provider instance (another process, another seed) says the same thing
    c = await SimProvider(seed=99).complete(req(), dep("balanced"))
    assert c.text == a.text
    assert a.model == "sim/balanced" and a.openai_body is None


async def test_each_model_has_its_own_voice() -> None:
    p = SimProvider()
    prompts = ["Explain how photosynthesis works.", "Why do cats purr?", "What is a hash table?",
               "Describe the water cycle.", "How do vaccines train the immune system?"]
    answers = {t: [(await p.complete(req(x), dep(t))).text for x in prompts] for t in TIERS}
    for x in range(len(prompts)):
        assert len({answers[t][x] for t in TIERS}) == 4
    words = {t: sum(len(a.split()) for a in answers[t]) for t in TIERS}
    assert words["frontier"] > words["balanced"] > words["local"]
    assert words["frontier"] > words["fast"]


async def test_answers_are_about_the_prompt_not_a_stub() -> None:
    p = SimProvider()
    for tier in TIERS:
        text = (await p.complete(req("Explain how photosynthesis works in plants."), dep(tier))).text
        assert "photosynthesis" in text.lower()
        assert len(text.split()) >= 6 and "lorem" not in text.lower() and "simulated" not in text.lower()
    q = (await p.complete(req("Can you explain why the sky looks blue during the day?"), dep("frontier"))).text
    assert "sky" in q.lower() and q.count(".") >= 2


async def test_short_prompts_get_short_answers() -> None:
    p = SimProvider()
    for tier in TIERS:
        r = await p.complete(req("Say hi"), dep(tier))
        assert 1 <= r.usage.output_tokens <= 15
    long_q = "Explain in detail how a modern CPU pipeline handles branch misprediction and speculative execution."
    frontier = await p.complete(req(long_q), dep("frontier"))
    assert frontier.usage.output_tokens > 40


async def test_the_good_answer_is_the_one_every_good_model_agrees_on() -> None:
    p = SimProvider()
    mcq = "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Mercury\nAnswer:"
    picks = set()
    for tier in TIERS:
        text = (await p.complete(req(mcq), dep(tier, quality=1.0))).text
        picks.add(re.search(r"\b([A-D])\b", text).group(1))  # type: ignore[union-attr]
    assert len(picks) == 1
    good = await p.complete(req("What is 17 * 23?"), dep("balanced", quality=1.0))
    assert "391" in good.text
    bad = await p.complete(req("What is 17 * 23?"), dep("balanced", quality=0.0))
    assert "391" not in bad.text and re.search(r"\d", bad.text)
    fact = await p.complete(req("What is the capital of France?"), dep("balanced", quality=1.0))
    assert "Paris" in fact.text


async def test_scripted_answers_win() -> None:
    p = SimProvider()
    d = dep("fast", answers={"secret word": "The secret word is 'teal'."})
    r = await p.complete(req("Tell me the secret word please"), d)
    assert r.text == "The secret word is 'teal'."
    assert r.usage.output_tokens == count_tokens(r.text)
    other = await p.complete(req("Tell me something else"), d)
    assert other.text != r.text


async def test_n_choices_differ_but_are_deterministic() -> None:
    p = SimProvider()
    r = await p.complete(req(n=3), dep("balanced"))
    texts = [c.message.text() for c in r.choices]
    assert [c.index for c in r.choices] == [0, 1, 2] and len(set(texts)) == 3
    assert texts[0] == (await p.complete(req(), dep("balanced"))).text
    assert [c.message.text() for c in (await p.complete(req(n=3), dep("balanced"))).choices] == texts
    assert r.usage.output_tokens == sum(count_tokens(t) for t in texts)
    chunks = await collect(p, req(n=3), dep("balanced"))
    assert [joined(chunks, i) for i in range(3)] == texts
    assert chunks[-1].usage == r.usage


# --- usage honesty and streaming ---------------------------------------------------------------------

async def test_usage_is_counted_from_prompt_and_reply() -> None:
    p = SimProvider()
    msgs = [Message("system", "You are a concise assistant."), Message("user", "What is a monad?")]
    r = await p.complete(ChatRequest(model="m", messages=msgs), dep("frontier"))
    assert r.usage.input_tokens == count_message_tokens(msgs)
    assert r.usage.output_tokens == count_tokens(r.text) > 0
    with_tools = await p.complete(ChatRequest(model="m", messages=msgs, tools=TOOLS, tool_choice="none"),
                                  dep("frontier"))
    assert with_tools.usage.input_tokens == count_message_tokens(msgs) + count_tools_tokens(TOOLS)


@pytest.mark.parametrize("tier", TIERS)
async def test_stream_matches_non_stream(tier: str) -> None:
    p = SimProvider()
    r = req("Tell me a short story about a fox.")
    full = await p.complete(r, dep(tier))
    chunks = await collect(p, r, dep(tier))
    assert chunks[0].role == "assistant" and chunks[0].id == chunks[-1].id
    assert joined(chunks) == full.text
    assert len([c for c in chunks if c.text]) >= 3  # a few tokens per chunk, not one blob
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage == full.usage and not last.text


async def test_stream_of_multiline_text_keeps_every_character() -> None:
    p = SimProvider()
    r = req("Write a Python function that checks whether a string is a palindrome.")
    full = await p.complete(r, dep("frontier"))
    assert "```python" in full.text and "\n" in full.text
    assert joined(await collect(p, r, dep("frontier"))) == full.text


# --- response formats ----------------------------------------------------------------------------------

@pytest.mark.parametrize("tier", ("frontier", "balanced", "fast"))
async def test_json_object_mode(tier: str) -> None:
    p = SimProvider()
    for prompt in ("Give me a user profile", "List three fruits as JSON", "What is 2 + 2?"):
        r = await p.complete(req(prompt, response_format={"type": "json_object"}), dep(tier))
        assert isinstance(json.loads(r.text), dict)
        assert r.usage.output_tokens == count_tokens(r.text)


@pytest.mark.parametrize("prompt", ["Give me a user profile for Ada Lovelace, age 36, ada@example.com",
                                    "Make up a profile", "Create a test fixture for the admin page"])
async def test_json_schema_mode_conforms(prompt: str) -> None:
    p = SimProvider()
    rf = {"type": "json_schema", "json_schema": {"name": "profile", "schema": PROFILE, "strict": True}}
    for n in (1, 3):
        r = await p.complete(req(prompt, response_format=rf, n=n), dep("frontier"))
        for choice in r.choices:
            obj = json.loads(choice.message.text())
            assert conforms(obj, PROFILE), obj
    first = json.loads((await p.complete(req(prompt, response_format=rf), dep("frontier"))).text)
    if "Ada" in prompt:  # string fields are filled from the prompt where it offers a value
        assert first["name"] == "Ada Lovelace" and first["age"] == 36 and first["email"] == "ada@example.com"


async def test_json_schema_stream_is_the_same_document() -> None:
    p = SimProvider()
    rf = {"type": "json_schema", "json_schema": {"name": "p", "schema": PROFILE}}
    full = await p.complete(req("profile please", response_format=rf), dep("balanced"))
    assert joined(await collect(p, req("profile please", response_format=rf), dep("balanced"))) == full.text


# --- tools ------------------------------------------------------------------------------------------------

async def test_required_tool_call() -> None:
    p = SimProvider()
    r = await p.complete(req("What's the weather in Paris? Use get_weather.", tools=TOOLS, tool_choice="required"),
                         dep("frontier"))
    assert r.choices[0].finish_reason == "tool_calls" and r.text == ""
    (call,) = r.tool_calls
    assert call.name == "get_weather" and re.fullmatch(r"call_[0-9a-f]{24}", call.id)
    args = json.loads(call.arguments)
    assert conforms(args, WEATHER.parameters) and args["city"] == "Paris"
    assert r.usage.output_tokens == count_tokens(call.arguments)


async def test_required_picks_the_tool_the_prompt_can_fill() -> None:
    p = SimProvider()
    r = await p.complete(req("What is ACME trading at?", tools=TOOLS, tool_choice="required"), dep("balanced"))
    assert r.tool_calls[0].name == "lookup_stock"
    assert json.loads(r.tool_calls[0].arguments) == {"ticker": "ACME"}


async def test_named_tool_call_wins_over_mentions() -> None:
    p = SimProvider()
    r = await p.complete(req("weather in Oslo? also email bob@example.com", tools=TOOLS,
                             tool_choice={"name": "send_email"}), dep("fast"))
    (call,) = r.tool_calls
    args = json.loads(call.arguments)
    assert call.name == "send_email" and conforms(args, EMAIL.parameters) and args["to"] == "bob@example.com"
    openai_style = await p.complete(req("weather in Oslo?", tools=TOOLS,
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}}),
                                    dep("fast"))
    assert openai_style.tool_calls[0].name == "get_weather"
    assert json.loads(openai_style.tool_calls[0].arguments)["city"] == "Oslo"


async def test_mentioned_tools_are_called_unmentioned_are_not() -> None:
    p = SimProvider()
    by_word = await p.complete(req("What's the weather like in New York today?", tools=TOOLS), dep("frontier"))
    assert [c.name for c in by_word.tool_calls] == ["get_weather"]
    assert json.loads(by_word.tool_calls[0].arguments)["city"] == "New York"
    by_name = await p.complete(req("please run lookup_stock for MSFT", tools=TOOLS, tool_choice="auto"),
                               dep("frontier"))
    assert [c.name for c in by_name.tool_calls] == ["lookup_stock"]
    plain = await p.complete(req("Tell me a joke about penguins", tools=TOOLS), dep("frontier"))
    assert not plain.tool_calls and plain.text and plain.choices[0].finish_reason == "stop"


async def test_tool_choice_none_never_calls() -> None:
    p = SimProvider()
    r = await p.complete(req("Use get_weather for Paris", tools=TOOLS, tool_choice="none"), dep("frontier"))
    assert not r.tool_calls and r.text and r.choices[0].finish_reason == "stop"


async def test_tool_result_follow_up_answers_in_text() -> None:
    p = SimProvider()
    first = await p.complete(req("What's the weather in Paris?", tools=[WEATHER], tool_choice="required"),
                             dep("frontier"))
    call = first.tool_calls[0]
    msgs = [Message("user", "What's the weather in Paris?"), Message("assistant", None, tool_calls=[call]),
            Message("tool", '{"temp_c": 21, "sky": "clear"}', tool_call_id=call.id)]
    for tier in ("frontier", "balanced", "fast"):
        r = await p.complete(ChatRequest(model="m", messages=msgs, tools=[WEATHER]), dep(tier))
        assert not r.tool_calls and r.choices[0].finish_reason == "stop"
        assert "21" in r.text and "clear" in r.text and "get_weather" in r.text
    plain = [*msgs[:2], Message("tool", "42.10 USD", tool_call_id=call.id)]
    r = await p.complete(ChatRequest(model="m", messages=plain, tools=[WEATHER]), dep("fast"))
    assert "42.10 USD" in r.text


async def test_streamed_tool_call_reassembles() -> None:
    p = SimProvider()
    r = req("send an email to ann@example.com about the launch", tools=TOOLS, tool_choice="required")
    full = await p.complete(r, dep("balanced"))
    chunks = await collect(p, r, dep("balanced"))
    deltas = [d for c in chunks for d in c.tool_calls or ()]
    assert deltas[0].id == full.tool_calls[0].id and deltas[0].name == "send_email"
    assert all(d.id is None and d.name is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == full.tool_calls[0].arguments
    assert chunks[-1].finish_reason == "tool_calls" and chunks[-1].usage == full.usage


# --- max_tokens and stop ----------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [1, 5, 12])
async def test_max_tokens_truncates_with_length(limit: int) -> None:
    p = SimProvider()
    long_prompt = "Explain in detail how garbage collection works in the JVM."
    unlimited = await p.complete(req(long_prompt), dep("frontier"))
    assert unlimited.usage.output_tokens > 12
    r = await p.complete(req(long_prompt, max_tokens=limit), dep("frontier"))
    assert r.choices[0].finish_reason == "length"
    assert 0 < r.usage.output_tokens <= limit and r.usage.output_tokens == count_tokens(r.text)
    assert unlimited.text.startswith(r.text)
    chunks = await collect(p, req(long_prompt, max_tokens=limit), dep("frontier"))
    assert joined(chunks) == r.text and chunks[-1].finish_reason == "length" and chunks[-1].usage == r.usage


async def test_max_tokens_above_the_answer_changes_nothing() -> None:
    p = SimProvider()
    a = await p.complete(req("Say hi"), dep("fast"))
    b = await p.complete(req("Say hi", max_tokens=500), dep("fast"))
    assert a.text == b.text and b.choices[0].finish_reason == "stop"


async def test_stop_sequences_cut_the_answer() -> None:
    p = SimProvider()
    prompt = "Explain in detail how garbage collection works in the JVM."
    full = (await p.complete(req(prompt), dep("frontier"))).text
    word = full.split()[3]
    r = await p.complete(req(prompt, stop=["zzz-never", word]), dep("frontier"))
    assert r.text == full[: full.index(word)] and word not in r.text
    assert r.choices[0].finish_reason == "stop" and r.usage.output_tokens == count_tokens(r.text)
    assert joined(await collect(p, req(prompt, stop=[word]), dep("frontier"))) == r.text


# --- failures ----------------------------------------------------------------------------------------------

async def test_failure_rate_one_always_fails_before_any_chunk() -> None:
    p = SimProvider(seed=3)
    d = dep("fast", failure_rate=1.0)
    for _ in range(20):
        with pytest.raises(Unavailable) as e:
            await p.complete(req(), d)
    assert "'sim/fast'" in e.value.message and "503" in e.value.message
    assert e.value.deployment == "sim/fast" and e.value.upstream_status == 503
    got: list[StreamChunk] = []
    with pytest.raises(Unavailable):
        async for c in p.stream(req(), d):
            got.append(c)
    assert got == []


async def test_rate_limit_rate_one_always_429s() -> None:
    p = SimProvider(seed=3)
    d = dep("fast", rate_limit_rate=1.0)
    for _ in range(20):
        with pytest.raises(RateLimited) as e:
            await p.complete(req(), d)
        assert e.value.retry_after == 1.0 and "'sim/fast'" in e.value.message
    assert e.value.headers() == [(b"retry-after", b"1")]
    with pytest.raises(RateLimited):
        await collect(p, req(), d)


async def test_zero_rates_never_fail() -> None:
    p = SimProvider(seed=3)
    d = dep("fast", failure_rate=0.0, rate_limit_rate=0.0)
    for _ in range(300):
        assert isinstance(await p.complete(req("hi"), d), ChatResponse)


async def test_rates_are_honoured_statistically_and_seeded() -> None:
    async def outcomes(seed: int) -> list[str]:
        p, d, out = SimProvider(seed=seed), dep("fast", failure_rate=0.3, rate_limit_rate=0.2), []
        for _ in range(1000):
            try:
                await p.complete(req("hi"), d)
                out.append("ok")
            except Unavailable:
                out.append("503")
            except RateLimited:
                out.append("429")
        return out

    a = await outcomes(7)
    assert 240 <= a.count("503") <= 360 and 140 <= a.count("429") <= 260
    assert a == await outcomes(7)  # same seed, same sequence
    assert a != await outcomes(8)


# --- capabilities and limits --------------------------------------------------------------------------

async def test_the_card_is_honoured() -> None:
    p = SimProvider()
    image = ChatRequest(model="m", messages=[Message("user", [TextPart("What is this?"),
                                                              ImagePart("https://example.com/cat.png")])])
    with pytest.raises(BadRequest, match=r"'sim/fast'.*image"):
        await p.complete(image, dep("fast"))
    seen = await p.complete(image, dep("frontier"))  # the frontier tier has vision
    assert seen.usage.input_tokens == count_message_tokens(image.messages)
    with pytest.raises(BadRequest, match=r"'sim/local'.*tools"):
        await p.complete(req("hi", tools=TOOLS), dep("local"))
    with pytest.raises(BadRequest, match=r"'sim/local'.*JSON"):
        await p.complete(req("hi", response_format={"type": "json_object"}), dep("local"))
    huge = "word " * 9000  # sim/local's window is 8192 tokens
    with pytest.raises(ContextWindowExceeded, match=r"'sim/local'.*8192"):
        await p.complete(req(huge), dep("local"))
    assert (await p.complete(req(huge), dep("fast"))).usage.input_tokens > 8192


# --- latency and cancellation ---------------------------------------------------------------------------

@pytest.fixture
def real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs the sim at zero latency through the environment; these tests need the clock."""
    monkeypatch.delenv("MODELYARD_SIM_ZERO_LATENCY", raising=False)


async def test_time_to_first_chunk_follows_ttft(real_time: None) -> None:
    p = SimProvider(seed=1)
    assert not p.zero_latency
    d = dep("fast", zero_latency=False, ttft_ms=50, tokens_per_s=5000, jitter=0.0)
    t0 = time.perf_counter()
    first = None
    async for chunk in p.stream(req("Tell me a short story about a fox."), d):
        if first is None:
            first = time.perf_counter() - t0
            assert chunk.role == "assistant"
    assert first is not None and 0.05 <= first < 0.5


async def test_non_stream_takes_ttft_plus_generation(real_time: None) -> None:
    p = SimProvider(seed=1)
    d = dep("fast", zero_latency=False, ttft_ms=20, tokens_per_s=1000, jitter=0.0)
    t0 = time.perf_counter()
    r = await p.complete(req("Tell me a short story about a fox."), d)
    elapsed = time.perf_counter() - t0
    assert elapsed >= 0.02 + r.usage.output_tokens / 1000 and elapsed < 1.0


async def test_jitter_spreads_latencies(real_time: None) -> None:
    p = SimProvider(seed=5)
    d = dep("fast", zero_latency=False, ttft_ms=30, tokens_per_s=10**6, jitter=0.5)
    times = []
    for _ in range(8):
        t0 = time.perf_counter()
        await p.complete(req("hi"), d)
        times.append(time.perf_counter() - t0)
    assert min(times) >= 0.014 and max(times) - min(times) > 0.005


async def test_zero_latency_is_fast(real_time: None) -> None:
    for p, d in ((SimProvider(zero_latency=True), dep("frontier", zero_latency=False, ttft_ms=5000)),
                 (SimProvider(), dep("frontier", zero_latency=True, ttft_ms=5000))):
        t0 = time.perf_counter()
        for _ in range(50):
            await p.complete(req(), d)
            await collect(p, req(), d)
        assert time.perf_counter() - t0 < 2.0


async def test_environment_forces_zero_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_SIM_ZERO_LATENCY", "1")
    p = SimProvider()
    assert p.zero_latency
    t0 = time.perf_counter()
    await p.complete(req(), dep("frontier", zero_latency=False, ttft_ms=5000))
    assert time.perf_counter() - t0 < 0.5


async def test_cancel_mid_stream(real_time: None) -> None:
    p = SimProvider(seed=2)
    d = dep("frontier", zero_latency=False, ttft_ms=0, tokens_per_s=20, jitter=0.0)  # ~5 s for the whole answer
    got: list[StreamChunk] = []

    async def consume() -> None:
        async for c in p.stream(req("Explain in detail how garbage collection works in the JVM."), d):
            got.append(c)

    task = asyncio.create_task(consume())
    while len(got) < 2:
        await asyncio.sleep(0.005)
    t0 = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - t0 < 0.1 and not any(c.finish_reason for c in got)


async def test_close_mid_stream_at_zero_latency() -> None:
    p = SimProvider()
    gen = p.stream(req("Explain in detail how garbage collection works in the JVM."), dep("frontier"))
    first = await gen.__anext__()  # type: ignore[attr-defined]
    assert first.role == "assistant"
    await gen.aclose()  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()  # type: ignore[attr-defined]

    # cancellation reaches a zero-latency stream too: it yields to the loop between chunks
    async def drain() -> int:
        return len(await collect(p, req("Explain in detail how garbage collection works in the JVM."),
                                 dep("frontier")))

    task = asyncio.create_task(drain())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- wiring -----------------------------------------------------------------------------------------------

async def test_prepare_precomputes_and_unprepared_deployments_work() -> None:
    p = SimProvider()
    d = dep("balanced")
    p.prepare(d)
    assert d.adapter is p and d.endpoint is None
    fresh = dep("balanced")
    assert (await p.complete(req(), fresh)).text == (await p.complete(req(), d)).text
    assert SimProvider(zero_latency=True).prepare(d) is None and d.timeout_enforced


def test_fleet_and_registry() -> None:
    assert set(SIM_FLEET) == {"sim/frontier", "sim/balanced", "sim/fast", "sim/local"}
    assert all(v == {"provider": "sim", "model": k} for k, v in SIM_FLEET.items())
    assert all(k in builtin_cards() for k in SIM_FLEET)
    assert provider_class("sim") is SimProvider and SimProvider.kind == "sim"


async def test_conversation_history_changes_the_answer_deterministically() -> None:
    p = SimProvider()
    history = [Message("user", "Hi"), Message("assistant", "Hello! How can I help?"),
               Message("user", "Explain how photosynthesis works.")]
    with_history = await p.complete(ChatRequest(model="m", messages=history), dep("balanced"))
    again = await p.complete(ChatRequest(model="m", messages=list(history)), dep("balanced"))
    assert with_history.text == again.text
    call = ToolCall("call_x", "get_weather", "{}")
    assert (await p.complete(ChatRequest(model="m", messages=[Message("assistant", None, tool_calls=[call]),
                                                              Message("user", "thanks")]), dep("fast"))).text
