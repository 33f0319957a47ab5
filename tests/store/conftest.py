"""A real Postgres for the store tests (one server per session, one new database per test), and the
`store` fixture that runs a test on both backends: SQLite (a file) and Postgres (a location)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PgServer, binaries

from modelyard.store.location import register

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if binaries() is None:
        pytest.skip("Postgres binaries not found in /usr/lib/postgresql/*/bin (make dev installs Debian's postgresql)")
    server = PgServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A new database of the session's server."""
    return pg_server.createdb(f"t{next(_names)}")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store test keeps its records: a SQLite file, or a new Postgres database."""
    if request.param == "sqlite":
        return str(tmp_path / "log.db")
    return register(request.getfixturevalue("pg_url"))
