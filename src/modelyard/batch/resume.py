"""What a previous run of the same job finished: the custom_ids already in the output file.

A job killed mid-write (power loss; a kill between `write` calls cannot tear a line) can leave a
last line without its newline: it is cut off the file here, so its request runs again and the file
stays one JSON object per line. A complete line that does not parse (edited by hand) is counted and
its id, if readable, is not treated as finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import orjson


@dataclass(slots=True)
class Finished:
    ids: set[str] = field(default_factory=set)
    torn_bytes: int = 0  # cut off the end of the file (a torn last line)
    unreadable: int = 0  # complete lines that are not result objects


def scan(path: str) -> Finished:
    """The finished ids in `path` (missing file: none), after dropping a torn last line."""
    out = Finished()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return out
    end = data.rfind(b"\n") + 1
    if end < len(data):
        out.torn_bytes = len(data) - end
        os.truncate(path, end)
        data = data[:end]
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
            cid = obj["custom_id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            out.unreadable += 1
            continue
        if isinstance(cid, str):
            out.ids.add(cid)
    return out
