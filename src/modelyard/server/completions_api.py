"""`POST /v1/completions`, the legacy text-completions API: a prompt in, text out, streamed or not.

Each prompt becomes a one-message chat request (`user: <prompt>`), so every provider and every
route serves it, and the answer is rendered in the legacy shapes (`text_completion` objects and
chunks). A list of prompts is answered prompt by prompt (concurrently), choices indexed in order.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BadRequest
from ..types import ChatRequest, ChatResponse, Message, StreamChunk, Usage
from . import openai_api
from .validate import bad, integer, number, type_name
from .validate import model as model_name

if TYPE_CHECKING:
    from .app import App
    from .http import Receive, Scope, Send

DEFAULT_MAX_TOKENS = 16  # the legacy API's own default
_FORWARDED = ("presence_penalty", "frequency_penalty", "logit_bias")  # to OpenAI-format upstreams
_FIELDS = frozenset(("model", "prompt", "max_tokens", "temperature", "top_p", "n", "stop", "stream",
                     "stream_options", "user", "seed", "echo", "metadata", "modelyard", "logprobs", "best_of",
                     "suffix", *_FORWARDED))


def _prompts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(p, str) for p in value):
        return list(value)
    if isinstance(value, list) and value and all(isinstance(p, int | list) for p in value):
        raise bad("prompt", "token-id prompts are not supported: send the text")
    raise bad("prompt", f"must be a string or a non-empty array of strings, got {type_name(value)}")


def parse_request(body: Any) -> tuple[list[ChatRequest], bool]:
    """One chat request per prompt, and whether to echo the prompt before each answer."""
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type_name(body)}")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise bad(unknown[0], "unknown field for /v1/completions")
    if body.get("suffix"):
        raise bad("suffix", "insertion (suffix) is not supported; send the prompt only")
    if body.get("logprobs"):
        raise bad("logprobs", "log probabilities are not supported by /v1/completions here")
    if (body.get("best_of") or 1) != 1:
        raise bad("best_of", "only 1 is supported")
    prompts = _prompts(body.get("prompt"))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise bad("stream", "must be true or false")
    if stream and len(prompts) > 1:
        raise bad("prompt", "a streamed completion takes one prompt")
    echo = body.get("echo") or False
    if not isinstance(echo, bool):
        raise bad("echo", "must be true or false")
    model = model_name(body)
    max_tokens = integer(body, "max_tokens", 1)
    temperature, top_p = number(body, "temperature", 0, 2), number(body, "top_p", 0, 1)
    n = integer(body, "n", 1, 16) or 1
    seed = integer(body, "seed", -(2**63), 2**63 - 1)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4):
        raise bad("stop", "must be a string or an array of up to 4 strings")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise bad("stream_options", "must be an object such as {'include_usage': true}")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("user", "must be a string")
    metadata: dict[str, Any] = {}
    for key in ("metadata", "modelyard"):
        v = body.get(key)
        if v is not None:
            if not isinstance(v, dict):
                raise bad(key, f"must be an object, got {type_name(v)}")
            metadata.update(v)
    extra = {k: body[k] for k in _FORWARDED if body.get(k) is not None}
    reqs = [ChatRequest(model=model, messages=[Message("user", p)], temperature=temperature, top_p=top_p,
                        max_tokens=max_tokens or DEFAULT_MAX_TOKENS, stop=stop or None, seed=seed, n=n,
                        stream=stream, include_usage=bool(so and so.get("include_usage")), user=user,
                        metadata=dict(metadata), extra=dict(extra)) for p in prompts]
    return reqs, echo


def _usage(u: Usage) -> dict[str, int]:
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def render(resps: list[ChatResponse], prompts: list[str], echo: bool, rid: str) -> bytes:
    choices: list[dict[str, Any]] = []
    usage = Usage()
    for i, resp in enumerate(resps):
        usage.add(resp.usage)
        for c in resp.choices:
            text = c.message.text()
            choices.append({"text": prompts[i] + text if echo else text, "index": len(choices), "logprobs": None,
                            "finish_reason": c.finish_reason})
    first = resps[0]
    body: dict[str, Any] = {"id": "cmpl-" + rid.removeprefix("req_"), "object": "text_completion",
                            "created": first.created, "model": first.model, "choices": choices,
                            "usage": _usage(usage), "system_fingerprint": first.system_fingerprint}
    if first.modelyard is not None:
        body["modelyard"] = first.modelyard
    return orjson.dumps(body)


def install(app: App) -> None:
    """Serve POST /v1/completions (and /completions)."""

    async def completions(scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        caller = app.check_auth(scope)
        reqs, echo = parse_request(await app.read_json(scope, receive))
        for r in reqs:
            r.caller = caller
        prompts = [r.messages[0].text() for r in reqs]
        gw = app.gateway
        if not reqs[0].stream:
            if len(reqs) == 1:
                resps = [await gw.chat(reqs[0], request_id=rid, api="completions")]
            else:
                resps = list(await asyncio.gather(*(gw.chat(r, request_id=f"{rid}.{i}", api="completions")
                                                    for i, r in enumerate(reqs))))
            body = render(resps, prompts, echo, rid)
            resps[0].cost_usd = sum(r.cost_usd for r in resps)
            headers = app._response_headers(rid, resps[0], body)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        req = reqs[0]
        stream = await gw.stream(req, request_id=rid, api="completions")
        cid = "cmpl-" + rid.removeprefix("req_")
        echoed = [not echo]

        def chunk_bytes(chunk: StreamChunk) -> bytes:
            out = b""
            text = chunk.text or ""
            if not echoed[0]:
                echoed[0], text = True, prompts[0] + text
            if text or chunk.finish_reason:
                obj = {"id": cid, "object": "text_completion", "created": chunk.created, "model": chunk.model,
                       "choices": [{"text": text, "index": chunk.index, "logprobs": None,
                                    "finish_reason": chunk.finish_reason}]}
                out += b"data: " + orjson.dumps(obj) + b"\n\n"
            if chunk.usage is not None and req.include_usage:
                obj = {"id": cid, "object": "text_completion", "created": chunk.created, "model": chunk.model,
                       "choices": [], "usage": _usage(chunk.usage),
                       "modelyard": {"deployment": stream.deployment.name, "cost_usd": stream.cost_usd,
                                     "request_id": rid}}
                out += b"data: " + orjson.dumps(obj) + b"\n\n"
            return out

        await app._pump(send, rid, stream, chunk_bytes, openai_api.error_event, lambda: openai_api.DONE)

    for prefix in ("/v1", ""):
        app.add_route("POST", prefix + "/completions", completions)
