"""JSON values that conform to a schema, filled from what the prompt offers (names, places,
numbers, emails, URLs): what the simulated fleet answers in JSON modes and tool arguments."""

from __future__ import annotations

import math
import random
import re
from typing import Any

from .words import _CAP_STOP, _CITIES, _KNOWN_PLACES, _clip, _keywords

_FIRST_NAMES = ("Alex Morgan", "Priya Shah", "Diego Ramos", "Mei Lin", "Sam Carter", "Amara Okafor", "Jonas Berg",
                "Lucia Romano", "Noah Kim", "Fatima Haddad")
_WORDS = ("alpha", "harbor", "signal", "meadow", "copper", "lantern", "summit", "orbit", "willow", "ember")
_TEXT_FIELDS = ("query", "q", "search", "text", "prompt", "question", "input", "message", "content", "keywords",
                "term", "topic", "description", "summary", "body", "comment", "note", "notes", "reason")
_PLACE_FIELDS = ("city", "location", "place", "destination", "origin", "town", "region", "address", "where")


class _Hints:
    """Values a prompt offers for string fields: names, tickers, quotes, numbers, emails, URLs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.quoted = re.findall(r"[\"“']([^\"”']{2,80})[\"”']", text)
        self.emails = re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)
        self.urls = re.findall(r"https?://\S+[^\s.,;:!?)]", text)
        self.dates = re.findall(r"\b\d{4}-\d{2}-\d{2}\b", text)
        self.numbers = [float(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", text)]
        self.caps = [w for w in re.findall(r"\b[A-Z]{2,5}\b", text) if w not in ("I", "AI", "OK", "USD", "EUR")]
        places = re.findall(r"\b(?:in|at|to|from|near)\s+([A-Z][a-zA-Z\-]+(?:\s[A-Z][a-zA-Z\-]+)?)", text)
        self.places = [p for p in places if p.split()[0] not in _CAP_STOP]
        self.proper = [w for w in re.findall(r"\b[A-Z][a-z][a-zA-Z\-]+\b", text) if w not in _CAP_STOP]
        self.names = [n for n in re.findall(r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+){1,2}\b", text)
                      if n.split()[0] not in _CAP_STOP]
        self.places += [_KNOWN_PLACES[w.lower()] for w in self.proper if w.lower() in _KNOWN_PLACES]
        self.keywords = _keywords(text)

    def string_for(self, field: str, rng: random.Random) -> str | None:
        f = field.lower()
        if "email" in f:
            return self.emails[0] if self.emails else "alex.morgan@example.com"
        if "url" in f or "link" in f or "website" in f:
            return self.urls[0] if self.urls else f"https://example.com/{rng.choice(_WORDS)}"
        if "date" in f or f in ("day", "when"):
            return self.dates[0] if self.dates else f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if f in ("ticker", "symbol", "stock", "code") or f.endswith("_symbol"):
            return self.caps[0] if self.caps else (self.proper[0].upper()[:4] if self.proper else "ACME")
        if f in ("zip", "zipcode", "zip_code", "postal_code", "postcode"):
            return f"{rng.randint(10000, 99999)}"
        if any(p in f for p in _PLACE_FIELDS) or f == "country":
            return self.places[0] if self.places else rng.choice(_CITIES)
        if f in ("name", "full_name", "person", "author", "user", "username", "customer", "owner"):
            if self.names:
                return self.names[0]
            return self.proper[0] if len(self.proper) == 1 else rng.choice(_FIRST_NAMES)
        if f in ("title", "subject", "headline"):
            return (" ".join(self.keywords[:3]).title() or rng.choice(_WORDS).title())
        if f in _TEXT_FIELDS:
            if self.quoted:
                return self.quoted[0]
            return _clip(self.text, 120) or rng.choice(_WORDS)
        if f in ("language", "lang", "locale"):
            return "en"
        if f == "id" or f.endswith("_id"):
            return f"{f[:-3] or 'id'}_{rng.getrandbits(32):08x}"
        if f in ("unit", "units"):
            return "celsius"
        if f in ("color", "colour"):
            return rng.choice(("red", "green", "blue", "amber", "teal"))
        if f in ("phone", "phone_number"):
            return f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
        return None


def _value(schema: Any, rng: random.Random, hints: _Hints, field: str, *, root: Any = None,
           depth: int = 0) -> Any:
    """A value that conforms to a JSON schema (the common subset models are asked for)."""
    if not isinstance(schema, dict) or depth > 8:
        return rng.choice(_WORDS)
    root = root if root is not None else schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _value(target, rng, hints, field, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or () if not (isinstance(o, dict) and o.get("type") == "null")]
        if options:
            return _value(options[0], rng, hints, field, root=root, depth=depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged["properties"].update(part.get("properties", {}))
                merged["required"] += part.get("required", [])
        return _value(merged, rng, hints, field, root=root, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: _value(sub, rng, hints, name, root=root, depth=depth + 1) for name, sub in props.items()}
    if kind == "array":
        lo = int(schema.get("minItems", 1))
        hi = max(lo, min(int(schema.get("maxItems", 3)), lo + 3))
        items = schema.get("items") or {"type": "string"}
        singular = field[:-1] if field.endswith("s") else field
        out = [_value(items, rng, hints, singular, root=root, depth=depth + 1) for _ in range(rng.randint(lo, hi))]
        if out and all(isinstance(v, str) for v in out) and not (isinstance(items, dict) and items.get("enum")):
            out = list(dict.fromkeys(out))  # no repeated strings: ["python", "sql"], not ["python", "python"]
            spare = [w for w in _WORDS if w not in out]
            while len(out) < lo and spare:
                out.append(spare.pop(rng.randrange(len(spare))))
        return out
    if kind in ("integer", "number"):
        return _number(schema, kind, rng, hints, field)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng, hints, field)


def _number(schema: dict[str, Any], kind: str, rng: random.Random, hints: _Hints, field: str) -> int | float:
    f = field.lower()
    lo, hi = 0.0, 100.0
    if "age" in f:
        lo, hi = 18, 80
    elif "year" in f:
        lo, hi = 1990, 2025
    elif f in ("count", "quantity", "qty", "n", "limit", "number", "amount_items"):
        lo, hi = 1, 10
    elif "price" in f or "amount" in f or "cost" in f:
        lo, hi = 1, 500
    elif any(k in f for k in ("score", "confidence", "probability", "ratio")):
        lo, hi = 0, 1
    if "minimum" in schema:
        lo = float(schema["minimum"])
    if "exclusiveMinimum" in schema:
        lo = float(schema["exclusiveMinimum"]) + (1 if kind == "integer" else 1e-6)
    if "maximum" in schema:
        hi = float(schema["maximum"])
    if "exclusiveMaximum" in schema:
        hi = float(schema["exclusiveMaximum"]) - (1 if kind == "integer" else 1e-6)
    hi = max(hi, lo)
    fits = [n for n in hints.numbers if lo <= n <= hi and (kind == "number" or n == int(n))]
    if fits and f not in ("confidence", "score", "probability"):
        return int(fits[0]) if kind == "integer" else fits[0]
    if kind == "integer":
        ilo, ihi = math.ceil(lo), math.floor(hi)
        return rng.randint(ilo, ihi) if ilo <= ihi else ilo
    return round(lo + (hi - lo) * rng.random(), 2 if hi - lo > 1 else 3)


def _string(schema: dict[str, Any], rng: random.Random, hints: _Hints, field: str) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        value = hints.string_for("date", rng) or "2025-06-15"
    elif fmt == "date-time":
        value = (hints.string_for("date", rng) or "2025-06-15") + f"T{rng.randint(8, 18):02d}:00:00Z"
    elif fmt == "email":
        value = hints.string_for("email", rng) or "alex.morgan@example.com"
    elif fmt in ("uri", "url"):
        value = hints.string_for("url", rng) or "https://example.com"
    elif fmt == "uuid":
        h = f"{rng.getrandbits(128):032x}"
        value = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
    else:
        hinted = hints.string_for(field, rng) if field else None
        value = hinted if hinted is not None else (
            rng.choice(hints.keywords[:4]) if hints.keywords else rng.choice(_WORDS))
    lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
    if hi is not None:
        value = value[: int(hi)]
    while len(value) < lo:
        value += " " + rng.choice(_WORDS)
    return value[: int(hi)] if hi is not None else value
