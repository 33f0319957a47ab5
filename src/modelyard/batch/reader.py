"""Input lines → requests. Two formats per line, mixable in one file:

- plain: `{"messages": [...], "model": ..., ...chat params}` (optionally with a `custom_id`);
  its id is `line-N` (1-based) unless it names one;
- the OpenAI batch line: `{"custom_id": ..., "method": "POST", "url": "/v1/chat/completions",
  "body": {...}}`.

A line that cannot be a request is a `Malformed` with its line number and what to fix, and the rest
of the file still runs. Full validation of the chat parameters happens when the line is sent (the
gateway's own checks), so both paths report the same messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

URLS = ("/v1/chat/completions", "/chat/completions")


@dataclass(slots=True)
class Item:
    line: int  # 1-based line number in the input file
    custom_id: str
    body: dict[str, Any]  # the chat-completions body


@dataclass(slots=True)
class Malformed:
    line: int
    custom_id: str | None
    reason: str


def _type(v: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(v), type(v).__name__)


def parse_line(raw: bytes, n: int, model: str | None) -> Item | Malformed:
    """One line (without its newline) → an Item, or a Malformed saying what is wrong."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Malformed(n, None, f"not valid JSON: {e}")
    if not isinstance(obj, dict):
        return Malformed(n, None, f"a line must be a JSON object, got {_type(obj)}")
    cid = obj.get("custom_id")
    if cid is not None and (not isinstance(cid, str) or not cid):
        return Malformed(n, None, "custom_id must be a non-empty string")
    if "body" in obj or "method" in obj or "url" in obj:  # the OpenAI batch line format
        if cid is None:
            return Malformed(n, None, "an OpenAI batch line needs a custom_id")
        if obj.get("method", "POST") != "POST":
            return Malformed(n, cid, f"method must be POST, got {obj.get('method')!r}")
        if obj.get("url", URLS[0]) not in URLS:
            return Malformed(n, cid, f"url must be /v1/chat/completions, got {obj.get('url')!r}")
        body = obj.get("body")
        if not isinstance(body, dict):
            return Malformed(n, cid, f"body must be a chat-completions object, got {_type(body)}")
    else:
        body = obj
        if cid is not None:
            body = {k: v for k, v in obj.items() if k != "custom_id"}
        cid = f"line-{n}" if cid is None else cid
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return Malformed(n, cid, "messages must be a non-empty array of {'role': ..., 'content': ...}")
    if body.get("stream"):
        return Malformed(n, cid, "stream is not supported in a batch; remove it (results are written whole)")
    if "model" not in body and model:
        body["model"] = model
    elif not isinstance(body.get("model"), str) or not body["model"]:
        return Malformed(n, cid, "model must be a model or group name (or pass --model)")
    return Item(n, cid, body)


def read_items(path: str, model: str | None = "auto") -> Iterator[Item | Malformed]:
    """Every non-blank line of `path`, in order; duplicate custom_ids are reported after the first."""
    seen: dict[str, int] = {}
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            raw = raw.strip()
            if not raw:
                continue
            got = parse_line(raw, n, model)
            if isinstance(got, Item):
                first = seen.setdefault(got.custom_id, n)
                if first != n:
                    yield Malformed(n, got.custom_id, f"duplicate custom_id {got.custom_id!r} (first on line {first})")
                    continue
            yield got
