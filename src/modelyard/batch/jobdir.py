"""The `/v1/files` + `/v1/batches` directory, shared by every worker that mounts it: the files on
disk are the truth, so any process answers for any file or batch.

Per id: `<id>.json` (the record, replaced atomically), `<id>.data` (a file's bytes). Per running
batch: `<id>.lock`, held with an exclusive `flock` by the process that runs it from before its
record exists until after its last save — the kernel drops it when that process dies, so a free
lock on an active record means the job was cut off; and `<id>.cancel`, a flag any process may
create, which the owner polls. Every function here blocks (disk): the server calls them in a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import time
from typing import Any

import orjson

ACTIVE = frozenset(("validating", "in_progress", "finalizing", "cancelling"))
_ID = re.compile(r"(file-|batch_)[0-9a-f]{24}")


def valid_id(oid: str) -> bool:
    """Ids name files here: anything else (a path, `..`) never reaches the disk."""
    return _ID.fullmatch(oid) is not None


class JobDir:
    def __init__(self, root: str) -> None:
        self.root = root
        self._made = False
        # name -> ((inode, mtime_ns, size), record): each save is a new inode (os.replace)
        self._cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}

    def path(self, oid: str, ext: str) -> str:
        if not valid_id(oid):
            raise ValueError(f"not an id: {oid!r}")
        return os.path.join(self.root, oid + ext)

    def _mkdir(self) -> None:
        if not self._made:
            os.makedirs(self.root, exist_ok=True)
            self._made = True

    # --- records ------------------------------------------------------------------------------
    def read(self, oid: str) -> dict[str, Any] | None:
        """The record of `oid` as saved now, or None (unknown id)."""
        if not valid_id(oid):
            return None
        try:
            with open(self.path(oid, ".json"), "rb") as f:
                obj: dict[str, Any] = orjson.loads(f.read())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        return obj

    def save(self, obj: dict[str, Any] | bytes, oid: str | None = None) -> None:
        """Write a record atomically (a unique temporary name: several writers never share one)."""
        self._mkdir()
        if isinstance(obj, bytes):
            data, oid = obj, oid or ""
        else:
            data, oid = orjson.dumps(obj), oid or obj["id"]
        path = self.path(oid, ".json")
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def write_data(self, oid: str, data: bytes) -> None:
        self._mkdir()
        with open(self.path(oid, ".data"), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def read_data(self, oid: str) -> bytes:
        try:
            with open(self.path(oid, ".data"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def size(self, oid: str) -> int | None:
        try:
            return os.path.getsize(self.path(oid, ".data"))
        except OSError:
            return None

    def listing(self, kind: str) -> list[dict[str, Any]]:
        """Every record of `kind` ("file" or "batch"), newest first. A record is re-read only when
        it was saved again since this process last read it; the rest costs one stat each."""
        prefix = "file-" if kind == "file" else "batch_"
        seen: set[str] = set()
        out = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        for e in entries:
            name = e.name
            if not (name.startswith(prefix) and name.endswith(".json")):
                continue
            try:
                st = e.stat()
            except FileNotFoundError:
                continue
            seen.add(name)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            hit = self._cache.get(name)
            if hit is None or hit[0] != stamp:
                obj = self.read(name[:-5])
                if obj is None:
                    continue
                hit = self._cache[name] = (stamp, obj)
            out.append(hit[1])
        for name in set(self._cache) - seen:
            if name.startswith(prefix):
                del self._cache[name]
        out.sort(key=lambda o: (o["created_at"], o["id"]), reverse=True)
        return out

    # --- owning a running batch -----------------------------------------------------------------
    def own(self, bid: str) -> int:
        """Take the job's lock (a fresh id: never contended); the caller keeps the descriptor open
        for as long as the job runs."""
        self._mkdir()
        fd = os.open(self.path(bid, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return fd

    def release(self, bid: str, fd: int) -> None:
        """After the job's last save: drop its flag and lock file, then the lock."""
        self.drop_cancel(bid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(bid, ".lock"))
        os.close(fd)

    def drop_cancel(self, bid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(bid, ".cancel"))

    def request_cancel(self, bid: str) -> None:
        with open(self.path(bid, ".cancel"), "ab"):
            pass

    def cancel_requested(self, bid: str) -> bool:
        return os.path.exists(self.path(bid, ".cancel"))

    def resolve(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch record read from disk, as it stands: an active one whose owner holds its lock is
        running (its progress is the owner's last save; a pending cancel shows as `cancelling`); one
        whose lock is free was cut off — marked `failed` (`server_restarted`) and saved."""
        if batch.get("status") not in ACTIVE:
            return batch
        bid = batch["id"]
        try:
            fd = os.open(self.path(bid, ".lock"), os.O_RDWR)
        except FileNotFoundError:
            fd = -1  # no lock file: the owner ended (then the record is final) or never had one
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if batch["status"] == "in_progress" and self.cancel_requested(bid):
                        batch = {**batch, "status": "cancelling",
                                 "cancelling_at": batch.get("cancelling_at") or int(time.time())}
                    return batch
            now = self.read(bid)  # re-read: the owner may have saved its end since
            if now is None or now.get("status") not in ACTIVE:
                return now or batch
            now.update(status="failed", failed_at=int(time.time()),
                       errors={"object": "list", "data": [{
                           "code": "server_restarted",
                           "message": "the server process running this batch stopped; its output so far is "
                                      "kept: re-run the input with `modelyard batch --url` to finish it"}]})
            self.save(now)
            if fd >= 0:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path(bid, ".lock"))
            self.drop_cancel(bid)
            return now
        finally:
            if fd >= 0:
                os.close(fd)


def count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())
