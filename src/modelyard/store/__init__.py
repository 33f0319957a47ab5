"""Durable records: the request log (SQLite by default)."""
