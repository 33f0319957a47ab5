"""The store's declared interface: what each concern offers, whichever database holds it.

Every function takes a *location* (store/location.py): a SQLite file path or a registered Postgres
URL. The concern's module (keys.py, spend.py, feedback.py, responses.py, stats.py) is the one entry
point: it serves a file itself and hands a Postgres location to its twin in store/postgres/. The
Protocols below are the contract both sides meet (mypy checks the Postgres modules against them).
Nothing falls back to SQLite when Postgres was configured: a Postgres location never reaches sqlite3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .location import is_postgres, locate
from .sqlite import RequestLog

if TYPE_CHECKING:
    from ..config import Config
    from .feedback import LoggedRequest, Scored
    from .keys import KeyRecord, Principal, Snapshot
    from .responses import Stored
    from .spend import SpendLine


class KeyTables(Protocol):
    """Virtual keys, teams and users; each write returns the tables' new version (store/keys.py)."""

    def version(self, location: str) -> int: ...
    def load(self, location: str) -> Snapshot: ...
    def get_key(self, location: str, key_id: str) -> KeyRecord | None: ...
    def insert_key(self, location: str, k: KeyRecord) -> int: ...
    def update_key(self, location: str, k: KeyRecord) -> int: ...
    def upsert_principal(self, location: str, p: Principal, new: bool) -> int: ...
    def delete_principal(self, location: str, kind: str, name: str) -> int: ...


class LogReader(Protocol):
    """Reads of the request log: spend (store/spend.py), the dashboard's window (store/stats.py),
    requests joined with their feedback (store/feedback.py)."""

    def spend(self, location: str, by: str, since: float, until: float,
              filters: dict[str, str] | None = None) -> tuple[list[SpendLine], SpendLine]: ...
    def window_rows(self, location: str, t0: float, t1: float, limit: int) -> list[tuple[Any, ...]]: ...
    def read_scored(self, location: str, *, only_scored: bool = False) -> list[Scored]: ...


class FeedbackTable(Protocol):
    """Feedback on logged requests (store/feedback.py)."""

    def logged_request(self, location: str, request_id: str) -> LoggedRequest | None: ...
    def add_feedback(self, location: str, request_id: str, score: float, comment: str | None,
                     prompt: str | None, source: str) -> int: ...


class ResponseTable(Protocol):
    """Stored Responses of one tenant each (store/responses.py)."""

    def put(self, location: str, rid: str, tenant: str, response: dict[str, Any],
            conversation: list[dict[str, Any]], retention_s: float) -> None: ...
    def get(self, location: str, rid: str, tenant: str) -> Stored | None: ...
    def delete(self, location: str, rid: str, tenant: str) -> bool: ...


def open_request_log(config: Config) -> RequestLog:
    """The request log `config` asks for: a SQLite writer at the store's file, or the same writer
    over Postgres."""
    location = locate(config)
    cfg = config.server.request_log
    if is_postgres(location):
        from .postgres.log import PgRequestLog

        return PgRequestLog.for_location(location, cfg)
    return RequestLog.from_config(cfg if location == cfg.path else cfg.model_copy(update={"path": location}))


if TYPE_CHECKING:  # the Postgres modules meet the contract
    from .postgres import keys as _pg_keys
    from .postgres import records as _pg_records
    from .postgres import responses as _pg_responses

    _k: KeyTables = _pg_keys
    _r: LogReader = _pg_records
    _f: FeedbackTable = _pg_records
    _s: ResponseTable = _pg_responses


def db_errors(location: str) -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the database at `location` cannot be used now" (callers log them and
    retry later)."""
    import sqlite3

    if is_postgres(location):
        from .postgres.db import ERRORS

        return (sqlite3.Error, *ERRORS)
    return (sqlite3.Error,)
