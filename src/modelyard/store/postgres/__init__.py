"""The Postgres backend of store/ (asyncpg, the `postgres` extra): the same records as the SQLite
file — request log, keys, feedback, responses, experiment scores — in one shared database."""
