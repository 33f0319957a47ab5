"""The Responses API event stream, rendered from the gateway's neutral chunks.

`response.created` and `response.in_progress` open it; text arrives as a message item
(`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`…,
`response.output_text.done`, `response.content_part.done`, `response.output_item.done`), each tool
call as a `function_call` item (`…added`, `response.function_call_arguments.delta`…, `…done`,
`…output_item.done`); `response.completed` (or `response.incomplete` when the output was cut)
carries the whole response with its usage. Every event has its `sequence_number`.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import ModelyardError
from ..types import StreamChunk, ToolCall, Usage
from .responses_translate import (
    ResponseParams,
    finish_status,
    function_item,
    message_item,
    new_id,
    response_object,
)


class ResponseEvents:
    def __init__(self, resp_id: str, params: ResponseParams) -> None:
        self.id, self.params = resp_id, params
        self.seq = 0
        self.output: list[dict[str, Any]] = []  # finished items, in order
        self._text: list[str] | None = None  # the open message item's text so far
        self._text_id = ""
        self._call: dict[str, Any] | None = None  # the open function_call item
        self._call_index = -1  # the chunk-level index of the open call
        self.finish_reason: str | None = None
        self.response: dict[str, Any] | None = None  # the final response object, once finished

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def start(self) -> bytes:
        obj = response_object(self.id, self.params, "in_progress", [], None)
        return self._event("response.created", response=obj) + self._event("response.in_progress", response=obj)

    @property
    def _index(self) -> int:
        return len(self.output)

    def _open_text(self) -> bytes:
        self._text, self._text_id = [], new_id("msg")
        item = message_item(self._text_id, "", "in_progress")
        item["content"] = []
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return (self._event("response.output_item.added", output_index=self._index, item=item)
                + self._event("response.content_part.added", item_id=self._text_id, output_index=self._index,
                              content_index=0, part=part))

    def _close_text(self) -> bytes:
        assert self._text is not None
        text, self._text = "".join(self._text), None
        item = message_item(self._text_id, text)
        out = (self._event("response.output_text.done", item_id=self._text_id, output_index=self._index,
                           content_index=0, text=text, logprobs=[])
               + self._event("response.content_part.done", item_id=self._text_id, output_index=self._index,
                             content_index=0, part=item["content"][0])
               + self._event("response.output_item.done", output_index=self._index, item=item))
        self.output.append(item)
        return out

    def _close_call(self) -> bytes:
        assert self._call is not None
        item, self._call = self._call, None
        item["status"] = "completed"
        out = (self._event("response.function_call_arguments.done", item_id=item["id"], output_index=self._index,
                           name=item["name"], arguments=item["arguments"])
               + self._event("response.output_item.done", output_index=self._index, item=item))
        self.output.append(item)
        return out

    def _close(self) -> bytes:
        if self._text is not None:
            return self._close_text()
        if self._call is not None:
            return self._close_call()
        return b""

    def feed(self, chunk: StreamChunk) -> bytes:
        out = b""
        if chunk.text:
            if self._text is None:
                out += self._close() + self._open_text()
            assert self._text is not None
            self._text.append(chunk.text)
            out += self._event("response.output_text.delta", item_id=self._text_id, output_index=self._index,
                               content_index=0, delta=chunk.text, logprobs=[])
        for d in chunk.tool_calls or ():
            if self._call is None or d.index != self._call_index:
                out += self._close()
                self._call_index = d.index
                self._call = function_item(new_id("fc"), ToolCall(d.id or "", d.name or "", ""), "in_progress")
                out += self._event("response.output_item.added", output_index=self._index, item=dict(self._call))
            if d.arguments:
                self._call["arguments"] += d.arguments
                out += self._event("response.function_call_arguments.delta", item_id=self._call["id"],
                                   output_index=self._index, delta=d.arguments)
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        return out

    def finish(self, usage: Usage | None, extra: dict[str, Any] | None = None) -> bytes:
        out = self._close()
        if not self.output:  # an empty answer is still a message
            out += self._open_text() + self._close_text()
        status, why = finish_status(self.finish_reason)
        self.response = response_object(self.id, self.params, status, self.output, usage or Usage(), incomplete=why)
        if extra:
            self.response["modelyard"] = extra
        return out + self._event(f"response.{status}", response=self.response)

    def error(self, err: ModelyardError) -> bytes:
        body = err.openai_body()["error"]
        return self._event("error", code=body["code"], message=body["message"], param=body["param"], error=body)
