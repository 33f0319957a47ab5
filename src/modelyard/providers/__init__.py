"""One module per wire protocol. Nothing outside providers/ knows a wire format."""

from __future__ import annotations

from .base import Provider

__all__ = ["Provider", "provider_class"]


def provider_class(kind: str) -> type[Provider]:
    """The adapter class for a provider kind, imported on first use."""
    if kind in ("openai", "azure"):
        from .openai import OpenAIProvider

        return OpenAIProvider
    if kind == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider
    if kind == "gemini":
        from .gemini import GeminiProvider

        return GeminiProvider
    if kind == "sim":
        from .sim import SimProvider

        return SimProvider
    if kind == "local":
        from .local import LocalProvider

        return LocalProvider
    if kind == "llamacpp":
        from .llamacpp import LlamaCppProvider

        return LlamaCppProvider
    raise ValueError(f"unknown provider {kind!r}")
