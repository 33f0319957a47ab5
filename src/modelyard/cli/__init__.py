"""The `modelyard` command line; `main` is the console-script entry point."""

from __future__ import annotations

from . import batch, inspect, learn, route, serve  # noqa: F401  (each module registers its commands on `app`)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
