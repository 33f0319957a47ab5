"""The Python API: `modelyard.AsyncClient` / `modelyard.Client` over the same Gateway object the
HTTP server uses, so a script gets the routing, fallbacks and accounting a server would give.

    client = modelyard.Client()                      # embedded defaults (sim fleet + env keys)
    r = client.chat("Summarise this ...", model="auto")
    print(r.text, r.deployment, r.cost_usd)

Arguments follow the openai SDK's `chat.completions.create` names and are validated the same way as
over HTTP; an unknown keyword is a TypeError, and fields a provider adds go in `extra_body={...}`.
A client that is never closed loses no request-log rows: each call writes its rows before it returns
(~1 ms of SQLite), because nothing can write them later — the caller's event loop may end at any
moment, and at interpreter exit the log's writer thread takes no more work. `Client` also closes its
gateway and loop thread when it is collected.
"""

from __future__ import annotations

import asyncio
import difflib
import threading
import weakref
from collections.abc import AsyncGenerator, Coroutine, Iterator, Sequence
from typing import Any, Generic, TypedDict, TypeVar, Unpack

from .config import Config
from .gateway import Gateway
from .loader import check_config, load_config
from .server.openai_api import parse_request
from .types import ChatRequest, ChatResponse, ImagePart, Message, StreamChunk, TextPart

Prompt = str | Sequence[Message | dict[str, Any]]


class ChatParams(TypedDict, total=False):
    """The keyword arguments of `chat`/`stream` and the mode methods: OpenAI chat-completions fields."""

    temperature: float
    top_p: float
    max_tokens: int
    max_completion_tokens: int
    stop: str | list[str]
    seed: int
    n: int
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    response_format: dict[str, Any]
    user: str
    metadata: dict[str, Any]
    modelyard: dict[str, Any]  # routing hints and the execution mode (docs/EXECUTION.md)
    stream_options: dict[str, Any]
    frequency_penalty: float
    presence_penalty: float
    logit_bias: dict[str, int]
    logprobs: bool
    top_logprobs: int
    reasoning_effort: str
    service_tier: str
    store: bool
    prediction: dict[str, Any]
    modalities: list[str]
    audio: dict[str, Any]
    verbosity: str
    web_search_options: dict[str, Any]
    prompt_cache_key: str
    safety_identifier: str
    functions: list[dict[str, Any]]
    function_call: str | dict[str, Any]
    extra_body: dict[str, Any]  # merged into the request body last, as the openai SDK does


_PARAMS = frozenset(ChatParams.__annotations__)


def _check_params(method: str, params: dict[str, Any]) -> None:
    for key in params:
        if key not in _PARAMS:
            close = difflib.get_close_matches(key, _PARAMS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise TypeError(f"{method}() got an unexpected keyword argument '{key}'{hint}; "
                            "fields a provider adds go in extra_body={...}")


def _message_dict(m: Message | dict[str, Any]) -> dict[str, Any]:
    """A Message as the chat-completions message it stands for (dicts pass as they are)."""
    if isinstance(m, dict):
        return m
    if not isinstance(m, Message):
        raise TypeError(f"messages must be Message objects or dicts, got {type(m).__name__}")
    out: dict[str, Any] = {"role": m.role}
    c = m.content
    if isinstance(c, list):
        out["content"] = [{"type": "text", "text": p.text} if isinstance(p, TextPart) else
                          {"type": "image_url", "image_url": {"url": p.url, **({"detail": p.detail} if p.detail
                                                                                else {})}}
                          for p in c if isinstance(p, TextPart | ImagePart)]
    else:
        out["content"] = c
    if m.name is not None:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [{"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
                             for t in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def build_request(prompt: Prompt, model: str, params: dict[str, Any], *, method: str = "chat",
                  stream: bool = False) -> ChatRequest:
    """The ChatRequest for a prompt (a string or messages) and chat-completions keyword arguments."""
    _check_params(method, params)
    if stream:
        params["stream"] = True
    extra = params.pop("extra_body", None) or {}
    if not isinstance(extra, dict):
        raise TypeError(f"extra_body must be a dict, got {type(extra).__name__}")
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [_message_dict(m) for m in prompt]
    return parse_request({"model": model, "messages": messages, **params, **extra})


def _gateway(config: str | Config | Gateway | None, sim_only: bool) -> Gateway:
    if isinstance(config, Gateway):
        return config
    if isinstance(config, Config):
        check_config(config, "<Config>")
        return Gateway(config, source="<Config>", request_log=False)
    if config is not None:
        return Gateway(load_config(config), source=str(config))
    return Gateway.default(sim_only=sim_only, request_log=False)


R = TypeVar("R")


def _mode(params: ChatParams, mode: str, models: Sequence[str] | None, **opts: Any) -> ChatParams:
    """`params` with the mode's options in `modelyard`, exactly what an HTTP client sends as
    `extra_body={"modelyard": {...}}`."""
    options: dict[str, Any] = {**params.get("modelyard", {}), "mode": mode}
    if models:
        options["models"] = list(models)
    options.update({k: v for k, v in opts.items() if v is not None and v is not False})
    out = ChatParams(**params)
    out["modelyard"] = options
    return out


class ModeMethods(Generic[R]):
    """The execution modes as methods: each is `chat` with the mode's options, so the Python and HTTP
    surfaces behave the same. R is what `chat` returns: a ChatResponse on `Client`, an awaitable of one
    on `AsyncClient`. The mode's results are in `response.modelyard` (votes, verdict, steps, ...)."""

    def chat(self, prompt: Prompt, *, model: str = "auto", **params: Unpack[ChatParams]) -> R:
        raise NotImplementedError

    def race(self, prompt: Prompt, models: Sequence[str] | None = None, *, model: str = "auto",
             **params: Unpack[ChatParams]) -> R:
        """The first model to answer wins; the others are cancelled. `modelyard`: winner, cancelled."""
        return self.chat(prompt, model=model, **_mode(params, "race", models))

    def all(self, prompt: Prompt, models: Sequence[str] | None = None, *, model: str = "auto",
            **params: Unpack[ChatParams]) -> R:
        """Every model's answer: `modelyard["answers"]` (model -> text), failures in `["errors"]`."""
        return self.chat(prompt, model=model, **_mode(params, "all", models))

    def vote(self, prompt: Prompt, models: Sequence[str] | None = None, *, model: str = "auto",
             min_agreement: int | None = None, normalize: str | None = None, labels: Sequence[str] | None = None,
             field: str | None = None, **params: Unpack[ChatParams]) -> R:
        """Majority answer: `modelyard` has outcome, answer, agreement, confidence and votes."""
        return self.chat(prompt, model=model, **_mode(
            params, "vote", models, min_agreement=min_agreement, normalize=normalize,
            labels=list(labels) if labels is not None else None, field=field))

    def judge(self, prompt: Prompt, models: Sequence[str] | None = None, *, judge: str | None = None,
              model: str = "auto", swap: bool = False, criteria: str | None = None,
              **params: Unpack[ChatParams]) -> R:
        """Best of n, picked by `judge`: `modelyard` has winner, reason and the candidates."""
        return self.chat(prompt, model=model, **_mode(params, "judge", models, judge=judge, swap=swap,
                                                      criteria=criteria))

    def fuse(self, prompt: Prompt, models: Sequence[str] | None = None, *, aggregator: str | None = None,
             model: str = "auto", **params: Unpack[ChatParams]) -> R:
        """The models' answers merged into one by `aggregator` (mixture of agents)."""
        return self.chat(prompt, model=model, **_mode(params, "fuse", models, aggregator=aggregator))

    def pipeline(self, name: str, input: str | None = None, /, **inputs: Any) -> R:
        """Run `pipeline/<name>` from the config: `client.pipeline("research", topic="...")`.
        `modelyard["steps"]` has each step's output, model, tokens, cost and latency."""
        if input is None:
            input = (str(next(iter(inputs.values()))) if len(inputs) == 1
                     else "\n".join(f"{k}: {v}" for k, v in inputs.items()))
        return self.chat(input or name, model=f"pipeline/{name}", modelyard={"inputs": inputs} if inputs else {})


class AsyncClient(ModeMethods[Coroutine[Any, Any, ChatResponse]]):
    def __init__(self, config: str | Config | Gateway | None = None, *, sim_only: bool = False) -> None:
        self.gateway = _gateway(config, sim_only)

    async def chat(self, prompt: Prompt, *, model: str = "auto", **params: Unpack[ChatParams]) -> ChatResponse:
        """One completion; `params` are OpenAI chat-completions fields (temperature, tools, ...)."""
        req = build_request(prompt, model, dict(params))
        await self.gateway.start()
        try:
            return await self.gateway.chat(req, api="python")
        finally:
            await self._flush()

    def stream(self, prompt: Prompt, *, model: str = "auto", **params: Unpack[ChatParams]
               ) -> AsyncGenerator[StreamChunk, None]:
        """Yield chunks as they arrive; the last one carries usage. Arguments are checked at the call."""
        return self._stream(build_request(prompt, model, dict(params), method="stream", stream=True))

    async def _stream(self, req: ChatRequest) -> AsyncGenerator[StreamChunk, None]:
        await self.gateway.start()
        stream = await self.gateway.stream(req, api="python")
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()
            await self._flush()

    async def _flush(self) -> None:
        """Write this call's request-log rows now (see the module's docstring)."""
        if self.gateway.request_log is not None:
            await self.gateway.request_log.flush()

    async def aclose(self) -> None:
        await self.gateway.close()

    async def __aenter__(self) -> AsyncClient:
        await self.gateway.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _next(agen: AsyncGenerator[StreamChunk, None]) -> StreamChunk:
    return await agen.__anext__()


def _shutdown(client: AsyncClient, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Close the gateway on its loop and stop the loop's thread (at close or collection)."""
    if not loop.is_running():
        return
    done = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
    if threading.current_thread() is not thread:  # collected on its own loop: cannot wait for itself
        done.result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    if threading.current_thread() is not thread:
        thread.join(timeout=5)


class Client(ModeMethods[ChatResponse]):
    """Synchronous wrapper: the gateway lives on an event loop in a (daemon) background thread, closed
    by `close()`, a `with` block or garbage collection, whichever comes first."""

    def __init__(self, config: str | Config | Gateway | None = None, *, sim_only: bool = False) -> None:
        self._async = AsyncClient(config, sim_only=sim_only)
        self.gateway = self._async.gateway
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modelyard-client", daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._async, self._loop, self._thread)
        self._finalizer.atexit = False  # at exit the rows are written already, and the log's thread takes no work

    def _run(self, coro: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def chat(self, prompt: Prompt, *, model: str = "auto", **params: Unpack[ChatParams]) -> ChatResponse:
        """One completion; `params` are OpenAI chat-completions fields (temperature, tools, ...)."""
        return self._run(self._async.chat(prompt, model=model, **params))

    def stream(self, prompt: Prompt, *, model: str = "auto", **params: Unpack[ChatParams]) -> Iterator[StreamChunk]:
        """Yield chunks as they arrive; the last one carries usage. Arguments are checked at the call."""
        return self._iterate(self._async.stream(prompt, model=model, **params))

    def _iterate(self, agen: AsyncGenerator[StreamChunk, None]) -> Iterator[StreamChunk]:
        try:
            while True:
                try:
                    yield self._run(_next(agen))
                except StopAsyncIteration:
                    return
        finally:
            self._run(agen.aclose())

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
