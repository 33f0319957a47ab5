"""Field checks the two inbound APIs share (openai_api.py, anthropic_api.py), so the same mistake
gets the same 400 whichever API it came through: each problem is a BadRequest whose message
starts with the field's path (`messages[1].role: ...`) and says what to send instead.

Hand-written rather than pydantic because they run on every request.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ..errors import BadRequest

_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
          float: "a number", type(None): "null"}


def bad(param: str, message: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param)


def type_name(value: Any) -> str:
    """The JSON type of `value`, with its article: "an object", "a string", "null"."""
    return _NAMES.get(type(value), type(value).__name__)


def choices(values: Collection[str]) -> str:
    """'a', 'b' or 'c', in the order given."""
    quoted = [repr(v) for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def number(body: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    """body[key] as a float in [lo, hi] (temperature, top_p); None if absent."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(key, f"must be a number between {lo:g} and {hi:g}, got {type_name(value)}")
    if not lo <= value <= hi:
        raise bad(key, f"must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def integer(body: dict[str, Any], key: str, lo: int, hi: int | None = None, *, param: str | None = None,
            required: bool = False) -> int | None:
    """body[key] as an int in [lo, hi] (max_tokens, top_k, seed, n); None if absent and not required."""
    value = body.get(key)
    bound = f"between {lo} and {hi}" if hi is not None else ("a positive integer" if lo == 1 else f">= {lo}")
    what = bound if lo == 1 and hi is None else f"an integer {bound}"
    rule = f"required, {what}" if required else f"must be {what}"
    if value is None:
        if required:
            raise bad(param or key, rule)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(param or key, f"{rule}, got {type_name(value)}")
    if value < lo or (hi is not None and value > hi):
        raise bad(param or key, f"{rule}, got {value}")
    return value


def string(obj: dict[str, Any], key: str, param: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise bad(param, "required, a string")
        return None
    if not isinstance(value, str):
        raise bad(param, f"must be a string, got {type_name(value)}")
    return value


def boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise bad(param, f"must be true or false, got {type_name(value)}")
    return value


def obj(value: Any, param: str, what: str = "an object") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(param, f"must be {what}, got {type_name(value)}")
    return value


def model(body: dict[str, Any]) -> str:
    value = body.get("model")
    if not isinstance(value, str) or not value:
        raise bad("model", "required, the name of a model or model group (see GET /v1/models)")
    return value


def messages(body: dict[str, Any]) -> list[Any]:
    value = body.get("messages")
    if not isinstance(value, list) or not value:
        raise bad("messages", "must be a non-empty list of {'role': ..., 'content': ...} objects")
    return value


def message(value: Any, param: str) -> dict[str, Any]:
    return obj(value, param, "an object with 'role' and 'content'")


def role(value: Any, allowed: Collection[str], param: str, hint: str = "") -> str:
    if value not in allowed:
        raise bad(param, f"must be {choices(allowed)}, got {value!r}{hint}")
    return value


def content_kind(value: Any, param: str, parts: str) -> None:
    """A message's content that is neither a string nor a list of `parts`."""
    raise bad(param, f"must be a string or a non-empty list of {parts}, got "
                     f"{'an empty list' if isinstance(value, list) else type_name(value)}")


def tools(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise bad("tools", f"must be a list of tool definitions, got {type_name(value)}")
    return value


def schema(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        raise bad(param, "required, a JSON Schema object")
    return obj(value, param, "a JSON Schema object")


def stream(body: dict[str, Any]) -> bool:
    value = body.get("stream")
    return False if value is None else boolean(value, "stream")
