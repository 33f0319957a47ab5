"""The Python API: `modelyard.AsyncClient` / `modelyard.Client` over the same Gateway object the
HTTP server uses, so a script gets the routing, fallbacks and accounting a server would give.

    client = modelyard.Client()                      # embedded defaults (sim fleet + env keys)
    r = client.chat("Summarise this ...", model="auto")
    print(r.text, r.deployment, r.cost_usd)

Arguments follow OpenAI's chat-completions names and are validated the same way as over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .config import Config, load_config
from .gateway import Gateway
from .modes.methods import ModeMethods
from .server.openai_api import parse_request
from .types import ChatRequest, ChatResponse, StreamChunk


def _gateway(config: str | Config | Gateway | None, sim_only: bool) -> Gateway:
    if isinstance(config, Gateway):
        return config
    if isinstance(config, Config):
        return Gateway(config, source="<Config>", request_log=False)
    if config is not None:
        return Gateway(load_config(config), source=str(config))
    return Gateway.default(sim_only=sim_only, request_log=False)


def build_request(prompt_or_messages: str | list[dict[str, Any]], model: str, params: dict[str, Any]) -> ChatRequest:
    messages = ([{"role": "user", "content": prompt_or_messages}] if isinstance(prompt_or_messages, str)
                else prompt_or_messages)
    return parse_request({"model": model, "messages": messages, **params})


class AsyncClient(ModeMethods):  # + race/all/vote/judge/fuse/pipeline
    def __init__(self, config: str | Config | Gateway | None = None, *, sim_only: bool = False) -> None:
        self.gateway = _gateway(config, sim_only)

    async def chat(self, prompt_or_messages: str | list[dict[str, Any]], *, model: str = "auto",
                   **params: Any) -> ChatResponse:
        """One completion; `params` are OpenAI chat-completions fields (temperature, tools, ...)."""
        await self.gateway.start()
        return await self.gateway.chat(build_request(prompt_or_messages, model, params), api="python")

    async def stream(self, prompt_or_messages: str | list[dict[str, Any]], *, model: str = "auto",
                     **params: Any) -> AsyncIterator[StreamChunk]:
        """Yield chunks as they arrive; the last one carries usage."""
        await self.gateway.start()
        req = build_request(prompt_or_messages, model, {**params, "stream": True})
        stream = await self.gateway.stream(req, api="python")
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
        await self.gateway.close()

    async def __aenter__(self) -> AsyncClient:
        await self.gateway.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Client(ModeMethods):
    """Synchronous wrapper: the gateway lives on an event loop in a background thread."""

    def __init__(self, config: str | Config | Gateway | None = None, *, sim_only: bool = False) -> None:
        self._async = AsyncClient(config, sim_only=sim_only)
        self.gateway = self._async.gateway
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modelyard-client", daemon=True)
        self._thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def chat(self, prompt_or_messages: str | list[dict[str, Any]], *, model: str = "auto",
             **params: Any) -> ChatResponse:
        return self._run(self._async.chat(prompt_or_messages, model=model, **params))

    def stream(self, prompt_or_messages: str | list[dict[str, Any]], *, model: str = "auto",
               **params: Any) -> Iterator[StreamChunk]:
        agen = self._async.stream(prompt_or_messages, model=model, **params)
        try:
            while True:
                try:
                    yield self._run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._run(agen.aclose())

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self._async.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
