"""The key ring's lookup: a token seen before skips the hash, and every change of the ring is seen
by the very next lookup (revoked, rotated, changed keys)."""

from __future__ import annotations

import dataclasses

from modelyard.accounting import keys
from modelyard.accounting.keys import KeyRing, hash_key
from modelyard.store.keys import KeyRecord, Limits

SECRET = "sk-my-" + "a" * 40
OTHER = "sk-my-" + "b" * 40


def ring() -> KeyRing:
    return KeyRing(None, [KeyRecord("key_1", hash_key(SECRET), SECRET[-4:], limits=Limits(rpm=5))])


def test_lookup_remembers_tokens_of_keys_only() -> None:
    r = ring()
    first = r.lookup(SECRET.encode())
    assert first is not None and first.caller.key_id == "key_1"
    assert r.lookup(SECRET.encode()) is first
    for i in range(keys.SEEN_MAX * 2):  # unknown tokens are not remembered: nothing to fill
        assert r.lookup(f"sk-my-wrong-{i}".encode()) is None
    assert len(r._seen) == 1


def test_revoke_rotate_and_change_are_seen_by_the_next_lookup() -> None:
    r = ring()
    rec = r.records["key_1"]
    assert r.lookup(SECRET.encode()) is not None
    r.put_key(dataclasses.replace(rec, limits=Limits(rpm=9)), version=1)
    changed = r.lookup(SECRET.encode())
    assert changed is not None and changed.caller.limits[0].rpm == 9
    r.put_key(dataclasses.replace(rec, revoked_at=123.0), version=2)
    revoked = r.lookup(SECRET.encode())
    assert revoked is not None and revoked.revoked_at == 123.0
    r.put_key(dataclasses.replace(rec, hash=hash_key(OTHER), last4=OTHER[-4:]), version=3, old_hash=rec.hash)
    assert r.lookup(SECRET.encode()) is None  # rotated: the old token stops working at once
    assert r.lookup(OTHER.encode()) is not None


def test_the_remembered_tokens_are_bounded() -> None:
    records = [KeyRecord(f"key_{i}", hash_key(f"sk-my-{i:040d}"), "0000") for i in range(keys.SEEN_MAX + 10)]
    r = KeyRing(None, records)
    for i in range(keys.SEEN_MAX + 10):
        assert r.lookup(f"sk-my-{i:040d}".encode()) is not None
        assert len(r._seen) <= keys.SEEN_MAX
