"""The Redis state backend: N replicas enforce one rate limit, one budget and one set of breakers.

The request path stays synchronous and local except for ONE awaited call: `admit` (called by
accounting/shared.py) runs the `ADMIT` script, which takes every rate window and reserves every
budget of the request atomically. Everything else is local and queued:

- settles, token recounts and refunds go to a queue that a background task flushes as one `BATCH`
  script call every few milliseconds (never awaited by a request);
- deployment rpm/tpm (taken after routing, read by routing's headroom filter) are taken on a local
  window and queued; each sync tick (`SYNC_S`) reads the shared window back and keeps what the
  other replicas took as `others`, which the local check adds to its own count;
- breaker records are written to one hash on every transition and polled each tick, so a breaker
  opened by one replica is respected by the others within `SYNC_S`; outcome windows are pushed as
  per-bucket counters and read back with the same tick.

While Redis cannot be reached the replica runs on its in-process fallback (`local`), reports it
(`status()`: /ready, the `modelyard_state_fallback` gauge, one log line per transition), refuses
what `on_failure` says fails closed, probes Redis every `SYNC_S`, and re-syncs when it answers:
spend made meanwhile is added to the shared ledgers and open breakers are published again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import defaultdict
from typing import Any

from .memory import MemoryState
from .scripts import ADMIT, BATCH
from .settings import CONCERNS, StateSettings

log = logging.getLogger("modelyard.state")

P = "modelyard:{acct}:"  # accounting keys (one slot: a request's keys go to one script)
BREAKERS = "modelyard:{breakers}:records"  # name -> "state until_wall opens ts"
WIN = "modelyard:{breakers}:win:"  # + breaker key: per-bucket outcome counters
SYNC_S = 0.25  # breaker records, outcome windows, deployment windows: read back this often
BATCH_S = 0.002  # settles wait this long for company before a flush
MAX_QUEUE = 200_000  # operations kept while Redis is away (oldest dropped past it)
NOT_CLOSED = "breakers:not-closed"  # (resilience/breaker.py keeps this set beside the records)
DOWN_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)


class Ticket:
    """A rate slot taken on a local window and mirrored to Redis as `member`."""

    __slots__ = ("entry", "member")

    def __init__(self, entry: object, member: str | None) -> None:
        self.entry = entry
        self.member = member


class RedisState:
    """`StateStore` + `AccountingStore` over Redis (see the module docstring)."""

    shared = True

    def __init__(self, settings: StateSettings) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import NoScriptError, RedisError

        global DOWN_ERRORS
        DOWN_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
        self.settings = settings
        self.policy = settings.on_failure
        self.local = MemoryState()  # records, windows, mirrors and the fallback ledgers
        # a bounded pool that makes a burst wait for a connection (up to timeout_s) instead of failing
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.url, max_connections=64, timeout=settings.timeout_s, socket_timeout=settings.timeout_s,
            socket_connect_timeout=settings.timeout_s)
        self.r = aioredis.Redis(connection_pool=pool)
        self.admit_script = self.r.register_script(ADMIT)
        self.batch_script = self.r.register_script(BATCH)
        self._noscript = NoScriptError
        self.rid = os.urandom(4).hex()  # ticket ids: unique across replicas
        self._n = 0
        self.up = False
        self.since = time.time()  # of the current up/down state
        self.last_error = "not connected yet"
        self._ops: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()  # set by close(): ends a pause between attempts at once
        self._last_sync = 0.0
        self.others: dict[str, tuple[int, int]] = {}  # deployment window -> what other replicas took
        self._mirrored: set[str] = set()  # windows taken locally and mirrored
        self._rec_ts: dict[str, float] = {}  # breaker key -> stamp of the version held
        self._outcomes: dict[tuple[str, int], list[int]] = {}  # (key, bucket) -> [calls, failures]
        self._widths: dict[str, float] = {}  # outcome window key -> bucket width
        self._remote_totals: dict[str, tuple[int, int]] = {}
        self._known_spend: dict[str, float] = {}  # budget scope -> last shared spend seen
        self._fallback_spend: dict[tuple[str, str], float] = defaultdict(float)
        self.on_settled: Any = None  # callable(ref, spent) for settles that carried a ref (alerts)

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self.r.ping()
            await self._recover()
        except DOWN_ERRORS as e:
            self._down(e)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="modelyard-state-sync")

    async def close(self) -> None:
        """Stop the sync task by a flag, not by cancelling it: on Python 3.11 `wait_for` drops a
        cancel that arrives as the awaited event fires (a settle queued just before close), and the
        task would then run for ever."""
        if self._task is not None:
            self._closing = True
            self._wake.set()
            self._stop.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.up and self._ops:
            try:
                await self._flush(sync=False)
            except DOWN_ERRORS as e:
                log.warning("state: %d queued operations not written to Redis at shutdown: %s", len(self._ops), e)
        await self.r.aclose()

    def status(self) -> dict[str, Any]:
        """For /ready and metrics: whether the state is shared now, and what runs on the fallback."""
        out: dict[str, Any] = {"backend": "redis", "shared": self.up, "since": round(self.since, 3)}
        if not self.up:
            out["error"] = self.last_error
            out["fallback"] = [c for c in CONCERNS if getattr(self.policy, c) == "fail_open"]
            out["refused"] = [c for c in CONCERNS if getattr(self.policy, c) == "fail_closed"]
        out["queued"] = len(self._ops)
        return out

    def _down(self, e: BaseException) -> None:
        self.last_error = f"{type(e).__name__}: {e}"[:200]
        if self.up or self._task is None:
            fb = ", ".join(c for c in CONCERNS if getattr(self.policy, c) == "fail_open") or "nothing"
            ref = ", ".join(c for c in CONCERNS if getattr(self.policy, c) == "fail_closed") or "nothing"
            log.warning("state: Redis unreachable (%s): local fallback for %s; refusing what needs %s "
                        "(state.on_failure)", self.last_error, fb, ref)
        if self.up:
            self.since = time.time()
        self.up = False

    async def _recover(self) -> None:
        """Redis answers (again): push what the fallback counted, publish local breaker states."""
        ops: list[tuple[Any, ...]] = [("p", scope, period, delta)
                                      for (scope, period), delta in self._fallback_spend.items() if delta]
        for key in list(self.local._records):
            if key.startswith("breaker:"):
                rec = self.local._records[key]
                if getattr(rec, "state", "closed") != "closed":
                    self._rec_ts[key] = time.time()
                    ops.append(("b", key, rec))
        self._ops[:0] = ops
        self._fallback_spend.clear()
        self.local._ledgers.clear()  # the shared ledgers are the truth again
        await self._flush(sync=True)
        was_down = not self.up and self._task is not None
        self.up, self.since = True, time.time()
        if was_down:
            log.warning("state: Redis reachable again: limits, budgets and breakers are shared again")
        else:
            log.info("state: shared through Redis at %s", _safe_url(self.settings.url))

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), SYNC_S)
                if self._closing:
                    return  # close() flushes what is queued
                await asyncio.sleep(BATCH_S)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if self.up:
                    await self._flush(sync=time.monotonic() - self._last_sync >= SYNC_S)
                else:
                    await self.r.ping()
                    await self._recover()
            except DOWN_ERRORS as e:
                self._down(e)
                await self._pause()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop the sync for good
                log.exception("state: sync failed")
                await self._pause()

    async def _pause(self) -> None:
        """Wait SYNC_S before the next attempt (queued work does not shorten it; close() does)."""
        try:
            await asyncio.wait_for(self._stop.wait(), SYNC_S)
        except TimeoutError:
            pass

    def _queue(self, op: tuple[Any, ...]) -> None:
        self._ops.append(op)
        if not self._wake.is_set():
            self._wake.set()

    def ticket_id(self) -> str:
        self._n += 1
        return f"{self.rid}{self._n:x}"

    # --- the one awaited call: admit ------------------------------------------------------------
    async def admit(self, rates: list[tuple[str, int, int, int]], budgets: list[tuple[str, str, float, float,
                    str, int]], member: str) -> list[Any]:
        """Run ADMIT: rates as (key, rpm, tpm, tokens), budgets as (scope, period, limit, amount,
        seed, ttl_s). Raises a Redis/OS error when Redis cannot be reached (the caller falls back)."""
        keys: list[str] = []
        args: list[Any] = [member, len(rates), len(budgets)]
        for key, rpm, tpm, tokens in rates:
            keys += (P + key, P + "rtok:" + key)
            args += (rpm, tpm, tokens)
        for scope, period, limit, amount, seed, ttl in budgets:
            keys.append(P + "budget:" + scope)
            args += (period, repr(limit), repr(amount), seed, ttl)
        try:
            res = await self.admit_script(keys, args)
        except DOWN_ERRORS as e:
            self._down(e)
            raise
        out = [x.decode() if isinstance(x, bytes) else x for x in res]
        if out[0] == "ok":
            for j, b in enumerate(budgets):
                self._known_spend[b[0]] = float(out[1 + 2 * j])
        return out

    def settle_shared(self, scope: str, period: str, reserved: float, cost: float, ref: object = None) -> None:
        """Queue the settle of a reservation `admit` made (release: cost 0)."""
        self._queue(("s", scope, period, reserved, cost, ref))

    # --- flushing -------------------------------------------------------------------------------
    async def _flush(self, sync: bool) -> None:
        ops, self._ops = self._ops, []
        keys: dict[str, int] = {}

        def k(name: str) -> int:
            i = keys.get(name)
            if i is None:
                i = keys[name] = len(keys) + 1
            return i

        args: list[Any] = []
        settles: list[tuple[str, object]] = []
        records: dict[Any, Any] = {}
        for op in ops:
            kind = op[0]
            if kind in ("a", "t"):
                args += (kind, k(P + op[1]), k(P + "rtok:" + op[1]), op[2], op[3])
            elif kind == "f":
                args += ("f", k(P + op[1]), k(P + "rtok:" + op[1]), op[2])
            elif kind == "s":
                args += ("s", k(P + "budget:" + op[1]), op[2], repr(op[3]), repr(op[4]))
                settles.append((op[1], op[5]))
            elif kind == "p":
                args += ("p", k(P + "budget:" + op[1]), op[2], repr(op[3]))
            elif kind == "b":
                records[op[1]] = _encode_record(op[2], self._rec_ts.get(op[1], time.time()))
        reads: list[str] = []
        if sync:
            now = time.time()
            for key in self._mirrored:
                args += ("u", k(P + key), k(P + "rtok:" + key))
                reads.append(key)
            mine = {key: self.local.rate_used(key, now) for key in reads}
        outcomes, self._outcomes = self._outcomes, {}
        widths = list(self._widths)
        try:
            async with self.r.pipeline(transaction=False) as pipe:
                if args:  # EVALSHA itself: a script object would add a SCRIPT EXISTS round trip per flush
                    pipe.evalsha(self.batch_script.sha, len(keys), *keys, *args)
                if records:
                    pipe.hset(BREAKERS, mapping=records)
                for (key, bucket), (calls, fails) in outcomes.items():
                    pipe.hincrby(WIN + key, f"c{bucket}", calls)
                    if fails:
                        pipe.hincrby(WIN + key, f"f{bucket}", fails)
                    pipe.expire(WIN + key, int(self._widths[key] * 20) + 1)
                if sync:
                    pipe.hgetall(BREAKERS)
                    for key in widths:
                        pipe.hgetall(WIN + key)
                res = await pipe.execute(raise_on_error=False)
            if args and isinstance(res[0], self._noscript):  # Redis restarted or flushed its scripts
                res[0] = await self.batch_script(list(keys), args)  # (loads it, runs the batch alone)
            for x in res:
                if isinstance(x, Exception):
                    raise x
        except BaseException:
            self._requeue(ops)
            raise
        out = res[0] if args else []
        self._after_batch(out, settles, reads, mine if sync else {})
        if sync:
            self._last_sync = time.monotonic()
            tail = res[len(res) - 1 - len(widths):]
            self._apply_records(tail[0])
            for key, win in zip(widths, tail[1:], strict=True):
                self._remote_totals[key] = _window_totals(win, self._widths[key], time.time())

    def _requeue(self, ops: list[tuple[Any, ...]]) -> None:
        """A failed flush keeps its settles, refunds and records for when Redis is back."""
        keep = [op for op in ops if op[0] in ("s", "f", "a", "p", "b")]
        self._ops[:0] = keep
        if len(self._ops) > MAX_QUEUE:
            dropped = len(self._ops) - MAX_QUEUE
            del self._ops[:dropped]
            log.warning("state: %d queued operations dropped while Redis is away", dropped)

    def _after_batch(self, out: list[Any], settles: list[tuple[str, object]], reads: list[str],
                     mine: dict[str, tuple[int, int]]) -> None:
        i = 0
        for scope, ref in settles:
            v = out[i]
            i += 1
            if v not in (b"", ""):
                spent = float(v)
                self._known_spend[scope] = spent
                if ref is not None and self.on_settled is not None:
                    self.on_settled(ref, spent)
        for key in reads:
            reqs, toks = int(out[i]), int(out[i + 1])
            i += 2
            my_r, my_t = mine[key]
            self.others[key] = (max(reqs - my_r, 0), max(toks - my_t, 0))

    # --- breaker records (StateStore) ----------------------------------------------------------
    def get(self, key: str) -> Any | None:
        return self.local.get(key)

    def put(self, key: str, value: Any) -> None:
        self.local.put(key, value)
        if key.startswith("breaker:"):
            self._rec_ts[key] = time.time()
            if self.up:
                self._queue(("b", key, value))

    def _apply_records(self, raw: dict[bytes, bytes]) -> None:
        """Adopt the breaker transitions other replicas published (newer than the local version)."""
        not_closed = self.local.get(NOT_CLOSED)
        for k, v in raw.items():
            key = k.decode()
            state, until_wall, opens, ts = v.decode().split()
            if float(ts) <= self._rec_ts.get(key, 0.0):
                continue
            rec = self.local.get(key)
            if rec is None:
                continue
            self._rec_ts[key] = float(ts)
            rec.state, rec.opens = state, int(opens)
            rec.until = float(until_wall) - time.time() + time.monotonic()
            if state != "open":
                rec.probes = rec.successes = 0
            name = key[len("breaker:"):]
            if not_closed is not None:
                if state == "closed":
                    not_closed.discard(name)
                    self.local.clear(key)
                else:
                    not_closed.add(name)

    # --- outcome windows (StateStore) -----------------------------------------------------------
    def add(self, key: str, ok: bool, now: float, window_s: float) -> None:
        self.local.add(key, ok, now, window_s)
        if self.up:
            width = self._widths.get(key)
            if width is None:
                width = self._widths[key] = window_s / 10
            slot = (key, int(time.time() / width))
            c = self._outcomes.get(slot)
            if c is None:
                c = self._outcomes[slot] = [0, 0]
            c[0] += 1
            if not ok:
                c[1] += 1

    def totals(self, key: str, now: float) -> tuple[int, int]:
        mine = self.local.totals(key, now)
        shared = self._remote_totals.get(key)
        if shared is None or not self.up:
            return mine
        return max(mine[0], shared[0]), max(mine[1], shared[1])

    def clear(self, key: str) -> None:
        self.local.clear(key)
        self._remote_totals.pop(key, None)

    # --- rate windows on the local mirror (AccountingStore) -------------------------------------
    def rate_take(self, key: str, now: float, rpm: int | None, tpm: int | None, tokens: int
                  ) -> tuple[object | None, float]:
        o = self.others.get(key) if self.up else None
        if o is not None:
            if rpm:
                rpm -= o[0]
                if rpm <= 0:
                    return None, SYNC_S * 4
            if tpm:
                tpm -= o[1]
                if tpm <= 0:
                    return None, SYNC_S * 4
        entry, wait = self.local.rate_take(key, now, rpm, tpm, tokens)
        if entry is None:
            return None, wait
        if not self.up:
            return Ticket(entry, None), 0.0
        self._mirrored.add(key)
        member = self.ticket_id()
        self._queue(("t", key, member, tokens))
        return Ticket(entry, member), 0.0

    def rate_wait(self, key: str, now: float, rpm: int | None, tpm: int | None, tokens: int) -> float:
        o = self.others.get(key) if self.up else None
        if o is not None:
            if (rpm and rpm - o[0] <= 0) or (tpm and tpm - o[1] <= 0):
                return SYNC_S * 4
            rpm = rpm - o[0] if rpm else rpm
            tpm = tpm - o[1] if tpm else tpm
        return self.local.rate_wait(key, now, rpm, tpm, tokens)

    def rate_used(self, key: str, now: float) -> tuple[int, int]:
        r, t = self.local.rate_used(key, now)
        o = self.others.get(key) if self.up else None
        return (r, t) if o is None else (r + o[0], t + o[1])

    def rate_adjust(self, key: str, ticket: object, tokens: int) -> None:
        if type(ticket) is str:  # taken by ADMIT
            self._queue(("a", key, ticket, tokens))
            return
        assert isinstance(ticket, Ticket)
        self.local.rate_adjust(key, ticket.entry, tokens)
        if ticket.member is not None:
            self._queue(("a", key, ticket.member, tokens))

    def rate_refund(self, key: str, ticket: object) -> None:
        if type(ticket) is str:
            self._queue(("f", key, ticket))
            return
        assert isinstance(ticket, Ticket)
        self.local.rate_refund(key, ticket.entry)
        if ticket.member is not None:
            self._queue(("f", key, ticket.member))

    # --- budget ledgers: the fallback's (shared reservations go through `admit`) ----------------
    def budget_known(self, scope: str, period: str) -> bool:
        return self.local.budget_known(scope, period)

    def budget_seed(self, scope: str, period: str, spent: float) -> None:
        self.local.budget_seed(scope, period, max(spent, self._known_spend.get(scope, 0.0)))

    def budget_reserve(self, scope: str, period: str, limit: float, amount: float) -> tuple[bool, float, float]:
        return self.local.budget_reserve(scope, period, limit, amount)

    def budget_settle(self, scope: str, period: str, reserved: float, cost: float) -> float:
        spent = self.local.budget_settle(scope, period, reserved, cost)
        if cost:
            if self.up:
                self._queue(("p", scope, period, cost))
            else:
                self._fallback_spend[(scope, period)] += cost
        return spent

    def budget_spend(self, scope: str, period: str) -> tuple[float, float]:
        return self.local.budget_spend(scope, period)


def _encode_record(rec: Any, ts: float) -> str:
    """A breaker record's shared fields; `until` is monotonic locally, wall time on the wire."""
    until_wall = rec.until - time.monotonic() + time.time() if rec.until else 0.0
    return f"{rec.state} {until_wall!r} {rec.opens} {ts!r}"


def _window_totals(raw: dict[bytes, bytes], width: float, now: float) -> tuple[int, int]:
    oldest = int(now / width) - 9
    calls = fails = 0
    for k, v in raw.items():
        kind, bucket = k[:1], int(k[1:])
        if bucket >= oldest:
            if kind == b"c":
                calls += int(v)
            else:
                fails += int(v)
    return calls, fails


def _safe_url(url: str) -> str:
    """The URL without its password (logs never carry secrets)."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}://{rest}"
