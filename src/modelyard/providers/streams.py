"""Streamed upstream answers, one class per client behind one interface (`UpstreamStream`)."""

from __future__ import annotations

import asyncio
from typing import Any

from . import h1_client
from .transport import TRANSPORT_ERRORS, Headers, ResponseHeaders, transport_errors


class UpstreamStream:
    """A streamed answer: status and headers first, then the body as it arrives through `read()`,
    which returns every piece that is already there (at least one; b"" at the end). An upstream
    that sends a burst of events is then parsed, routed through the pipeline and written to the
    client once per burst instead of once per event. `close()` leaves the connection in the pool
    when the body was read to its end and drops it otherwise, which is how the upstream learns to
    stop generating (client gone, error, cancel)."""

    __slots__ = ("deployment", "eof", "headers", "status")

    def __init__(self, deployment: str) -> None:
        self.deployment, self.eof = deployment, False
        self.status = 0
        self.headers: ResponseHeaders = Headers(None)

    async def read(self) -> bytes:
        """What arrived of the body since the last read (at least one piece), b"" at the end."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

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
        except (TimeoutError, *TRANSPORT_ERRORS):
            pass

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()


class LoopStream(UpstreamStream):
    """A stream of the in-loop client (h1_client.Stream)."""

    __slots__ = ("_s",)

    def __init__(self, deployment: str, s: h1_client.Stream) -> None:
        super().__init__(deployment)
        self._s = s
        self.status, self.headers = s.status, s.headers

    async def read(self) -> bytes:
        data = await self._s.read()
        self.eof = self._s.eof
        return data

    async def close(self) -> None:
        self._s.close()


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


class WreqStream(UpstreamStream):
    """A stream of the wreq client. It hands the body over one HTTP chunk at a time; a chunk it
    already holds comes back without suspending. `read()` starts the read of the next one by hand
    (`send(None)`) and keeps it only if it finished at once, else parks it for the next `read()`."""

    __slots__ = ("_body", "_error", "_next", "_open")

    def __init__(self, deployment: str) -> None:
        super().__init__(deployment)
        self._open = False
        self._next: _Pending | None = None
        self._error: BaseException | None = None
        self._body: Any = None  # the client's body stream, once open

    @classmethod
    async def open(cls, deployment: str, resp: Any) -> WreqStream:
        """The stream of `resp` (the client's response, head received)."""
        self = cls(deployment)
        self._body = resp.stream()
        await self._body.__aenter__()
        self._open = True
        self.status, self.headers = resp.status.as_int(), Headers(resp.headers)
        return self

    async def read(self) -> bytes:
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

    async def close(self) -> None:
        nxt, self._next = self._next, None
        if nxt is not None:
            nxt.close()
        if self._open:
            self._open = False
            try:
                await self._body.__aexit__(None, None, None)
            except TRANSPORT_ERRORS:
                pass


