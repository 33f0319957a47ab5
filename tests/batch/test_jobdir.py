"""The shared batch directory: a live owner (another process holding the job's flock) is told from a
dead one, records re-saved by another process are seen, ids never become paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelyard.batch.jobdir import JobDir, valid_id

BID = "batch_" + "ab" * 12


def _batch(status: str = "in_progress", done: int = 0) -> dict[str, Any]:
    return {"id": BID, "object": "batch", "status": status, "created_at": 1,
            "request_counts": {"total": 10, "completed": done, "failed": 0}}


def _hold_lock(d: JobDir) -> subprocess.Popen[str]:
    """Another process that owns the job (takes its lock as the server does) until killed."""
    code = ("import sys; from modelyard.batch.jobdir import JobDir; JobDir(sys.argv[1]).own(sys.argv[2]); "
            "print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, d.root, BID], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_live_owner_is_running_and_a_dead_one_is_failed(tmp_path: Path) -> None:
    d = JobDir(str(tmp_path))
    owner = _hold_lock(d)
    try:
        d.save(_batch(done=3))
        got = d.resolve(d.read(BID) or {})
        assert got["status"] == "in_progress" and got["request_counts"]["completed"] == 3
        d.request_cancel(BID)
        assert d.resolve(d.read(BID) or {})["status"] == "cancelling"  # shown at once; the owner acts on it
        assert d.read(BID)["status"] == "in_progress"  # type: ignore[index]  (the record is the owner's)
    finally:
        owner.kill()
        owner.wait()
    got = d.resolve(d.read(BID) or {})
    assert got["status"] == "failed" and got["errors"]["data"][0]["code"] == "server_restarted"
    assert d.read(BID) == got, "saved: every process now says the same"
    assert not (tmp_path / f"{BID}.lock").exists() and not (tmp_path / f"{BID}.cancel").exists()


def test_a_record_without_a_lock_file_is_failed_unless_final(tmp_path: Path) -> None:
    d = JobDir(str(tmp_path))
    stale = _batch()
    d.save(_batch("completed", done=10))  # the owner finished after `stale` was read
    assert d.resolve(stale)["status"] == "completed"
    d.save(_batch())  # an active record whose owner is gone (and took its lock file with it)
    assert d.resolve(_batch())["status"] == "failed"


def test_owner_releases_and_listing_follows_saves(tmp_path: Path) -> None:
    d = JobDir(str(tmp_path))
    fd = d.own(BID)
    d.save(_batch(done=1))
    assert [b["request_counts"]["completed"] for b in d.listing("batch")] == [1]
    d.save(_batch(done=2))  # same size, saved again: seen
    assert [b["request_counts"]["completed"] for b in d.listing("batch")] == [2]
    d.save(_batch("completed", done=10))
    d.release(BID, fd)
    assert d.resolve(d.read(BID) or {})["status"] == "completed"
    assert d.listing("file") == []
    (tmp_path / f"{BID}.json").unlink()
    assert d.listing("batch") == []


@pytest.mark.parametrize("oid", ["../etc/passwd", "file-../../x", "batch_" + "a" * 23, "file-" + "A" * 24, ""])
def test_ids_that_are_not_ours_never_reach_the_disk(tmp_path: Path, oid: str) -> None:
    d = JobDir(str(tmp_path))
    assert not valid_id(oid) and d.read(oid) is None
    with pytest.raises(ValueError):
        d.path(oid, ".json")
