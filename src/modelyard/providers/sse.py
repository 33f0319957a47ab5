"""Server-sent events as the upstream APIs send them: event blocks per network read, and the
(event, data) pairs in them. Every streaming adapter reads its upstream through these."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable


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
