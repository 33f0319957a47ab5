"""The `modelyard` command line; `main` is the console-script entry point."""

from __future__ import annotations

from . import (  # noqa: F401  (each module registers its commands on `app`)
    batch,
    catalog,
    db,
    experiment,
    inspect,
    keys,
    learn,
    principals,
    route,
    serve,
    stats,
)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
