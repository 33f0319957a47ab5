"""Tool calls of the simulated fleet: which tool a prompt asks for, and the text answer after
the tool results come back."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from ...types import ChatRequest, Tool
from .schema import _PLACE_FIELDS, _Hints
from .words import _STOP, _WORD, _join, _wordset

if TYPE_CHECKING:
    from .context import _Context


# --- tools -----------------------------------------------------------------------------------------

def _forced_tool(req: ChatRequest) -> list[Tool] | None:
    """The tool the request forces (`required` or a named tool), if any."""
    tools, choice = req.tools, req.tool_choice
    if not tools or choice in (None, "auto", "none"):
        return None
    if isinstance(choice, dict):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        named = [t for t in tools if t.name == name]
        return named or None
    if choice in ("required", "any"):
        text = _last_user_text(req)
        return _mentioned_tools(tools, text) or [_likeliest_tool(tools, _Hints(text))]
    return None


def _likeliest_tool(tools: Sequence[Tool], hints: _Hints) -> Tool:
    """When a call is required but no tool is named: the one whose parameters the prompt can fill."""
    def fit(tool: Tool) -> int:
        props = [p.lower() for p in (tool.parameters or {}).get("properties", {})]
        score = 0
        for p in props:
            if hints.caps and p in ("ticker", "symbol", "stock"):
                score += 2
            if (hints.places or hints.proper) and any(k in p for k in _PLACE_FIELDS):
                score += 1
            if (hints.emails and "email" in p) or (hints.urls and "url" in p):
                score += 2
        return score
    return max(tools, key=fit)  # max keeps the first of equals


def _last_user_text(req: ChatRequest) -> str:
    return next((m.text() for m in reversed(req.messages) if m.role == "user"), "")


_GENERIC_NAME_PARTS = _wordset("get set fetch list create update delete find search run call make do tool "
                                "query lookup look up current info data by for the")


def _mentioned_tools(tools: Sequence[Tool], text: str) -> list[Tool]:
    """Tools the prompt asks for: by name, by a distinctive part of the name, or by description."""
    low = text.lower()
    words = set(_WORD.findall(low))
    by_name, best, best_score = [], None, 1
    for t in tools:
        parts = [p.lower() for p in re.split(r"[_\-\s.]+|(?<=[a-z])(?=[A-Z])", t.name) if p]
        if t.name.lower() in low or " ".join(parts) in low:
            by_name.append(t)
            continue
        if any(p in words for p in parts if p not in _GENERIC_NAME_PARTS and len(p) >= 4):
            by_name.append(t)
            continue
        desc = {w for w in _WORD.findall((t.description or "").lower()) if w not in _STOP and len(w) >= 4}
        score = len(desc & words)
        if score > best_score:
            best, best_score = t, score
    return by_name[:3] or ([best] if best else [])


def _after_tool(ctx: _Context, index: int) -> str:
    """A text answer that uses the tool results after the last assistant turn."""
    msgs = ctx.req.messages
    names: dict[str, str] = {}
    for m in msgs:
        for c in m.tool_calls or ():
            names[c.id] = c.name
    results = []
    for m in reversed(msgs):
        if m.role != "tool":
            break
        results.append((names.get(m.tool_call_id or "", m.name or "the tool"), m.text()))
    results.reverse()
    rng = ctx.rng(index, "after-tool")
    facts = [_describe_result(name, text) for name, text in results]
    lead = {
        "frontier": ["Here's what I found. ", "I checked. ", ""],
        "balanced": ["Sure. ", "Got it. ", ""],
        "fast": [""],
        "local": ["Okay, so ", "Alright. "],
    }[ctx.prof.tier]
    text = rng.choice(lead) + " ".join(facts)
    if ctx.prof.tier in ("frontier", "balanced"):
        text += " " + rng.choice(["Let me know if you'd like more detail.", "Anything else you want me to check?",
                                  "Happy to dig further if needed."])
    return text.strip()


def _describe_result(tool: str, content: str) -> str:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and value:
        parts = []
        for k, v in list(value.items())[:5]:
            label = str(k).replace("_", " ").strip()
            shown = v if isinstance(v, (str, int, float, bool)) else orjson.dumps(v).decode()
            parts.append(f"the {label} is {shown}")
        return f"According to {tool}, " + _join(parts) + "."
    shown = content.strip() or "nothing"
    if len(shown) > 240:
        shown = shown[:237].rstrip() + "..."
    return f"{tool} returned {shown}" + ("" if shown.endswith((".", "!", "?")) else ".")
