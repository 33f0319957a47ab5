"""The concurrent runner: lines in, results and errors out, at the rate the providers allow.

Concurrency follows the rate limits (AIMD, as TCP does with its window): every success adds
1/limit (one more slot per round of successes), up to `concurrency`; a 429 that outlived the
gateway's own retries and fallbacks halves it — once per round, counting only requests launched
after the last cut — pauses launching for its Retry-After, and puts the line back in the queue.
`max_cost` stops launching once the spend so far, plus a reservation for each request in flight,
plus the next one, would pass it (a reservation is the mean cost so far, with a margin; until the
first result, one request at a time).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from .reader import Item, Malformed

# A line that keeps getting 429s after this many tries (or a gateway that stays unreachable) fails.
MAX_ATTEMPTS = 10
COST_MARGIN = 1.25  # reservation = mean cost per request × this
_ID_PREFIX = "batch_req_" + os.urandom(5).hex()


@dataclass(slots=True)
class Outcome:
    """What one request came back with, whichever way it was sent."""

    status: int  # HTTP status; 0 = never reached a gateway (connection refused, reset)
    body: bytes  # the response body (OpenAI format), or an error body
    request_id: str = ""
    deployment: str | None = None
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    retry_after: float | None = None  # seconds, from a 429
    error_code: str | None = None
    error_message: str | None = None


class Backend(Protocol):
    """Sends one chat-completions body through a gateway."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def call(self, body: dict[str, Any]) -> Outcome: ...


class Sink(Protocol):
    def append(self, line: bytes) -> None: ...


@dataclass(slots=True)
class BatchStats:
    total: int = 0  # lines expected to run (input lines minus finished ones), for the progress bar
    done: int = 0
    failed: int = 0
    skipped: int = 0  # already in the output
    malformed: int = 0  # includes duplicate custom_ids
    duplicates: int = 0
    left: int = 0  # not launched because of max_cost
    rate_limited: int = 0  # 429s seen (each put its line back in the queue)
    cost_usd: float = 0.0
    reserved_usd: float = 0.0
    limit: float = 0.0  # the current concurrency limit
    inflight: int = 0
    stopped_for_cost: bool = False
    deployments: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def percentile(self, q: float) -> float | None:
        if not self.latencies_ms:
            return None
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q * len(xs)))]


class BatchEngine:
    def __init__(self, backend: Backend, out: Sink, errors: Sink, *, concurrency: int = 64,
                 max_cost: float | None = None, max_attempts: int = MAX_ATTEMPTS,
                 on_result: Callable[[BatchStats], None] | None = None) -> None:
        self.backend, self.out, self.errors = backend, out, errors
        self.max_concurrency = max(1, concurrency)
        self.max_cost = max_cost
        self.max_attempts = max_attempts
        self.on_result = on_result
        self.stats = BatchStats(limit=float(self.max_concurrency))
        self._retry: deque[tuple[Item, int]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._paused_until = 0.0
        self._last_cut = 0.0
        self._seq = 0
        self._cancelled = False

    def cancel(self) -> None:
        """Stop launching new lines; the ones in flight finish and are written."""
        self._cancelled = True
        self._wake.set()

    # --- the loop ---------------------------------------------------------------------------
    async def run(self, items: Iterable[Item | Malformed], finished: set[str] | frozenset[str] = frozenset()
                  ) -> BatchStats:
        st = self.stats
        source = iter(items)
        exhausted = False
        while not self._cancelled:
            if exhausted and not self._retry:
                if not self._tasks:
                    break
                await self._wait()
                continue
            await self._capacity()
            if self._cancelled:
                break
            if self._retry:
                item, attempt = self._retry.popleft()
            else:
                got = next(source, None)
                if got is None:
                    exhausted = True
                    continue
                if isinstance(got, Malformed):
                    self._malformed(got)
                    continue
                if got.custom_id in finished:
                    st.skipped += 1
                    continue
                item, attempt = got, 1
            if self._over_budget():
                st.stopped_for_cost = True
                st.left = 1 + len(self._retry) + self._count_rest(source, finished)
                self._retry.clear()
                break
            self._launch(item, attempt)
        if self._tasks:
            await asyncio.gather(*self._tasks)
        if self._cancelled:
            st.left += len(self._retry) + self._count_rest(source, finished)
        st.ended = time.monotonic()
        return st

    def _count_rest(self, source: Iterable[Item | Malformed], finished: set[str] | frozenset[str]) -> int:
        """The lines that will not run: counted (and malformed ones still reported)."""
        n = 0
        for got in source:
            if isinstance(got, Malformed):
                self._malformed(got)
            elif got.custom_id in finished:
                self.stats.skipped += 1
            else:
                n += 1
        return n

    async def _wait(self, timeout: float | None = None) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass

    async def _capacity(self) -> None:
        """Until a slot is free under the current limit and no Retry-After pause is on."""
        st = self.stats
        while not self._cancelled:
            now = time.monotonic()
            if now < self._paused_until:
                await self._wait(self._paused_until - now)
                continue
            limit = int(st.limit)
            if self.max_cost is not None and st.done == 0:
                limit = 1  # nothing known about the cost yet: one at a time
            if len(self._tasks) < limit:
                return
            await self._wait()

    def _reservation(self) -> float:
        st = self.stats
        return st.cost_usd / st.done * COST_MARGIN if st.done else 0.0

    def _over_budget(self) -> bool:
        if self.max_cost is None:
            return False
        st = self.stats
        return st.cost_usd + st.reserved_usd + self._reservation() > self.max_cost

    def _launch(self, item: Item, attempt: int) -> None:
        reserve = self._reservation()  # held from now: the next launch decision counts it
        self.stats.reserved_usd += reserve
        task = asyncio.create_task(self._one(item, attempt, time.monotonic(), reserve))
        self._tasks.add(task)
        self.stats.inflight = len(self._tasks)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.stats.inflight = len(self._tasks)
        self._wake.set()

    # --- one line ---------------------------------------------------------------------------
    async def _one(self, item: Item, attempt: int, launched: float, reserve: float) -> None:
        st = self.stats
        try:
            o = await self.backend.call(item.body)
        except Exception as e:  # a backend bug must not end the job: the line fails, named
            o = Outcome(0, b"", error_code="batch_error", error_message=f"{type(e).__name__}: {e}")
        finally:
            st.reserved_usd -= reserve
        if o.status == 429 and attempt < self.max_attempts:
            st.rate_limited += 1
            if launched >= self._last_cut:  # one cut per round: older requests saw the old rate
                st.limit = max(1.0, st.limit / 2)
                self._last_cut = time.monotonic()
            pause = o.retry_after if o.retry_after is not None else min(2.0 ** attempt / 4, 30.0)
            self._paused_until = max(self._paused_until, time.monotonic() + pause)
            self._retry.append((item, attempt + 1))
            return
        if o.status == 0 and attempt < self.max_attempts and o.error_code != "batch_error":
            self._paused_until = max(self._paused_until, time.monotonic() + min(2.0 ** attempt / 4, 30.0))
            self._retry.append((item, attempt + 1))
            return
        st.cost_usd += o.cost_usd
        if o.status == 200:
            st.done += 1
            st.limit = min(float(self.max_concurrency), st.limit + 1.0 / st.limit)
            st.latencies_ms.append(o.latency_ms)
            if o.deployment:
                st.deployments[o.deployment] += 1
            self.out.append(self._line(item, o, None))
        else:
            st.failed += 1
            error = {"code": o.error_code or "request_failed",
                     "message": f"line {item.line}: {o.error_message or 'status ' + str(o.status)}"}
            self.errors.append(self._line(item, o, error, line=item.line))
        if self.on_result is not None:
            self.on_result(st)

    def _next_id(self) -> str:
        self._seq += 1
        return f"{_ID_PREFIX}{self._seq:08x}"

    def _line(self, item: Item, o: Outcome, error: dict[str, Any] | None, line: int | None = None) -> bytes:
        response: dict[str, Any] | None = None
        if o.status:
            body: Any = orjson.Fragment(o.body) if o.body else None
            response = {"status_code": o.status, "request_id": o.request_id, "body": body}
        rec: dict[str, Any] = {"id": self._next_id(), "custom_id": item.custom_id, "response": response,
                               "error": error}
        if line is not None:
            rec["line"] = line
        return orjson.dumps(rec)

    def _malformed(self, m: Malformed) -> None:
        st = self.stats
        st.malformed += 1
        duplicate = m.reason.startswith("duplicate custom_id")
        st.duplicates += duplicate
        rec = {"id": self._next_id(), "custom_id": m.custom_id, "line": m.line, "response": None,
               "error": {"code": "duplicate_custom_id" if duplicate else "invalid_line",
                         "message": f"line {m.line}: {m.reason}"}}
        self.errors.append(orjson.dumps(rec))
