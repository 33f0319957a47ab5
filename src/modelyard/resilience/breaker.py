"""Circuit breakers, one per deployment: stop sending traffic to a deployment that keeps failing,
and let a few probe calls test it after a cool-down.

closed ── `consecutive_failures` in a row, or failure rate ≥ `failure_rate` over `window_s`
   │      (with ≥ `min_requests` calls) ──▶ open
open ── `cooldown_s` later (doubled after each failed probe, up to `max_cooldown_s`) ──▶ half-open
half-open ── at most `half_open_probes` calls in flight; all succeed ──▶ closed; one fails ──▶ open

The record of each breaker lives in the state store (state/), so replicas sharing a store open and
close together; the probe count and the consecutive-failure count are per process.
Only failures that say something about the deployment count (see `counts_against`): a request
that is too long or refused by policy is not a sign of an unhealthy upstream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Auth, ModelyardError, NotFound, PermissionDenied
from ..state import MemoryState, StateStore
from .settings import BreakerSettings

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# What `acquire` hands out: the caller passes it back to `release`.
REFUSED, CALL, PROBE = 0, 1, 2


@dataclass(slots=True)
class BreakerRecord:
    state: str = CLOSED
    until: float = 0.0  # open: when probes may start
    opens: int = 0  # openings since the last close: the cool-down doubles with each
    probes: int = 0  # half-open: probe calls in flight
    successes: int = 0  # half-open: probe calls that succeeded


def counts_against(e: ModelyardError | None) -> bool:
    """Whether a failure is the deployment's: transient upstream errors, and an upstream that
    rejects the deployment's own key or model name. Not: the request's own problems."""
    if e is None or e.retryable:
        return True
    return e.deployment is not None and isinstance(e, Auth | PermissionDenied | NotFound)


_NOT_CLOSED = "breakers:not-closed"  # (outside the "breaker:" + name keys of the records)


class CircuitBreaker:
    def __init__(self, settings: BreakerSettings | None = None, store: StateStore | None = None,
                 names: list[str] | None = None,
                 on_change: Callable[[str, BreakerRecord], None] | None = None) -> None:
        self.settings = s = settings or BreakerSettings()
        self.enabled = s.enabled
        self.store: StateStore = store if store is not None else MemoryState()
        self.on_change = on_change
        self._keys: dict[str, str] = {}
        self._records: dict[str, BreakerRecord] = {}  # the store's live objects, by deployment name
        # Deployments whose breaker is not closed, kept in the store beside the records (so breakers
        # sharing a store share it) and updated by every state change (`_changed`): while it is
        # empty, routing knows every deployment is available without reading their records.
        not_closed = self.store.get(_NOT_CLOSED)
        if not_closed is None:
            not_closed = set()
            self.store.put(_NOT_CLOSED, not_closed)
        self.not_closed: set[str] = not_closed
        for n in names or ():
            self._record(n)

    def _record(self, name: str) -> BreakerRecord:
        rec = self._records.get(name)
        if rec is not None:
            return rec
        key = self._keys[name] = "breaker:" + name
        rec = self.store.get(key)
        if rec is None:
            rec = BreakerRecord()
            self.store.put(key, rec)
        elif rec.state != CLOSED:  # a record the store already held (another breaker's, a restart)
            self.not_closed.add(name)
        self._records[name] = rec
        return rec

    def state(self, name: str) -> str:
        return self._record(name).state

    def record(self, name: str) -> BreakerRecord:
        return self._record(name)

    # --- the routing side: may this deployment take a call? ------------------------------------
    def available(self, name: str, now: float) -> bool:
        """True if a call would be let through now (closed, or cooled down with a probe slot free)."""
        if not self.enabled:
            return True
        r = self._record(name)
        if r.state == CLOSED:
            return True
        if r.state == OPEN:
            return now >= r.until
        return r.probes < self.settings.half_open_probes

    def acquire(self, name: str, now: float) -> int:
        """Ask to call `name`: REFUSED, CALL, or PROBE (a half-open test call). Pass the result to
        `release` when the call ends, however it ends."""
        if not self.enabled:
            return CALL
        r = self._records.get(name) or self._record(name)
        if r.state == CLOSED:
            return CALL
        if r.state == OPEN:
            if now < r.until:
                return REFUSED
            r.state, r.probes, r.successes = HALF_OPEN, 0, 0
            self._changed(name, r)
        if r.probes >= self.settings.half_open_probes:
            return REFUSED
        r.probes += 1
        return PROBE

    def release(self, name: str, token: int) -> None:
        if token == PROBE:
            r = self._record(name)
            r.probes = max(0, r.probes - 1)

    # --- outcomes ------------------------------------------------------------------------------
    def success(self, name: str, now: float) -> None:
        if not self.enabled:
            return
        r = self._records.get(name) or self._record(name)
        if r.state == CLOSED:
            self.store.add(self._keys[name], True, now, self.settings.window_s)
        elif r.state == HALF_OPEN:
            r.successes += 1
            if r.successes >= self.settings.half_open_probes:
                r.state, r.opens, r.until, r.successes = CLOSED, 0, 0.0, 0
                self.store.clear(self._keys[name])
                self._changed(name, r)
        # OPEN: a call that started before the breaker opened; it proves little either way.

    def failure(self, name: str, now: float, consecutive: int) -> None:
        if not self.enabled:
            return
        r = self._record(name)
        s = self.settings
        if r.state == CLOSED:
            key = self._keys[name]
            self.store.add(key, False, now, s.window_s)
            if consecutive >= s.consecutive_failures:
                self._open(name, r, now)
                return
            calls, failures = self.store.totals(key, now)
            if calls >= s.min_requests and failures >= s.failure_rate * calls:
                self._open(name, r, now)
        elif r.state == HALF_OPEN:
            self._open(name, r, now)

    def _open(self, name: str, r: BreakerRecord, now: float) -> None:
        s = self.settings
        r.opens += 1
        r.state = OPEN
        r.until = now + min(s.max_cooldown_s, s.cooldown_s * 2 ** (r.opens - 1))
        r.successes = 0
        self._changed(name, r)

    def _changed(self, name: str, r: BreakerRecord) -> None:
        if r.state == CLOSED:
            self.not_closed.discard(name)
        else:
            self.not_closed.add(name)
        self.store.put(_NOT_CLOSED, self.not_closed)
        self.store.put(self._keys[name], r)
        if self.on_change is not None:
            self.on_change(name, r)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Every breaker's state, for admin views and tests."""
        return {n: {"state": (r := self._record(n)).state, "until": r.until, "opens": r.opens}
                for n in self._keys}
