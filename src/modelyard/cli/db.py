"""`modelyard db migrate`: bring the config's store (`store:`, or the request log's SQLite file) to the
current schema. The gateway does the same at start; this runs it ahead of a deploy, once."""

from __future__ import annotations

import os

import typer

from .app import ConfigOpt, app, config_message, fail

db_app = typer.Typer(help="The records database (store:): migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("migrate")
def migrate(config: ConfigOpt = None) -> None:
    """Apply pending migrations to the store the config names (Postgres or SQLite)."""
    from ..defaults import default_config
    from ..errors import ConfigError
    from ..loader import load_config
    from ..store.backend import db_errors
    from ..store.location import is_postgres, locate

    path = config or os.environ.get("MODELYARD_CONFIG")
    try:
        cfg = load_config(path) if path else default_config()
    except ConfigError as e:
        fail(config_message(e))
    location = locate(cfg)
    try:
        if is_postgres(location):
            from ..store.postgres.db import database, migrate_now

            version, applied = migrate_now(location)
            database(location).close()
            done = f"applied {', '.join(map(str, applied))}" if applied else "nothing to apply"
            typer.echo(f"postgres {location}: schema version {version} ({done})")
        else:
            version = _sqlite(location)
            typer.echo(f"sqlite {location}: schema version {version}")
    except db_errors(location) as e:
        fail(f"{location}: cannot migrate: {type(e).__name__}: {e}", code=1)


def _sqlite(path: str) -> int:
    """Every table the SQLite file holds, at the current schema; its version."""
    from ..experiments.data import SCORES
    from ..store import keys, responses, schema

    conn = schema.connect(path, 5.0)  # the request log and feedback (in-place upgrades included)
    try:
        conn.executescript(keys.SCHEMA + responses.SCHEMA + SCORES)
    finally:
        conn.close()
    return schema.VERSION
