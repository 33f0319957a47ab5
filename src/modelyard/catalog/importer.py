"""Price lists from elsewhere: LiteLLM's JSON price map → catalog entries, and the `catalog_files:`
a config file may list (YAML files with a `catalog:` mapping, e.g. written by
`modelyard catalog import`), merged under the config's own `catalog:` entries.

LiteLLM's map gives USD per token; cards hold USD per 1M tokens. Fields read:
input/output_cost_per_token, cache_read_input_token_cost, cache_creation_input_token_cost,
the `*_above_<N>k_tokens` variants (a long-context tier), max_input_tokens, max_output_tokens
(or max_tokens), litellm_provider, mode (only chat models), supports_function_calling /
supports_vision / supports_response_schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_ABOVE = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


def _per_m(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return round(float(v) * 1_000_000, 6)


def from_litellm(data: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """(catalog entries by model name, names skipped with the reason)."""
    out: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for name, spec in data.items():
        if name == "sample_spec" or not isinstance(spec, dict):
            continue
        if spec.get("mode", "chat") != "chat":
            skipped.append(f"{name}: mode {spec.get('mode')}")
            continue
        inp, outp = _per_m(spec.get("input_cost_per_token")), _per_m(spec.get("output_cost_per_token"))
        if inp is None or outp is None:
            skipped.append(f"{name}: no input/output price")
            continue
        card: dict[str, Any] = {"provider": str(spec.get("litellm_provider") or "custom"),
                                "input_per_m": inp, "output_per_m": outp}
        for src, dst in (("cache_read_input_token_cost", "cached_input_per_m"),
                         ("cache_creation_input_token_cost", "cache_write_per_m"),
                         ("cache_creation_input_token_cost_above_1hr", "cache_write_1h_per_m")):
            if (v := _per_m(spec.get(src))) is not None:
                card[dst] = v
        if isinstance(spec.get("max_input_tokens"), int):
            card["context_window"] = spec["max_input_tokens"]
        max_out = spec.get("max_output_tokens") or spec.get("max_tokens")
        if isinstance(max_out, int):
            card["max_output"] = max_out
        caps = ["streaming"]
        for flag, cap in (("supports_function_calling", "tools"), ("supports_vision", "vision"),
                          ("supports_response_schema", "json")):
            if spec.get(flag):
                caps.append(cap)
        card["capabilities"] = caps
        tiers = []
        for key in spec:
            m = _ABOVE.match(key)
            if not m:
                continue
            n = m.group(1)
            t_in, t_out = _per_m(spec[key]), _per_m(spec.get(f"output_cost_per_token_above_{n}k_tokens"))
            if t_in is None:
                continue
            tier: dict[str, Any] = {"above_input_tokens": int(n) * 1000, "input_per_m": t_in,
                                    "output_per_m": outp if t_out is None else t_out}
            if (v := _per_m(spec.get(f"cache_read_input_token_cost_above_{n}k_tokens"))) is not None:
                tier["cached_input_per_m"] = v
            tiers.append(tier)
        if tiers:
            card["tiers"] = sorted(tiers, key=lambda t: t["above_input_tokens"])
        out[name] = card
    return out, skipped


def merge_catalog_files(data: Any, base: Path) -> Any:
    """`data` (a parsed config) with the `catalog:` of each file in its `catalog_files:` merged in,
    the config's own entries winning. Paths are relative to the config file's directory."""
    if not isinstance(data, dict) or "catalog_files" not in data:
        return data
    from ..config import read_yaml

    files = data.pop("catalog_files") or []
    merged: dict[str, Any] = {}
    for f in files if isinstance(files, list) else [files]:
        doc = read_yaml(base / str(f))
        entries = doc.get("catalog") if isinstance(doc, dict) else None
        if isinstance(entries, dict):
            merged.update(entries)
    merged.update(data.get("catalog") or {})
    data["catalog"] = merged
    return data
