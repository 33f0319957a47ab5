"""What the HTTP adapters share: the pooled upstream client, SSE event reading, and the mapping of
transport failures (refused, reset, timed out, not-the-protocol) onto the error taxonomy.

The upstream client is wreq (hyper/tokio in Rust, awaited from asyncio). Measured on one core
against the harness's fake upstream (bench/upstream_client.py), a pooled keep-alive POST costs
~30 µs of CPU against ~98 µs with aiohttp, a stream ~63 µs against ~122 µs (docs/BENCHMARKS.md),
and the upstream call is the largest share of the gateway's hot path. Every client runs on
the one I/O runtime of `io_threads.py`. Cancelling the awaiting task aborts the Rust
request and drops its connection, which is how an upstream learns to stop generating; pyreqwest,
measured alongside, did not abort on cancellation and was ruled out for that.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import orjson
import wreq
from wreq import exceptions as wx

from .. import __version__
from ..deployment import Deployment, Endpoint
from ..errors import (
    ConnectionFailed,
    ModelyardError,
    Timeout,
    clamp_retry_after,
    excerpt,
    parse_retry_after,
    redact,
)
from ..telemetry import tracing
from . import io_threads
from .base import Provider

_USER_AGENT = f"modelyard/{__version__}"
log = logging.getLogger("modelyard.providers")


class HttpClients:
    """A provider's pooled upstream clients: one per connect timeout (a client-level setting),
    so every deployment of a provider with the same timeout shares keep-alive connections."""

    __slots__ = ("_by_connect",)

    def __init__(self) -> None:
        self._by_connect: dict[float, wreq.Client] = {}

    def get(self, connect_s: float) -> wreq.Client:
        client = self._by_connect.get(connect_s)
        if client is None:
            client = self._by_connect[connect_s] = wreq.Client(
                runtime=io_threads.runtime(),  # one I/O runtime per process (io_threads.py)
                connect_timeout=timedelta(seconds=connect_s),
                no_proxy=True,  # a proxy is configured per deployment, never picked up from the env
                redirect=wreq.redirect.Policy.none(),  # an API that redirects is misconfigured: say so
                user_agent=_USER_AGENT,
            )
        return client

    async def close(self) -> None:
        clients, self._by_connect = list(self._by_connect.values()), {}
        for c in clients:
            c.close()


# Header names whose values are credentials (besides every configured header, see `make_endpoint`).
_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key", "proxy-authorization")


def make_endpoint(dep: Deployment, url: str, headers: dict[str, str], *, stream_url: str = "",
                  max_tokens_key: str = "max_tokens") -> Endpoint:
    """What every call to `dep` sends: URL, the full header set (names case-folded, so a configured
    `Content-Type` replaces the default rather than doubling it) and its total timeout; and the
    values errors must never show (the key, every configured header value, credential headers)."""
    folded = {k.lower(): v for k, v in headers.items()}
    secrets = {dep.api_key or "", *dep.headers.values(), *(folded.get(h, "") for h in _SECRET_HEADERS)}
    # Longest first, so a value that contains another is removed whole; short values are not
    # secrets worth a false positive ("1", "json").
    ordered = tuple(sorted((v for v in secrets if len(v) >= 6), key=len, reverse=True))
    return Endpoint(url=url, headers=folded, timeout=timedelta(seconds=dep.timeout_s),
                    stream_url=stream_url or url, max_tokens_key=max_tokens_key, secrets=ordered)


class HttpProvider(Provider):
    """An adapter that speaks HTTP: one set of pooled clients per provider instance, and each
    deployment's `Endpoint` computed once, by the subclass's `endpoint`, when it is prepared."""

    def __init__(self) -> None:
        self._http = HttpClients()

    def endpoint(self, dep: Deployment) -> Endpoint:
        """URL and headers for `dep` (see `make_endpoint`)."""
        raise NotImplementedError

    def prepare(self, dep: Deployment) -> None:
        dep.endpoint = self.endpoint(dep)
        dep.adapter = self
        dep.timeout_enforced = True  # the client's total timeout ends every call

    def endpoint_of(self, dep: Deployment) -> Endpoint:
        """`dep`'s endpoint, prepared now if no gateway did (a deployment built by hand)."""
        ep = dep.endpoint
        if ep is None:
            ep = dep.endpoint = self.endpoint(dep)
        return ep

    async def close(self) -> None:
        await self._http.close()

    def post(self, dep: Deployment, ep: Endpoint, url: str, body: bytes
             ) -> Coroutine[Any, Any, tuple[int, Headers, bytes]]:
        """POST `body` to `url` of `dep`, read the whole answer: (status, headers, body). Returns the
        module's `post` coroutine itself (to await): no coroutine of its own in between."""
        return post(self._http, dep, ep, url, body)

    def open_stream(self, dep: Deployment, ep: Endpoint, url: str, body: bytes
                    ) -> Coroutine[Any, Any, UpstreamStream]:
        """A streamed POST of `body` to `url` of `dep` (to await): status and headers, then the body as
        it arrives."""
        return UpstreamStream.open(self._http, dep, ep, url, body)


class Headers:
    """Response headers read as `str` (the client hands out memoryviews); only error paths and the
    stream content-type check read them, so nothing is decoded up front, and a response's header
    map is not even built (the client builds one per access) until a header is asked for."""

    __slots__ = ("_map", "_resp")

    def __init__(self, header_map: Any = None, *, resp: Any = None) -> None:
        self._map = header_map
        self._resp = resp  # the client's response, whose `headers` are read on the first `get`

    def get(self, name: str, default: str | None = None) -> str | None:
        if self._resp is not None:
            self._map, self._resp = self._resp.headers, None
        if self._map is None:
            return default
        v = self._map[name]
        return default if v is None else bytes(v).decode("latin-1")


def _send(clients: HttpClients, dep: Deployment, ep: Endpoint, url: str, body: bytes) -> Any:
    """The POST of `body` to `dep` (a client coroutine: await it for the response head)."""
    headers = ep.headers if tracing.TRACER is None else tracing.inject(ep.headers)  # + traceparent
    return clients.get(dep.connect_timeout_s).post(url, headers=headers, body=body, timeout=ep.timeout)


async def post(clients: HttpClients, dep: Deployment, ep: Endpoint, url: str, body: bytes
               ) -> tuple[int, Headers, bytes]:
    """POST `body`, read the whole answer: (status, headers, body). (try/except, not `with
    transport_errors`: on every call, a context manager's three method calls would cost more than
    the rest of this function.)"""
    try:
        resp = await _send(clients, dep, ep, url, body)
        raw = await resp.bytes()
    except ModelyardError:
        raise
    except Exception as e:
        raise _map_transport(e, dep.name) from e
    return resp.status.as_int(), Headers(resp=resp), raw.tobytes()


class _Pending:
    """The rest of a client coroutine that did not finish at once: awaiting it hands its future to
    the task and resumes the coroutine when the future is done (errors and cancellation included)."""

    __slots__ = ("coro", "fut")

    def __init__(self, coro: Any, fut: Any) -> None:
        self.coro, self.fut = coro, fut

    def __await__(self) -> Any:
        fut = self.fut
        while True:
            try:
                yield fut
            except BaseException as e:  # the future failed, or the task was cancelled
                try:
                    fut = self.coro.throw(e)
                except StopIteration as done:
                    return done.value
                continue
            try:
                fut = self.coro.send(None)
            except StopIteration as done:
                return done.value

    def close(self) -> None:
        if self.fut is not None:  # (None: the coroutine yielded bare, asking only to be resumed)
            self.fut.cancel()
        self.coro.close()


class UpstreamStream:
    """A streamed POST: status and headers first, then the body as it arrives.

    The client hands the body over one HTTP chunk at a time; a chunk it already holds comes back
    without suspending. `read()` returns every chunk that is already there: it starts the read of
    the next one by hand (`send(None)`) and keeps it only if it finished at once, else parks it for
    the next `read()`. An upstream that sends a burst of events is then parsed, routed through the
    pipeline and written to the client once per burst instead of once per event, and nothing waits.
    `close()` leaves the connection in the pool when the body was read to its end and drops it
    otherwise, which is how the upstream learns to stop generating (client gone, error, cancel).
    """

    __slots__ = ("_body", "_error", "_next", "_open", "deployment", "eof", "headers", "status")

    def __init__(self, deployment: str) -> None:
        self.deployment, self.eof, self._open = deployment, False, False
        self._next: _Pending | None = None
        self._error: BaseException | None = None
        self._body: Any = None  # the client's body stream, once open
        self.status = 0
        self.headers = Headers(None)

    @classmethod
    async def open(cls, clients: HttpClients, dep: Deployment, ep: Endpoint, url: str, body: bytes
                   ) -> UpstreamStream:
        self = cls(dep.name)
        try:  # (as in `post`)
            resp = await _send(clients, dep, ep, url, body)
            self._body = resp.stream()
            await self._body.__aenter__()
        except ModelyardError:
            raise
        except Exception as e:
            raise _map_transport(e, dep.name) from e
        self._open = True
        self.status, self.headers = resp.status.as_int(), Headers(resp.headers)
        return self

    async def read(self) -> bytes:
        """What arrived of the body since the last read (at least one piece), b"" at the end."""
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        parts: list[memoryview] = []
        while not self.eof and not parts:
            nxt, self._next = self._next, None
            try:
                piece = await (nxt if nxt is not None else self._body.__anext__())
            except StopAsyncIteration:
                self.eof = True
                break
            if isinstance(piece, memoryview):  # (a HeaderMap is a trailer: skipped)
                parts.append(piece)
        while parts and not self.eof:  # and whatever else is already there, without waiting
            coro = self._body.__anext__()
            try:
                fut = coro.send(None)
            except StopIteration as done:
                if isinstance(done.value, memoryview):
                    parts.append(done.value)
                continue
            except StopAsyncIteration:
                self.eof = True
                break
            except Exception as e:  # reported on the next read, after what arrived before it
                self._error = e
                break
            self._next = _Pending(coro, fut)
            break
        return parts[0].tobytes() if len(parts) == 1 else b"".join(parts)

    async def body(self) -> bytes:
        """The rest of the body (error answers)."""
        with transport_errors(self.deployment):
            parts = []
            while chunk := await self.read():
                parts.append(chunk)
        return b"".join(parts)

    async def drain(self, within_s: float) -> None:
        """Read the (normally empty) rest after the protocol's last event, so the connection is reusable."""
        if self.eof:  # usual: the read that brought the last event found the end too (no timer needed)
            return
        try:
            async with asyncio.timeout(within_s):
                while await self.read():
                    pass
        except (TimeoutError, *_TRANSPORT_ERRORS):
            pass

    async def close(self) -> None:
        nxt, self._next = self._next, None
        if nxt is not None:
            nxt.close()
        if self._open:
            self._open = False
            try:
                await self._body.__aexit__(None, None, None)
            except _TRANSPORT_ERRORS:
                pass

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


_TRANSPORT_ERRORS = (wx.ConnectionError, wx.ConnectionResetError, wx.BodyError, wx.DecodingError,
                     wx.RequestError, wx.TimeoutError, wx.ProxyConnectionError, wx.TlsError,
                     wx.RedirectError, wx.StatusError, wx.BuilderError, wx.RustPanic)


class transport_errors:
    """Turn client/asyncio failures into taxonomy errors that name the deployment.

    A class rather than @contextmanager: it runs on every upstream call, and a plain
    __enter__/__exit__ pair avoids creating a generator each time.
    """

    __slots__ = ("deployment",)

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    def __enter__(self) -> None:
        return None

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: object) -> None:
        if e is None or isinstance(e, ModelyardError) or not isinstance(e, Exception):
            return
        raise _map_transport(e, self.deployment) from e


_OS_MESSAGE = re.compile(r'message: "([^"]+)"')
_KIND = re.compile(r"source: (?:Some\()?(\w+)")


def _cause(e: Exception) -> str:
    """A short reason from the client's error text ("Connection refused"), never its full debug dump."""
    text = str(e)
    m = _OS_MESSAGE.search(text) or _KIND.search(text)
    return m.group(1) if m else type(e).__name__


def _map_transport(e: Exception, deployment: str) -> ModelyardError | Exception:
    if isinstance(e, TimeoutError | wx.TimeoutError) or (isinstance(e, _TRANSPORT_ERRORS) and "TimedOut" in str(e)):
        return Timeout(f"deployment '{deployment}' timed out", deployment=deployment)
    if isinstance(e, wx.ConnectionError | wx.ProxyConnectionError | wx.TlsError):
        return ConnectionFailed(f"cannot connect to deployment '{deployment}': {_cause(e)}", deployment=deployment)
    if isinstance(e, wx.ConnectionResetError | wx.BodyError | wx.DecodingError | ConnectionError):
        return ConnectionFailed(f"deployment '{deployment}' closed the connection: {_cause(e)}",
                                deployment=deployment)
    if isinstance(e, _TRANSPORT_ERRORS):
        return ConnectionFailed(f"deployment '{deployment}' failed: {type(e).__name__}: {_cause(e)}",
                                deployment=deployment)
    return e


def retry_after_of(headers: Any) -> float | None:
    """Seconds to wait, from `retry-after-ms` (OpenAI) or `retry-after` headers, clamped and sanitised
    (an upstream's `inf`, NaN, negative or absurd value never reaches a timer or a response header)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return clamp_retry_after(float(ms) / 1000)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))


def upstream_text(text: Any, ep: Endpoint | None, limit: int = 300) -> str:
    """An upstream's structured error message as a client may see it: redacted, one line, clipped."""
    out = " ".join(redact(str(text)[: 4 * limit], ep.secrets if ep else ()).split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


def log_body(dep: Deployment, what: str, body: bytes | str, *, level: int = logging.WARNING) -> None:
    """Keep a redacted, truncated excerpt of an upstream body in the log (never in a client error)."""
    if log.isEnabledFor(level):
        ep = dep.endpoint
        log.log(level, "deployment '%s' %s; body: %s", dep.name, what, excerpt(body, ep.secrets if ep else ()))


def load_json(body: bytes, dep: Deployment) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        log_body(dep, "returned a body that is not JSON", body)
        raise ConnectionFailed(f"deployment '{dep.name}' returned a body that is not JSON", deployment=dep.name
                               ) from None


def bad_body(dep: Deployment, what: str, body: bytes | str | None = None) -> ConnectionFailed:
    """A body that is not the protocol: the client hears what was wrong, the log keeps an excerpt."""
    if body is not None:
        log_body(dep, what, body)
    return ConnectionFailed(f"deployment '{dep.name}' {what}", deployment=dep.name)


async def sse_reads(read: Callable[[], Awaitable[bytes]]) -> AsyncIterator[bytes]:
    """Yield, per network read, the SSE event blocks it completed, as they arrived: one bytes
    object, blocks separated by a blank line, without the last blank line, `\r\n` made `\n`.

    `read` returns the next piece of the body, b"" at its end; a body that ends without the closing
    blank line yields its rest too. Reading per network read lets an adapter parse, and the server
    forward, everything that arrived together at once (syscalls are the dominant per-chunk cost).
    """
    buf = b""
    while True:
        chunk = await read()
        if not chunk:
            break
        buf = buf + chunk if buf else chunk
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n")  # a trailing lone \r waits for its \n in the next read
        end = buf.rfind(b"\n\n")
        if end < 0:
            continue
        complete, buf = buf[:end], buf[end + 2:]
        yield complete
    if buf:
        yield buf


def sse_events(complete: bytes) -> list[tuple[bytes, bytes]]:
    """The (event, data) pairs of a run of SSE event blocks (see `sse_reads`). `event` is b"" when
    the stream names none; multi-line `data:` fields are joined with newlines as the SSE spec says;
    comments and blocks without data are skipped. An event that is one `data: ` line (what
    OpenAI-compatible servers send) takes a fast path; anything else goes through `_event`."""
    out: list[tuple[bytes, bytes]] = []
    for block in complete.split(b"\n\n"):
        if block[:6] == b"data: " and b"\n" not in block:
            out.append((b"", block[6:]))
        elif (ev := _event(block)) is not None:
            out.append(ev)
    return out


async def sse_batches(read: Callable[[], Awaitable[bytes]]) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """Yield, per network read, the complete SSE events it finished, as (event, data) pairs."""
    async for complete in sse_reads(read):
        if out := sse_events(complete):
            yield out


def _event(block: bytes) -> tuple[bytes, bytes] | None:
    """One SSE event block (its lines, without the blank line that ends it), or None if it has no data."""
    event = b""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line[:5] == b"data:":
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line[:6] == b"event:":
            event = line[6:].strip()
        # ids, retry hints, ":" comments and stray blank lines are ignored
    return (event, b"\n".join(data)) if data else None


async def sse_data(read: Callable[[], Awaitable[bytes]]) -> AsyncIterator[tuple[bytes, bytes]]:
    """Yield (event, data) for each SSE event, one at a time (see `sse_batches`)."""
    async for batch in sse_batches(read):
        for item in batch:
            yield item
