"""OpenAI-compatible `/v1/files` (purpose=batch) and `/v1/batches`, on the batch engine.

An uploaded file is a batch input; `POST /v1/batches` runs it in this server process in the
background (the same engine as `modelyard batch`, through this gateway, as the caller who created
it), writing its output and error files as OpenAI's Batch API does (`output_file_id`,
`error_file_id`, read with `GET /v1/files/{id}/content`). Files and batch records live in a
`modelyard-batches/` directory next to the request log, and every request reads them there
(batch/jobdir.py), so any worker of `serve --workers N` — or any replica mounting the directory —
answers for any of them: the running job's owner saves its progress every `PROGRESS_S` and polls a
cancel flag as often; a job whose owner died is reported `failed` (`server_restarted`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson

from ..batch.engine import BatchEngine
from ..batch.jobdir import ACTIVE, JobDir, count_lines, valid_id
from ..batch.output import Appender, LazyAppender
from ..batch.reader import read_items
from ..errors import BadRequest, NotFound
from ..types import Caller
from .batch_backend import GatewayBackend
from .http import Receive, Scope, Send, content_length, header, send_json
from .stats_api import query

log = logging.getLogger("modelyard.server")
ENDPOINT = "/v1/chat/completions"
PROGRESS_S = 0.25  # how often a running job saves its counts and looks for a cancel flag
MAX_LIMIT = {"file": 10_000, "batch": 100}  # OpenAI's bounds for `limit`
DEFAULT_LIMIT = {"file": 10_000, "batch": 20}


class BatchesApi:
    def __init__(self, app: Any) -> None:
        self.app = app
        server = app.gateway.config.server
        self.root = os.path.abspath(server.batch_dir) if server.batch_dir else os.path.join(
            os.path.dirname(os.path.abspath(server.request_log.path)), "modelyard-batches")
        self.dir = JobDir(self.root)
        self.live: dict[str, dict[str, Any]] = {}  # batches this process runs: fresher than their records
        self.engines: dict[str, BatchEngine] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _data(self, file_id: str) -> str:
        return self.dir.path(file_id, ".data")

    def _batch_now(self, bid: str) -> dict[str, Any] | None:
        """Blocking (a thread): the batch as any process sees it now."""
        obj = self.dir.read(bid)
        return None if obj is None or obj.get("object") != "batch" else self.dir.resolve(obj)

    def _file_now(self, fid: str) -> dict[str, Any] | None:
        """Blocking (a thread): the file record, with its current size."""
        obj = self.dir.read(fid)
        if obj is None or obj.get("object") != "file":
            return None
        size = self.dir.size(fid)
        return obj if size is None else {**obj, "bytes": size}

    @staticmethod
    def _new_file(filename: str, purpose: str) -> dict[str, Any]:
        return {"id": "file-" + secrets.token_hex(12), "object": "file", "bytes": 0, "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}

    # --- /v1/files ------------------------------------------------------------------------------
    async def upload(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        ctype = header(scope, b"content-type") or ""
        if not ctype.startswith("multipart/form-data"):
            raise BadRequest("upload a file as multipart/form-data with fields 'file' and 'purpose'")
        body = await self.app._read_body(receive)
        msg = BytesParser(policy=HTTP).parsebytes(b"content-type: " + ctype.encode() + b"\r\n\r\n" + body)
        fields: dict[str, Any] = {}
        filename = "upload.jsonl"
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "file":
                filename = part.get_filename() or filename
            fields[str(name)] = part.get_payload(decode=True)
        if fields.get("purpose", b"").decode() != "batch":
            raise BadRequest("purpose must be 'batch' (the only purpose this server stores files for)", param="purpose")
        data = fields.get("file")
        if not data:
            raise BadRequest("the 'file' field is missing or empty", param="file")
        obj = self._new_file(filename, "batch")
        obj["bytes"] = len(data)
        await asyncio.to_thread(self._store_upload, obj, data)
        await send_json(send, 200, orjson.dumps(obj), rid)

    def _store_upload(self, obj: dict[str, Any], data: bytes) -> None:
        self.dir.write_data(obj["id"], data)
        self.dir.save(obj)  # the record last: a file another worker can see has all its bytes

    async def list_files(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        q = query(scope)
        files = await asyncio.to_thread(self.dir.listing, "file")
        if q.get("purpose"):
            files = [f for f in files if f.get("purpose") == q["purpose"]]
        if q.get("order", "desc") not in ("asc", "desc"):
            raise BadRequest("order must be 'asc' or 'desc'", param="order")
        data, more = _page(files[::-1] if q.get("order") == "asc" else files, q, "file")
        await send_json(send, 200, orjson.dumps({
            "object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}), rid)

    async def file(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        fid, _, tail = scope["path"].removeprefix("/v1/files/").partition("/")
        obj = await asyncio.to_thread(self._file_now, fid) if tail in ("", "content") else None
        if obj is None:
            raise NotFound(f"no file {fid!r}", param="file_id")
        if not tail:
            await send_json(send, 200, orjson.dumps(obj), rid)
            return
        data = await asyncio.to_thread(self.dir.read_data, fid)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"), (b"x-request-id", rid.encode()),
                                content_length(data)]})
        await send({"type": "http.response.body", "body": data})

    # --- /v1/batches ----------------------------------------------------------------------------
    async def create(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        caller = self.app.check_auth(scope)
        body = await self.app.read_json(scope, receive)
        if not isinstance(body, dict):
            raise BadRequest("the body must be an object with input_file_id, endpoint and completion_window")
        fid = body.get("input_file_id")
        if not isinstance(fid, str) or await asyncio.to_thread(self._file_now, fid) is None:
            raise NotFound(f"no input file {fid!r}; upload one with POST /v1/files (purpose=batch)",
                           param="input_file_id")
        if body.get("endpoint") != ENDPOINT:
            raise BadRequest(f"endpoint must be {ENDPOINT}", param="endpoint")
        now = int(time.time())
        out_file = self._new_file("", "batch_output")
        batch: dict[str, Any] = {
                 "id": "batch_" + secrets.token_hex(12), "object": "batch", "endpoint": ENDPOINT, "errors": None,
                 "input_file_id": fid, "completion_window": body.get("completion_window") or "24h",
                 "status": "in_progress", "output_file_id": out_file["id"], "error_file_id": None,
                 "created_at": now, "in_progress_at": now, "expires_at": now + 86400, "finalizing_at": None,
                 "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
                 "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
                 "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else None}
        out_file["filename"] = f"{batch['id']}_output.jsonl"
        lock = await asyncio.to_thread(self._start, batch, out_file)
        self.live[batch["id"]] = batch
        task = asyncio.create_task(self._run(batch, out_file, caller, lock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await send_json(send, 200, orjson.dumps(batch), rid)

    def _start(self, batch: dict[str, Any], out_file: dict[str, Any]) -> int:
        """Lock first, then the records: no process ever sees this batch active with its lock free."""
        lock = self.dir.own(batch["id"])
        self.dir.save(out_file)  # the output so far stays readable if the job is cut off
        self.dir.save(batch)
        return lock

    async def _run(self, batch: dict[str, Any], out_file: dict[str, Any], caller: Caller, lock: int) -> None:
        bid = batch["id"]
        err_file = self._new_file(f"{bid}_error.jsonl", "batch_output")
        out, err = Appender(self._data(out_file["id"])), LazyAppender(self._data(err_file["id"]))
        engine = BatchEngine(GatewayBackend(self.app.gateway, caller=caller, owns_gateway=False), out, err,
                             concurrency=64, on_result=lambda st: self._count(batch, st))
        self.engines[bid] = engine
        stop = asyncio.Event()
        watcher = asyncio.create_task(self._watch(batch, engine, stop))
        try:
            total = await asyncio.to_thread(count_lines, self._data(batch["input_file_id"]))
            batch["request_counts"]["total"] = engine.stats.total = total
            st = await engine.run(read_items(self._data(batch["input_file_id"]), None))
        except Exception as e:
            batch.update(status="failed", failed_at=int(time.time()),
                         errors={"object": "list", "data": [{"code": "batch_error", "message": str(e)}]})
            st = engine.stats
        finally:
            stop.set()
            await watcher
            self.engines.pop(bid, None)
            await out.close()
            await err.close()
        self._count(batch, st)
        batch["finalizing_at"] = int(time.time())
        if err.lines:
            batch["error_file_id"] = err_file["id"]
        if batch["status"] == "cancelling":
            batch.update(status="cancelled", cancelled_at=int(time.time()))
        elif batch["status"] != "failed":
            batch.update(status="completed", completed_at=int(time.time()))
        final = orjson.dumps(batch)
        await asyncio.to_thread(self._finish, bid, lock, final, out_file, err_file if err.lines else None)
        self.live.pop(bid, None)

    def _finish(self, bid: str, lock: int, final: bytes, *files: dict[str, Any] | None) -> None:
        try:
            for f in files:
                if f is not None:
                    size = self.dir.size(f["id"])
                    self.dir.save({**f, "bytes": size or 0})
            self.dir.save(final, bid)
        except OSError as e:  # the record stays active with its lock free: reported failed
            log.error("batch %s: could not save its end: %s", bid, e)
        finally:
            self.dir.release(bid, lock)  # after the last save: a free lock now means a final record

    async def _watch(self, batch: dict[str, Any], engine: BatchEngine, stop: asyncio.Event) -> None:
        """While the job runs: save its progress for the other processes, and take a cancel asked
        through one of them."""
        bid, saved = batch["id"], b""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), PROGRESS_S)
                return
            except TimeoutError:
                pass
            data = orjson.dumps(batch)
            cancel = await asyncio.to_thread(self._checkpoint, bid, data if data != saved else None)
            saved = data
            if cancel and batch["status"] == "in_progress":
                batch.update(status="cancelling", cancelling_at=int(time.time()))
                engine.cancel()

    def _checkpoint(self, bid: str, data: bytes | None) -> bool:
        try:
            if data is not None:
                self.dir.save(data, bid)
        except OSError as e:  # a full disk: the job goes on, the others see older counts
            log.warning("batch %s: could not save its progress: %s", bid, e)
        return self.dir.cancel_requested(bid)

    def _count(self, batch: dict[str, Any], st: Any) -> None:
        failed = st.failed + st.malformed
        batch["request_counts"] = {"total": batch["request_counts"]["total"], "completed": st.done,
                                   "failed": failed}

    async def list_batches(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        data, more = await asyncio.to_thread(self._list_batches, query(scope))
        await send_json(send, 200, orjson.dumps({
            "object": "list", "data": data, "has_more": more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}), rid)

    def _list_batches(self, q: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
        page, more = _page(self.dir.listing("batch"), q, "batch")
        return [self.live.get(b["id"]) or self.dir.resolve(b) for b in page], more

    async def batch(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        bid, _, tail = scope["path"].removeprefix("/v1/batches/").partition("/")
        if (scope["method"], tail) not in (("GET", ""), ("POST", "cancel")):
            raise NotFound(f"no batch {bid!r}", param="batch_id")
        batch = self.live.get(bid) or await asyncio.to_thread(self._batch_now, bid)
        if batch is None:
            raise NotFound(f"no batch {bid!r}", param="batch_id")
        if tail == "cancel" and batch["status"] in ("validating", "in_progress", "finalizing"):
            if bid in self.live:  # ours: stop it now
                batch.update(status="cancelling", cancelling_at=int(time.time()))
                engine = self.engines.get(bid)
                if engine is not None:
                    engine.cancel()
            else:  # another process runs it: it sees the flag within PROGRESS_S
                batch = await asyncio.to_thread(self._cancel_elsewhere, batch)
        await send_json(send, 200, orjson.dumps(batch), rid)

    def _cancel_elsewhere(self, batch: dict[str, Any]) -> dict[str, Any]:
        self.dir.request_cancel(batch["id"])
        now = self._batch_now(batch["id"]) or batch
        if now["status"] not in ACTIVE:  # it ended meanwhile: nobody will read the flag
            self.dir.drop_cancel(batch["id"])
        return now


def _page(items: list[dict[str, Any]], q: dict[str, str], kind: str) -> tuple[list[dict[str, Any]], bool]:
    """OpenAI's cursor paging over an ordered list: the items `after` an id, at most `limit`."""
    raw = q.get("limit", str(DEFAULT_LIMIT[kind]))
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT[kind]:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT[kind]}", param="limit")
    after = q.get("after")
    if after:
        at = next((i for i, o in enumerate(items) if o["id"] == after), None) if valid_id(after) else None
        if at is None:
            raise BadRequest(f"after: no {kind} {after!r}", param="after")
        items = items[at + 1:]
    return items[:limit], len(items) > limit


def install(app: Any) -> None:
    """Serve /v1/files and /v1/batches on `app`."""
    api = BatchesApi(app)
    app.add_route("POST", "/v1/files", api.upload)
    app.add_route("GET", "/v1/files", api.list_files)
    app.add_prefix_route("GET", "/v1/files/", api.file)
    app.add_route("POST", "/v1/batches", api.create)
    app.add_route("GET", "/v1/batches", api.list_batches)
    app.add_prefix_route("GET", "/v1/batches/", api.batch)
    app.add_prefix_route("POST", "/v1/batches/", api.batch)


__all__ = ["BatchesApi", "install"]
