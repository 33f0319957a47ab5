"""The embedded default configuration: what `modelyard serve` runs with no config file.

Real providers for every API key found in the environment, Ollama when it answers on
localhost:11434, and always the simulated fleet (`sim/*`), which is all `make demo` and the
test suite need.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from .config import Config, parse_config
from .providers.sim import SIM_FLEET

# provider env var -> (provider kind, deployments it enables: name -> upstream model)
_REAL: dict[str, tuple[str, dict[str, str]]] = {
    "OPENAI_API_KEY": ("openai", {"gpt-4o": "gpt-4o", "gpt-4o-mini": "gpt-4o-mini", "gpt-4.1-mini": "gpt-4.1-mini"}),
    "ANTHROPIC_API_KEY": ("anthropic", {"claude-sonnet-4-5": "claude-sonnet-4-5",
                                        "claude-haiku-4-5": "claude-haiku-4-5"}),
    "GEMINI_API_KEY": ("gemini", {"gemini-2.5-flash": "gemini-2.5-flash", "gemini-2.5-pro": "gemini-2.5-pro"}),
}


def _ollama_up(host: str = "127.0.0.1", port: int = 11434, timeout: float = 0.15) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# `auto`: hard prompts to the frontier tier, code/math/reasoning to at least the balanced tier, light
# chat and lookups to the fast tier; whatever is left (and the order inside each target) by score,
# which weighs cost, latency and task quality and leans on quality as complexity rises. Filters
# come first, so a prompt with images or tools never lands on a deployment that cannot take it.
AUTO_ROUTING: dict[str, Any] = {
    "rules": [
        {"name": "hard", "when": {"complexity": {"gte": 0.6}}, "to": "sim/frontier"},
        {"name": "code-math-reasoning", "when": {"task": ["code_generation", "code_review", "math", "reasoning"]},
         "to": ["sim/balanced", "sim/frontier"]},
        {"name": "light", "when": {"task": ["chat", "simple_qa", "classification", "extraction"],
                                   "complexity": {"lt": 0.35}}, "to": "sim/fast"},
    ],
    "then": "score",
}


def default_config_data(environ: dict[str, str] | None = None, *, sim_only: bool = False) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    deployments: dict[str, Any] = {name: dict(spec) for name, spec in SIM_FLEET.items()}
    groups: dict[str, Any] = {
        "auto": {"deployments": ["sim/frontier", "sim/balanced", "sim/fast", "sim/local"], "strategy": "rules",
                 "options": AUTO_ROUTING, "description": "the router: picks a deployment per request"},
        "smart": {"deployments": ["sim/frontier", "sim/balanced"], "description": "strongest first"},
        "fast": {"deployments": ["sim/fast", "sim/local"], "strategy": "fastest", "description": "lowest latency"},
        "cheap": {"deployments": ["sim/local", "sim/fast"], "strategy": "cheapest", "description": "lowest cost"},
    }
    if not sim_only:
        for var, (kind, models) in _REAL.items():
            if env.get(var):
                for name, model in models.items():
                    deployments[name] = {"provider": kind, "model": model, "api_key": f"env:{var}"}
        if env.get("MODELYARD_NO_OLLAMA") != "1" and _ollama_up():
            deployments["ollama/llama3.2"] = {"provider": "openai", "model": "llama3.2",
                                              "api_base": "http://127.0.0.1:11434/v1"}
    return {"deployments": deployments, "model_groups": groups}


def default_config(environ: dict[str, str] | None = None, *, sim_only: bool = False) -> Config:
    return parse_config(default_config_data(environ, sim_only=sim_only), "<embedded defaults>", environ)
