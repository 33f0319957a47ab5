"""The key ring: every virtual key in memory as `sha256(key) → Entry`, so authenticating a request is one
hash and one dict lookup, never a database read — and a token already seen maps straight to its entry
(a small bounded dict from the token as sent, emptied whenever the ring changes), so a client's
repeated requests skip the hash.

It is loaded at start from the request log's database (store/keys.py) and from the config's `keys:`;
admin changes made in this process update it at once (`put_key`, `put_principal`, ...), and changes
made elsewhere (`modelyard keys --config`, another worker) are picked up by polling the tables'
version number every `refresh_s` seconds in a thread.

Each entry carries a ready `Caller`: the key's id, name, team, user and models, plus every budget and
rate limit the request counts against — the key's own, its team's and its user's — so whoever
enforces budgets and limits reads `caller.budgets` / `caller.limits` and needs to know nothing of keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..secret_refs import resolve_secret
from ..store import keys as store
from ..store.keys import KeyRecord, Limits, Principal, Snapshot
from ..types import Budget, Caller, RateLimit

if TYPE_CHECKING:
    from ..config import Config

log = logging.getLogger("modelyard.accounting.keys")

PREFIX = "sk-my-"
CONFIG_ID_PREFIX = "cfg_"
MIN_CONFIG_KEY_LEN = 20
SEEN_MAX = 1024  # tokens remembered by `KeyRing.lookup` (only tokens of existing keys)


def new_secret() -> str:
    """A new virtual key: the prefix and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """A short random id (48 bits): what logs, spend and the admin API name a key by."""
    return "key_" + secrets.token_hex(6)


def hash_key(secret: str | bytes) -> str:
    """What is stored and looked up: the SHA-256 of the key (a 256-bit random token needs no slow hash)."""
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).hexdigest()


def last4(secret: str) -> str:
    return secret[-4:]


class Entry:
    """A key as the request path sees it."""

    __slots__ = ("caller", "expires_at", "record", "revoked_at")

    def __init__(self, record: KeyRecord, caller: Caller) -> None:
        self.record = record
        self.caller = caller
        self.expires_at = record.expires_at
        self.revoked_at = record.revoked_at


def build_caller(k: KeyRecord, teams: dict[str, Principal], users: dict[str, Principal]) -> Caller:
    """The Caller of key `k`: budgets and limits of the key, then of its team, then of its user (each
    present only where the record sets one). Scopes: "key:<id>", "team:<name>", "user:<name>"."""
    budgets: list[Budget] = []
    limits: list[RateLimit] = []

    def add(scope: str, lim: Limits) -> None:
        if lim.budget_usd is not None:
            budgets.append(Budget(scope, lim.budget_usd, lim.budget_period,  # type: ignore[arg-type]
                                  lim.soft_budget_pct))
        if lim.rpm is not None or lim.tpm is not None:
            limits.append(RateLimit(scope, lim.rpm, lim.tpm))

    add(f"key:{k.id}", k.limits)
    if k.team is not None and k.team in teams:
        add(f"team:{k.team}", teams[k.team].limits)
    if k.user is not None and k.user in users:
        add(f"user:{k.user}", users[k.user].limits)
    return Caller(key_id=k.id, key_name=k.name, team=k.team, user=k.user,
                  models=frozenset(k.models) if k.models is not None else None,
                  budgets=tuple(budgets), limits=tuple(limits), log_content=k.log_content)


def declared_keys(config: Config, file: str = "<config>") -> list[tuple[KeyRecord, str]]:
    """The config's `keys:` as records with their resolved secrets; ConfigError naming the field when a
    reference is unset, a key is too short, or two entries share a key."""
    out: list[tuple[KeyRecord, str]] = []
    seen: dict[str, str] = {}
    for name, kc in config.declared_keys():
        where = f"keys.{name}.key"
        secret = resolve_secret(kc.key, where=where)
        assert secret is not None
        if len(secret) < MIN_CONFIG_KEY_LEN:
            raise ConfigError(file, where, f"the key {kc.key} refers to is shorter than {MIN_CONFIG_KEY_LEN} "
                              f"characters; use a long random one (e.g. from `modelyard keys create`)")
        h = hash_key(secret)
        if h in seen:
            raise ConfigError(file, where, f"the same key as keys.{seen[h]}.key")
        seen[h] = name
        lim = Limits(kc.budget_usd, kc.budget_period, kc.soft_budget_pct, kc.rpm, kc.tpm, dict(kc.metadata))
        expires = kc.expires_at.timestamp() if kc.expires_at is not None else None
        out.append((KeyRecord(CONFIG_ID_PREFIX + name, h, last4(secret), kc.name or name, kc.team, kc.user, lim,
                              tuple(kc.models) if kc.models is not None else None, expires, 0.0, None,
                              source="config", log_content=kc.log_content), secret))
    return out


class KeyRing:
    """hash → Entry for every key (revoked ones too, so a refusal can say why), with the records the
    admin API reads. `path`: the database (None: config keys only)."""

    def __init__(self, path: str | None, declared: Iterable[KeyRecord] = (), *, refresh_s: float = 2.0) -> None:
        self.path = path
        self.refresh_s = refresh_s
        self.declared = {k.id: k for k in declared}
        self.by_hash: dict[str, Entry] = {}
        self._seen: dict[bytes, Entry] = {}  # token as sent -> its entry; replaced with every change
        self.records: dict[str, KeyRecord] = {}
        self.teams: dict[str, Principal] = {}
        self.users: dict[str, Principal] = {}
        self.version = 0  # the database version the ring reflects
        self._floor = 0  # the latest version this process wrote: an older snapshot is not applied
        self._task: asyncio.Task[None] | None = None
        self._rebuild()

    @property
    def enabled(self) -> bool:
        """Whether any virtual key exists (revoked ones count: revoking the last key does not open the
        server)."""
        return bool(self.by_hash)

    def lookup(self, secret: bytes) -> Entry | None:
        """The entry of the key `secret` (revoked and expired ones too: the caller checks), or None.
        Only tokens of existing keys are remembered, so unknown tokens cannot fill the dict."""
        entry = self._seen.get(secret)
        if entry is None:
            entry = self.by_hash.get(hashlib.sha256(secret).hexdigest())
            if entry is not None:
                if len(self._seen) >= SEEN_MAX:
                    self._seen = {}
                self._seen[secret] = entry
        return entry

    # --- loading -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the database (in a thread) and poll it for changes made by other processes."""
        if self.path is None:
            return
        try:
            self.apply(await asyncio.to_thread(store.load, self.path))
        except store.StoreError as e:  # the server still starts; the poll retries
            log.error("virtual keys: cannot read %s (%s); config keys only until it can be read", self.path, e)
        self._task = asyncio.create_task(self._poll(), name="modelyard-keyring")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def load_now(self) -> None:
        """Load synchronously (the CLI, working on the database without a server)."""
        if self.path is not None:
            self.apply(store.load(self.path))

    async def _poll(self) -> None:
        assert self.path is not None
        failing = False
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                v = await asyncio.to_thread(store.version, self.path)
                if v != self.version:
                    self.apply(await asyncio.to_thread(store.load, self.path))
                failing = False
            except store.StoreError as e:
                if not failing:
                    log.warning("virtual keys: cannot read %s (%s); keeping the keys in memory", self.path, e)
                failing = True

    def apply(self, snap: Snapshot) -> None:
        """Replace the ring's contents with a snapshot, unless this process wrote something newer."""
        if snap.version < self._floor:
            return
        self.records = {k.id: k for k in snap.keys}
        self.teams, self.users = dict(snap.teams), dict(snap.users)
        self.version = snap.version
        self._rebuild()

    def _rebuild(self) -> None:
        records = {**self.records, **self.declared}
        self.records = records
        self.by_hash = {k.hash: Entry(k, build_caller(k, self.teams, self.users)) for k in records.values()}
        self._seen = {}  # (entries replaced: a revoked, expired or changed key is looked up afresh)

    # --- changes made by this process (after the database took them) -----------------------------
    def _wrote(self, version: int) -> None:
        self._floor = max(self._floor, version)

    def put_key(self, k: KeyRecord, version: int, old_hash: str | None = None) -> None:
        """A new, changed, revoked or rotated key: takes effect for the next request."""
        self._wrote(version)
        self.records[k.id] = k
        by_hash = dict(self.by_hash)
        if old_hash is not None and old_hash != k.hash:
            by_hash.pop(old_hash, None)  # rotated: the old key stops working at once
        by_hash[k.hash] = Entry(k, build_caller(k, self.teams, self.users))
        self.by_hash = by_hash
        self._seen = {}

    def put_principal(self, p: Principal, version: int) -> None:
        self._wrote(version)
        (self.teams if p.kind == "team" else self.users)[p.name] = p
        self._rebuild()

    def drop_principal(self, kind: str, name: str, version: int) -> None:
        self._wrote(version)
        (self.teams if kind == "team" else self.users).pop(name, None)
        self._rebuild()

    # --- reads for the admin API --------------------------------------------------------------
    def principals(self, kind: str) -> dict[str, Principal]:
        return self.teams if kind == "team" else self.users

    def active_keys_of(self, kind: str, name: str, now: float | None = None) -> list[KeyRecord]:
        t = time.time() if now is None else now
        return [k for k in self.records.values() if getattr(k, kind) == name and k.revoked_at is None
                and (k.expires_at is None or k.expires_at > t)]
