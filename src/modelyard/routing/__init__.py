"""Where a request goes: features → candidate filters → strategy → ranked candidates."""

from __future__ import annotations

from .router import Route, Router

__all__ = ["Route", "Router"]
