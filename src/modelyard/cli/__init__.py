"""The `modelyard` command line; `main` is the console-script entry point."""

from __future__ import annotations

from . import inspect, learn, route, serve, stats  # noqa: F401  (each module registers its commands on `app`)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
