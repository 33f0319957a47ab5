"""Where the records live: the request log's SQLite file or a Postgres database.

Every store function takes a *location*: a file path (SQLite) or a Postgres URL without its
password (`postgresql://user@host:5432/db`). The full URL, password included, is registered in this
process under that location, so a location can be logged, put in an error or compared while the
password stays in memory only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from ..config import Config

_DSN: dict[str, str] = {}  # location -> the full URL


def is_postgres(location: str | None) -> bool:
    return location is not None and location.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL with its password left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def register(url: str) -> str:
    """The location of a Postgres URL (its password kept here, not in the location)."""
    loc = redact(url)
    _DSN[loc] = url
    return loc


def dsn(location: str) -> str:
    """The full URL of a registered location (a location never registered is used as it is)."""
    return _DSN.get(location, location)


def locate(cfg: Config) -> str:
    """The location of `cfg`'s records: `store:` (sqlite:///path or a Postgres URL), else the request
    log's file."""
    if cfg.store is None:
        return cfg.server.request_log.path
    if cfg.store.startswith("sqlite:///"):
        return cfg.store[len("sqlite:///"):]  # sqlite:///rel/path.db, sqlite:////abs/path.db
    return register(cfg.store)
