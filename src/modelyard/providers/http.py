"""What the HTTP adapters share: the pooled session, SSE line reading, and the mapping of
transport failures (refused, reset, timed out, not-the-protocol) onto the error taxonomy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..errors import ConnectionFailed, ModelyardError, Timeout, error_for_status, parse_retry_after


def new_session() -> aiohttp.ClientSession:
    """One pooled session per provider: keep-alive, no per-host cap, DNS cached for the process."""
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, enable_cleanup_closed=True)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        json_serialize=lambda o: orjson.dumps(o).decode(),
    )


def client_timeout(total_s: float, connect_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total_s, sock_connect=connect_s)


class transport_errors:
    """Turn aiohttp/asyncio failures into taxonomy errors that name the deployment.

    A class rather than @contextmanager: it runs on every upstream call, and a plain
    __enter__/__exit__ pair avoids creating a generator each time.
    """

    __slots__ = ("deployment",)

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: object) -> bool:
        if e is None or isinstance(e, ModelyardError) or not isinstance(e, Exception):
            return False
        raise _map_transport(e, self.deployment) from e


def _map_transport(e: Exception, deployment: str) -> ModelyardError | Exception:
    if isinstance(e, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return Timeout(f"deployment '{deployment}' timed out", deployment=deployment)
    if isinstance(e, aiohttp.ClientConnectorError):
        return ConnectionFailed(f"cannot connect to deployment '{deployment}': {e.os_error.strerror or e}",
                                deployment=deployment)
    if isinstance(e, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientOSError
                  | ConnectionResetError):
        return ConnectionFailed(f"deployment '{deployment}' closed the connection: {type(e).__name__}",
                                deployment=deployment)
    if isinstance(e, aiohttp.ClientError):
        return ConnectionFailed(f"deployment '{deployment}' failed: {type(e).__name__}: {e}", deployment=deployment)
    return e


def retry_after_of(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI) or `retry-after` headers."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def load_json(body: bytes, deployment: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ConnectionFailed(f"deployment '{deployment}' returned a body that is not JSON: {body[:120]!r}",
                               deployment=deployment) from None


def generic_status_error(status: int, body: bytes, headers: Any, deployment: str,
                         message: str | None = None, code: str | None = None) -> ModelyardError:
    text = message or body[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
    return error_for_status(status, f"deployment '{deployment}' answered {status}: {text}",
                            retry_after=retry_after_of(headers), deployment=deployment, code=code)


async def sse_batches(content: aiohttp.StreamReader) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """Yield, per network read, the complete SSE events it finished, as (event, data) pairs.

    Batching by read lets the server forward everything that arrived together in one write
    (syscalls are the dominant per-chunk cost). `event` is b"" when the stream names none;
    multi-line `data:` fields are joined with newlines as the SSE spec says; comments are skipped.
    """
    buf = b""
    event = b""
    data: list[bytes] = []
    while True:
        chunk = await content.readany()
        if not chunk:
            break
        buf = buf + chunk if buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")  # a trailing lone \r waits for its \n in the next read
        *lines, buf = buf.split(b"\n")
        out: list[tuple[bytes, bytes]] = []
        for line in lines:
            if not line or line == b"\r":
                if data:
                    out.append((event, b"\n".join(data)))
                event, data = b"", []
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[:6] == b"event:":
                event = line[6:].strip()
            # ids, retry hints and ":" comments are ignored
        if out:
            yield out
    if buf.startswith(b"data:"):
        data.append(buf[6:] if buf[5:6] == b" " else buf[5:])
    if data:
        yield [(event, b"\n".join(data))]


async def sse_data(content: aiohttp.StreamReader) -> AsyncIterator[tuple[bytes, bytes]]:
    """Yield (event, data) for each SSE event, one at a time (see `sse_batches`)."""
    async for batch in sse_batches(content):
        for item in batch:
            yield item
