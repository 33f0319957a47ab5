"""Secrets in configuration: key references (`env:NAME`, `file:PATH`) turned into keys once at start-up,
and detection of literal keys pasted into a config file (by known prefix, and by shape and entropy), so
that no key is ever kept in git by accident and no error ever echoes one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

Problem = tuple[str, str]  # (field path, message): one line of a ConfigError

# prefixes of provider keys and tokens: OpenAI/Anthropic/OpenRouter (sk-), Stripe-style (sk_), Google
# (AIza), Groq, xAI, Perplexity, Hugging Face, Replicate, GitHub, GitLab, AWS, NVIDIA, Fireworks,
# Cerebras, Together, Slack
KEY_PREFIXES = ("sk-", "sk_", "AIza", "gsk_", "xai-", "pplx-", "hf_", "r8_", "ghp_", "gho_", "github_pat_",
                "glpat-", "AKIA", "ASIA", "nvapi-", "fw_", "csk-", "tgp_v1_", "xoxb-", "xoxp-")
_TOKEN = re.compile(r"[A-Za-z0-9_\-.+/=]{20,}")
REFERENCE_PREFIXES = ("env:", "file:")
_FIX = "looks like a literal API key: use a reference such as 'env:OPENAI_API_KEY' or '${OPENAI_API_KEY}'"


def looks_like_key(value: str) -> bool:
    """A known key prefix, or a long high-entropy token of mixed letters and digits."""
    for word in value.replace(",", " ").split():
        if len(word) >= 16 and word.startswith(KEY_PREFIXES):
            return True
        if _TOKEN.fullmatch(word) and not word.startswith(("http", "/", "./")) and _entropy_key(word):
            return True
    return False


def _header_secret(name: str, value: str) -> bool:
    """Headers carry ids too (organisation, project): by entropy only where the name says secret."""
    words = value.replace(",", " ").split()
    if any(len(w) >= 16 and w.startswith(KEY_PREFIXES) for w in words):
        return True
    lower = name.lower()
    return any(s in lower for s in ("auth", "key", "token", "secret")) and looks_like_key(value)


def _entropy_key(word: str) -> bool:
    import math
    from collections import Counter

    if not (any(c.isdigit() for c in word) and any(c.isalpha() for c in word)):
        return False
    if word.replace("-", "").replace("_", "").isalpha() or sum(c.isdigit() for c in word) < 3:
        return False
    n = len(word)
    bits = -sum(k / n * math.log2(k / n) for k in Counter(word).values())
    return bits >= 3.5 and len(set(word)) >= 12


def literal_key_problems(data: dict[str, Any]) -> list[Problem]:
    """Every `api_key` and header value of every deployment that holds a key instead of a reference.
    The value is never echoed."""
    out: list[Problem] = []
    deployments = data.get("deployments")
    if not isinstance(deployments, dict):
        return out
    for name, d in deployments.items():
        if not isinstance(d, dict):
            continue
        key = d.get("api_key")
        if isinstance(key, str) and "${" not in key and not key.startswith(REFERENCE_PREFIXES) and looks_like_key(key):
            out.append((f"deployments.{name}.api_key", _FIX))
        headers = d.get("headers")
        if isinstance(headers, dict):
            for h, v in headers.items():
                if isinstance(v, str) and "${" not in v and _header_secret(str(h), v):
                    out.append((f"deployments.{name}.headers.{h}", "looks like a literal secret: use "
                                "'${NAME}' interpolation, e.g. 'Bearer ${MY_TOKEN}'"))
    return out


def resolve_secret(ref: str | None, *, where: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Turn a key reference into the key. A reference to an empty value is an error (for a master key
    it would silently turn authentication off). Errors name the reference, never a value."""
    if ref is None or ref == "":
        return None
    env = os.environ if environ is None else environ
    if ref.startswith("env:"):
        name = ref[4:]
        if name not in env:
            raise ConfigError("<environment>", where,
                              f"environment variable {name} is not set (referenced as env:{name})")
        if not env[name].strip():
            raise ConfigError("<environment>", where, f"environment variable {name} is empty (referenced as "
                              f"env:{name}): set it to the key")
        return env[name]
    if ref.startswith("file:"):
        try:
            value = Path(ref[5:]).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError("<environment>", where, f"cannot read key file {ref[5:]}: {e.strerror}") from None
        if not value:
            raise ConfigError("<environment>", where, f"key file {ref[5:]} is empty: write the key into it")
        return value
    return ref
