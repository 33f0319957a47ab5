"""The stream of a multi-model request, shaped like `GatewayStream` for the server and the client.

Two kinds: *live* (race, fuse, pipelines: the final call's own stream, chunk for chunk) and
*replay* (vote, all, judge: the answer exists once the mode has decided, and is sent as a short
stream). Either way the usage chunk carries the whole request's usage, `cost_usd` is the whole
request's cost, `modelyard` holds the mode's metadata, and the parent log row is written once,
when the stream ends, fails or is closed early.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ModelyardError
from ..types import ChatResponse, StreamChunk, ToolCallDelta, Usage
from .run import Result, Run


class ModeStream:
    def __init__(self, run: Run, result: Result) -> None:
        self.run, self.result = run, result
        self.gateway, self.request_id, self.req, self.api = run.gw, run.rid, run.req, run.api
        dep_name = result.call.deployment or ""
        self.deployment = run.gw.deployments[dep_name]
        self.decision = run.decision(dep_name, result.reason)
        self.usage: Usage | None = None
        self.cost_usd = run.cost_usd()
        self.finish_reason: str | None = None
        self.modelyard: dict[str, Any] | None = None
        self._done = False

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        return self._iterate()

    def _totals(self) -> None:
        self.usage = self.run.usage()
        self.cost_usd = self.run.cost_usd()
        self.modelyard = self.run.metadata(self.result)

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        live, call = self.result.live, self.result.call
        try:
            if live is not None:
                async for chunk in live:
                    if chunk.finish_reason:
                        self.finish_reason = chunk.finish_reason
                    if chunk.usage is not None:  # the live stream has seen its usage: settle its call
                        self.run.settle(call, live)
                        self._totals()
                        chunk = dataclasses.replace(chunk, usage=self.usage, openai_sse=None)
                    yield chunk
                self.run.settle(call, live)
            else:
                assert self.result.response is not None
                self._totals()
                for chunk in replay(self.result.response, self.usage or Usage()):
                    if chunk.finish_reason:
                        self.finish_reason = chunk.finish_reason
                    yield chunk
        except ModelyardError as e:
            if live is not None:
                self.run.settle(call, live, error=e)
            self._finish(e.status, e)
            raise
        self._finish(200, None)

    def _finish(self, status: int, error: ModelyardError | None, note: str | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._totals()
        self.run.log(status, error, note=note, deployment=self.deployment.name, reason=self.result.reason)

    async def aclose(self) -> None:
        """Stop early (client went away): close the live upstream call, account for what was sent."""
        if self._done:
            return
        live = self.result.live
        if live is not None:
            await live.aclose()
            self.run.settle(self.result.call, live, cancelled=True)
        self._finish(499, None, "client disconnected before the stream ended")


def replay(resp: ChatResponse, usage: Usage) -> list[StreamChunk]:
    """A complete answer as the chunk sequence a streaming upstream would have sent."""
    out: list[StreamChunk] = []
    rid, model, created = resp.id, resp.model, resp.created
    last = len(resp.choices) - 1
    for n, c in enumerate(resp.choices):
        out.append(StreamChunk(id=rid, model=model, role="assistant", text="", index=c.index, created=created))
        text = c.message.text()
        if text:
            out.append(StreamChunk(id=rid, model=model, text=text, index=c.index, created=created))
        if c.message.tool_calls:
            out.append(StreamChunk(id=rid, model=model, index=c.index, created=created, tool_calls=[
                ToolCallDelta(i, tc.id, tc.name, tc.arguments) for i, tc in enumerate(c.message.tool_calls)]))
        out.append(StreamChunk(id=rid, model=model, finish_reason=c.finish_reason or "stop", index=c.index,
                               created=created, usage=usage if n == last else None))
    return out
