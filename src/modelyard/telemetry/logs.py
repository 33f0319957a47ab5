"""One log line per finished request (`modelyard serve --log-format text|json`), and the process's
log format.

The observer only puts the request's row on a queue (a C call, well under a microsecond); a writer
thread wakes every `FLUSH_S`, turns what arrived into lines and hands them to the
`modelyard.requests` logger at info, whose handler (console.py) queues them for the console without
ever blocking. The event loop never formats or writes. Lines carry counts, cost, the deployment and
the key's id, never key material or message content; error text is passed through `errors.redact`.
The user field a client sends is not logged (it is often personal data); the request log keeps it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import redact
from .console import ConsoleHandler

if TYPE_CHECKING:
    from ..store.rows import Row

FORMATS = ("text", "json")
FLUSH_S = 0.05
log = logging.getLogger("modelyard.requests")


def fields(row: Row) -> dict[str, Any]:
    """What a request's line says, as a flat dict (the JSON line's keys, in order)."""
    out: dict[str, Any] = {
        "request_id": row.id, "group": row.model, "deployment": row.deployment, "provider": row.provider,
        "status": row.status, "latency_ms": _ms(row.latency_ms), "ttft_ms": _ms(row.ttft_ms),
        "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
        "cost_usd": round(row.cost_usd, 8), "cache": row.cache, "attempts": row.attempts,
        "fallbacks": row.fallbacks, "stream": bool(row.stream), "api": row.api, "key_id": row.key_id,
    }
    if row.experiment:
        out["experiment"] = row.experiment
    if row.error_type:
        out["error_type"] = row.error_type
    if row.error:
        out["error"] = redact(row.error)
    return out


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def text_line(row: Row) -> str:
    """The compact console form: `req_… fast → sim/fast 200 812ms 42+120 tok $0.000231 [cache=hit fb=1]`."""
    parts = [row.id, row.model, "→", row.deployment or "-", str(row.status)]
    if row.latency_ms is not None:
        parts.append(f"{row.latency_ms:.0f}ms")
    if row.ttft_ms is not None:
        parts.append(f"ttft={row.ttft_ms:.0f}ms")
    parts.append(f"{row.input_tokens}+{row.output_tokens}tok")
    parts.append(f"${row.cost_usd:.6f}")
    if row.cache:
        parts.append(f"cache={row.cache}")
    if row.fallbacks:
        parts.append(f"fallbacks={row.fallbacks}")
    if row.key_id:
        parts.append(f"key={row.key_id}")
    if row.experiment:
        parts.append(f"exp={row.experiment}")
    if row.error_type:
        parts.append(f"{row.error_type}: {redact(row.error or '')}"[:300])
    return " ".join(parts)


class RequestLines:
    """The observer (`gateway.observers.append(lines.observe)`) and its writer thread."""

    def __init__(self, fmt: str = "text") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.fmt = fmt
        self._queue: queue.SimpleQueue[Row | None] = queue.SimpleQueue()
        self.observe = self._queue.put  # the hot path: one C call
        self._thread = threading.Thread(target=self._run, name="modelyard-request-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        q = self._queue
        while True:
            row = q.get()
            batch = [row]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(q.get_nowait())
            for r in batch:
                if r is None:
                    return
                self._emit(r)
            time.sleep(FLUSH_S)  # let lines gather: a few wake-ups a second under load, not one per request

    def _emit(self, row: Row) -> None:
        try:
            if self.fmt == "json":
                log.info("request", extra={"request": fields(row)})
            else:
                log.info(text_line(row))
        except Exception:  # a line must never take the writer down
            logging.getLogger("modelyard").exception("could not write a request line")

    def close(self) -> None:
        """Write what is queued and stop the writer (idempotent)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=5)


class JsonFormatter(logging.Formatter):
    """Every record as one JSON object: ts, level, logger, then the request's fields or the message."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                               "logger": record.name}
        request = getattr(record, "request", None)
        if request is not None:
            out.update(request)
        else:
            out["message"] = redact(record.getMessage())
            if record.exc_info:
                out["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(out).decode()


def setup(fmt: str, level: int = logging.INFO) -> None:
    """The process's logging for `modelyard serve`: one stderr handler in `fmt` on the root logger
    (uvicorn's loggers and Python's warnings propagate to it), request lines at `level`. The handler
    never blocks its caller (telemetry/console.py): a stalled console drops lines, not the gateway.
    Process-wide: only the command calls this, never the library."""
    sys.stderr.flush()
    handler = ConsoleHandler(sys.stderr.fileno())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        if isinstance(h, ConsoleHandler):
            h.close()
    root.addHandler(handler)
    logging.captureWarnings(True)
    root.setLevel(logging.WARNING)
    logging.getLogger("modelyard.requests").setLevel(level)
