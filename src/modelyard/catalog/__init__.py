"""Model cards as data: prices, context window, capabilities, quality and latency priors.

`cards.yaml` ships with the package; config's `catalog:` section adds or overrides entries
(`modelyard catalog import` turns a LiteLLM price map into such a section).
Cost of a request = real usage × card (see `ModelCard.cost`): input, cached input (cache reads),
cache writes (5-minute and 1-hour lifetimes apart), and output — reasoning tokens are output tokens,
billed at the output price by every provider — at the card's prices, or at a long-context tier's
prices when the prompt is above the tier's threshold (the provider then bills the whole request at
that tier).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import yaml

from ..types import Usage

CAPABILITIES = frozenset(("tools", "vision", "json", "streaming"))


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Prices for prompts of more than `above_input_tokens` (e.g. Gemini 2.5 Pro past 200k)."""

    above_input_tokens: int
    input_per_m: float
    output_per_m: float
    cached_input_per_m: float | None = None
    cache_write_per_m: float | None = None
    cache_write_1h_per_m: float | None = None


@dataclass(frozen=True, slots=True)
class ModelCard:
    name: str
    provider: str
    input_per_m: float  # USD per 1M input tokens
    output_per_m: float  # USD per 1M output tokens
    cached_input_per_m: float | None = None  # USD per 1M cached input tokens (None: input price)
    context_window: int = 8192
    max_output: int = 4096
    capabilities: frozenset[str] = frozenset(("streaming",))
    quality: dict[str, float] = field(default_factory=dict)  # task -> 0..1 prior; "general" default
    ttft_ms: float = 500.0  # typical time to first token
    tokens_per_s: float = 60.0  # typical output speed
    cache_write_per_m: float | None = None  # USD per 1M tokens written to the prompt cache (None: input price)
    tiers: tuple[PriceTier, ...] = ()  # long-context prices, by ascending threshold
    checked: str | None = None  # YYYY-MM-DD: when the prices were checked against the provider's list
    cache_write_1h_per_m: float | None = None  # USD per 1M tokens written for 1 hour (None: the write price)
    source: str | None = None  # where the prices were read (the provider's pricing page)

    def cost(self, usage: Usage) -> float:
        """USD for this usage: cache reads at the cached price, cache writes at the write price (1-hour
        writes at theirs), the rest of the prompt at the input price, output (reasoning included) at
        the output price."""
        if not (self.tiers or usage.cached_input_tokens or usage.cache_write_tokens):  # the common case
            return (usage.input_tokens * self.input_per_m + usage.output_tokens * self.output_per_m) / 1_000_000
        inp, out, cached_p, write_p, hour_p = self.input_per_m, self.output_per_m, self.cached_input_per_m, \
            self.cache_write_per_m, self.cache_write_1h_per_m
        for t in self.tiers:
            if usage.input_tokens > t.above_input_tokens:
                inp, out, cached_p = t.input_per_m, t.output_per_m, t.cached_input_per_m
                write_p, hour_p = t.cache_write_per_m, t.cache_write_1h_per_m
        if write_p is None:
            write_p = inp
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        hour = min(usage.cache_write_1h_tokens, written)
        return ((usage.input_tokens - cached - written) * inp + cached * (inp if cached_p is None else cached_p)
                + (written - hour) * write_p + hour * (write_p if hour_p is None else hour_p)
                + usage.output_tokens * out) / 1_000_000

    @property
    def worst_input_per_m(self) -> float:
        """The highest price a prompt token can have on any tier (a budget reservation's worst case)."""
        writes = [self.cache_write_per_m, self.cache_write_1h_per_m]
        for t in self.tiers:
            writes += (t.cache_write_per_m, t.cache_write_1h_per_m)
        return max((self.input_per_m, *(t.input_per_m for t in self.tiers), *(p for p in writes if p is not None)))

    @property
    def worst_output_per_m(self) -> float:
        return max((self.output_per_m, *(t.output_per_m for t in self.tiers)))

    def quality_for(self, task: str) -> float:
        q = self.quality
        return q.get(task, q.get("general", 0.5))


def _capabilities(name: str, values: Any) -> frozenset[str]:
    caps = frozenset(values)
    unknown = caps - CAPABILITIES
    if unknown:
        raise ValueError(f"catalog card {name!r}: unknown capabilities {sorted(unknown)}; "
                         f"known: {', '.join(sorted(CAPABILITIES))}")
    return caps


def _price(v: Any) -> float | None:
    return None if v is None else float(v)


def _tiers(name: str, values: Any) -> tuple[PriceTier, ...]:
    tiers = []
    for t in values or ():
        if isinstance(t, PriceTier):
            tiers.append(t)
            continue
        try:
            tiers.append(PriceTier(int(t["above_input_tokens"]), float(t["input_per_m"]), float(t["output_per_m"]),
                                   _price(t.get("cached_input_per_m")), _price(t.get("cache_write_per_m")),
                                   _price(t.get("cache_write_1h_per_m"))))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"catalog card {name!r}: a tier needs above_input_tokens, input_per_m and "
                             f"output_per_m ({e})") from None
    return tuple(sorted(tiers, key=lambda t: t.above_input_tokens))


def _card(name: str, d: dict[str, Any]) -> ModelCard:
    caps = _capabilities(name, d.get("capabilities", ("streaming",)))
    return ModelCard(
        name=name,
        provider=d["provider"],
        input_per_m=float(d["input_per_m"]),
        output_per_m=float(d["output_per_m"]),
        cached_input_per_m=None if d.get("cached_input_per_m") is None else float(d["cached_input_per_m"]),
        context_window=int(d.get("context_window", 8192)),
        max_output=int(d.get("max_output", 4096)),
        capabilities=caps,
        quality=dict(d.get("quality", {})),
        ttft_ms=float(d.get("ttft_ms", 500.0)),
        tokens_per_s=float(d.get("tokens_per_s", 60.0)),
        cache_write_per_m=_price(d.get("cache_write_per_m")),
        tiers=_tiers(name, d.get("tiers")),
        checked=None if d.get("checked") is None else str(d["checked"]),
        cache_write_1h_per_m=_price(d.get("cache_write_1h_per_m")),
        source=None if d.get("source") is None else str(d["source"]),
    )


_BUILTIN: dict[str, ModelCard] | None = None


def builtin_cards() -> dict[str, ModelCard]:
    """The shipped cards, parsed once per process."""
    global _BUILTIN
    if _BUILTIN is None:
        text = resources.files(__package__).joinpath("cards.yaml").read_text(encoding="utf-8")
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        _BUILTIN = {name: _card(name, d) for name, d in data["models"].items()}
    return _BUILTIN


class Catalog:
    """Lookup of cards by name, with config overrides applied on top of the shipped data."""

    def __init__(self, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        self.cards: dict[str, ModelCard] = dict(builtin_cards())
        for name, o in (overrides or {}).items():
            o = {k: v for k, v in o.items() if v is not None}
            if "capabilities" in o:
                o["capabilities"] = _capabilities(name, o["capabilities"])
            if "tiers" in o:
                o["tiers"] = _tiers(name, o["tiers"])
            if "checked" in o:
                o["checked"] = str(o["checked"])
            base = self.cards.get(name)
            if base is None:
                self.cards[name] = _card(name, {"provider": "custom", "input_per_m": 0, "output_per_m": 0} | o)
            else:
                self.cards[name] = replace(base, **o)

    def get(self, name: str) -> ModelCard | None:
        card = self.cards.get(name)
        if card is None and "/" in name:  # "openai/gpt-4o" -> "gpt-4o"
            card = self.cards.get(name.split("/", 1)[1])
        return card

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __len__(self) -> int:
        return len(self.cards)


def unknown_card(name: str, provider: str) -> ModelCard:
    """A zero-price card for models the catalog does not know (logged as cost 0, not guessed)."""
    return ModelCard(name=name, provider=provider, input_per_m=0.0, output_per_m=0.0,
                     context_window=128_000, max_output=4096,
                     capabilities=frozenset(("streaming", "tools", "json")))
