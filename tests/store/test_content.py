"""store/content.py: who opts in, what a field holds, and the content built off the event loop —
every row still emitted, in a thread of its own, drained before the log closes."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson

from modelyard.store.content import ContentLog
from modelyard.store.rows import Row, request_row
from modelyard.types import (
    Caller,
    ChatRequest,
    ChatResponse,
    Choice,
    ImagePart,
    Message,
    StreamChunk,
    TextPart,
    ToolCallDelta,
    Usage,
)


def req(model: str = "g", flag: bool | None = None, *messages: Message) -> ChatRequest:
    return ChatRequest(model=model, messages=list(messages) or [Message("user", "hello")],
                       caller=Caller(key_id="k" if flag is not None else None, log_content=flag))


def test_the_most_specific_setting_decides() -> None:
    c = ContentLog(False, {"logged": True, "quiet": False})
    assert not c.wants(req("other")) and c.wants(req("logged")) and not c.wants(req("quiet"))
    assert c.wants(req("quiet", True)) and not c.wants(req("logged", False))
    on = ContentLog(True, {"quiet": False})
    assert on.wants(req("other")) and not on.wants(req("quiet")) and on.wants(req("quiet", True))


def test_fields_redact_by_value_and_shape_and_leave_images_out() -> None:
    c = ContentLog(True, {}, ["operator-secret-value-1234"], limit=4096)
    r = req("g", None, Message("system", "be brief"), Message("user", [
        TextPart("key sk-live-0123456789abcdefghij and operator-secret-value-1234"),
        ImagePart("data:image/png;base64," + "A" * 5000)]))
    answer = ChatResponse(id="x", model="m", usage=Usage(), choices=[
        Choice(0, Message("assistant", "you said operator-secret-value-1234"), "stop")])
    prompt, response = c.fields(r, answer)
    assert prompt is not None and response is not None
    p = orjson.loads(prompt)
    assert p[0] == {"role": "system", "content": "be brief"}
    assert p[1]["content"][0]["text"] == "key [redacted] and [redacted]"
    assert p[1]["content"][1]["url"] == "data:image/png;base64,[5000 characters not logged]"
    assert orjson.loads(response) == [{"role": "assistant", "content": "you said [redacted]", "finish_reason": "stop"}]


def test_a_streams_answer_is_assembled_per_choice_with_tool_calls() -> None:
    c = ContentLog(True, {})
    chunks = [StreamChunk("s", "m", text="Hel"), StreamChunk("s", "m", text="lo"),
              StreamChunk("s", "m", tool_calls=[ToolCallDelta(0, "call_1", "lookup", '{"q":')]),
              StreamChunk("s", "m", tool_calls=[ToolCallDelta(0, None, None, '"x"}')], finish_reason="tool_calls"),
              StreamChunk("s", "m", text="other", index=1, finish_reason="stop")]
    _, response = c.fields(req(), chunks)
    assert orjson.loads(response or "") == [
        {"role": "assistant", "content": "Hello", "finish_reason": "tool_calls",
         "tool_calls": [{"id": "call_1", "name": "lookup", "arguments": '{"q":"x"}'}]},
        {"role": "assistant", "content": "other", "finish_reason": "stop"}]


def test_a_huge_prompt_costs_no_more_than_a_full_field() -> None:
    c = ContentLog(True, {}, limit=2000)
    big = req("g", None, *[Message("user", "sk-" + "y" * 100_000) for _ in range(200)])
    t0 = time.perf_counter()
    prompt, _ = c.fields(big, None)
    assert time.perf_counter() - t0 < 0.5  # 20 MB of text; only ~2.5 KB of it is looked at
    assert prompt is not None and len(prompt) == 2000 and prompt.endswith("[truncated: over 2000 characters]")


def test_content_is_built_off_the_loop_and_every_row_is_emitted() -> None:
    c = ContentLog(True, {})
    emitted: list[tuple[Row, str]] = []
    threads: list[str] = []

    class Spy(ContentLog):
        __slots__ = ()

        def fields(self, r: ChatRequest, answer: Any) -> tuple[str | None, str | None]:
            threads.append(threading.current_thread().name)
            if r.messages[0].content == "boom":
                raise ValueError("unserialisable")
            return super().fields(r, answer)

    spy = Spy(True, {})

    async def run() -> None:
        loop_thread = threading.current_thread().name
        for text in ("one", "boom", "three"):
            r = req("g", None, Message("user", text))
            spy.emit_with(lambda row: emitted.append((row, threading.current_thread().name)),
                          request_row(text, "g", 200), r, None)
        assert emitted == []  # nothing built on the loop
        await spy.close()
        assert [row.id for row, _ in emitted] == ["one", "boom", "three"]  # in order, the failed one too
        assert {t for _, t in emitted} == {loop_thread}  # emitted on the loop
        assert all(t.startswith("modelyard-content") for t in threads)

    asyncio.run(run())
    by_id = {row.id: row for row, _ in emitted}
    assert by_id["one"].prompt is not None and "one" in by_id["one"].prompt
    assert by_id["boom"].prompt is None  # the row is kept without its content
    out: list[Row] = []
    c.emit_with(out.append, request_row("sync", "g", 200), req(), None)  # no loop: done at once
    assert out and out[0].prompt is not None
