"""The simulated provider: in-process deployments with card-priced usage, card-shaped latency
and configured failure rates, and no HTTP."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ...deployment import Deployment
from ...errors import RateLimited, Unavailable
from ...tokens import count_tokens
from ...types import ChatRequest, ChatResponse, Choice, Message, StreamChunk, ToolCallDelta
from ..base import Provider
from .context import _answer, _Reply
from .profile import _make_profile, _Profile

_WORDS_PER_CHUNK = 3  # a streamed chunk carries a few tokens, as real upstreams do
_PREFILL_SPEEDUP = 40.0  # prompt tokens are read this many times faster than output is written


# --- the provider --------------------------------------------------------------------------------

class SimProvider(Provider):
    """In-process simulated deployments (kind "sim"): no HTTP, deterministic content."""

    kind = "sim"

    def __init__(self, seed: int | None = None, zero_latency: bool = False) -> None:
        self._rng = random.Random(seed)  # failures, jitter and response ids; content never uses it
        self.zero_latency = zero_latency or os.environ.get("MODELYARD_SIM_ZERO_LATENCY") == "1"
        # Each deployment's profile, computed when it is prepared (Deployments hash by identity).
        self._profiles: dict[Deployment, _Profile] = {}

    def prepare(self, dep: Deployment) -> None:
        prof = self._profiles[dep] = _make_profile(dep, self.zero_latency)
        dep.adapter = self
        dep.timeout_enforced = prof.zero_latency  # a simulation that never waits needs no timer

    def _profile(self, dep: Deployment) -> _Profile:
        prof = self._profiles.get(dep)
        if prof is None:  # a Deployment built by hand, never prepared
            prof = self._profiles[dep] = _make_profile(dep, self.zero_latency)
        return prof

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        prof = self._profile(dep)
        replies, usage = _answer(req, dep, prof)
        await self._fail_maybe(dep, prof)
        if not prof.zero_latency:
            await asyncio.sleep(self._ttft(prof, usage.input_tokens)
                                + self._jittered(prof, usage.output_tokens / prof.tokens_per_s))
        choices = [Choice(index=i, finish_reason=r.finish_reason,
                          message=Message("assistant", r.text, tool_calls=r.tool_calls))
                   for i, r in enumerate(replies)]
        return ChatResponse(id=self._new_id(), model=dep.model, choices=choices, usage=usage)

    async def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[StreamChunk]:
        prof = self._profile(dep)
        replies, usage = _answer(req, dep, prof)
        await self._fail_maybe(dep, prof)
        rid, created, model = self._new_id(), int(time.time()), dep.model
        per_token = 0.0
        if not prof.zero_latency:
            await asyncio.sleep(self._ttft(prof, usage.input_tokens))
            per_token = self._jittered(prof, 1.0 / prof.tokens_per_s)
        last = len(replies) - 1
        for i, reply in enumerate(replies):
            yield StreamChunk(id=rid, model=model, role="assistant", text="", index=i, created=created)
            for piece in _stream_pieces(reply):
                await asyncio.sleep(per_token * count_tokens(piece.text or piece.tool_text) if per_token else 0)
                yield StreamChunk(id=rid, model=model, text=piece.text, tool_calls=piece.tool_calls,
                                  index=i, created=created)
            yield StreamChunk(id=rid, model=model, finish_reason=reply.finish_reason, index=i,
                              created=created, usage=usage if i == last else None)

    # --- timing and failures ----------------------------------------------------------------
    def _jittered(self, prof: _Profile, seconds: float) -> float:
        return seconds * (1.0 + prof.jitter * (2.0 * self._rng.random() - 1.0))

    def _ttft(self, prof: _Profile, input_tokens: int) -> float:
        prefill = input_tokens / (prof.tokens_per_s * _PREFILL_SPEEDUP)
        return self._jittered(prof, prof.ttft_s + prefill)

    async def _fail_maybe(self, dep: Deployment, prof: _Profile) -> None:
        if not (prof.failure_rate or prof.rate_limit_rate):
            return
        u = self._rng.random()
        if u < prof.failure_rate:
            if not prof.zero_latency:  # an overloaded upstream takes a moment to say so
                await asyncio.sleep(self._jittered(prof, prof.ttft_s / 2))
            raise Unavailable(f"deployment '{dep.name}' (simulated) answered 503: the model is "
                              "overloaded, try again or use another deployment",
                              deployment=dep.name, upstream_status=503)
        if u < prof.failure_rate + prof.rate_limit_rate:
            raise RateLimited(f"deployment '{dep.name}' (simulated) answered 429: rate limit reached, "
                              "retry after 1 s", retry_after=1.0, deployment=dep.name, upstream_status=429)

    def _new_id(self) -> str:
        return f"chatcmpl-sim-{self._rng.getrandbits(96):024x}"



# --- streaming pieces --------------------------------------------------------------------------------

@dataclass(slots=True)
class _Piece:
    text: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    tool_text: str = ""


_STREAM_WORDS = re.compile(r"\s*\S+\s*|\s+")


def _stream_pieces(reply: _Reply) -> list[_Piece]:
    if reply.tool_calls:
        out = []
        for k, call in enumerate(reply.tool_calls):
            out.append(_Piece(tool_calls=[ToolCallDelta(k, id=call.id, name=call.name)], tool_text=call.name))
            args = call.arguments
            step = max(8, len(args) // 3 + 1)
            for j in range(0, len(args), step):
                part = args[j:j + step]
                out.append(_Piece(tool_calls=[ToolCallDelta(k, arguments=part)], tool_text=part))
        return out
    words = _STREAM_WORDS.findall(reply.text or "")
    return [_Piece(text="".join(words[j:j + _WORDS_PER_CHUNK]))
            for j in range(0, len(words), _WORDS_PER_CHUNK)]
