"""OpenAI-compatible `/v1/files` (purpose=batch) and `/v1/batches`, on the batch engine.

An uploaded file is a batch input; `POST /v1/batches` runs it in this server process in the
background (the same engine as `modelyard batch`, through this gateway, as the caller who created
it), writing its output and error files as OpenAI's Batch API does (`output_file_id`,
`error_file_id`, read with `GET /v1/files/{id}/content`). Files and batch records live in a
`modelyard-batches/` directory next to the request log. A job cut off by a server restart is marked
`failed` when the server starts again (its output so far stays readable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson

from ..batch.engine import BatchEngine
from ..batch.output import Appender, LazyAppender
from ..batch.reader import read_items
from ..errors import BadRequest, NotFound
from ..types import Caller
from .batch_backend import GatewayBackend
from .http import Receive, Scope, Send, content_length, header, send_json

ENDPOINT = "/v1/chat/completions"


class BatchesApi:
    def __init__(self, app: Any) -> None:
        self.app = app
        log_path = app.gateway.config.server.request_log.path
        self.root = os.path.join(os.path.dirname(os.path.abspath(log_path)), "modelyard-batches")
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.engines: dict[str, BatchEngine] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loaded = False

    # --- storage ------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        os.makedirs(self.root, exist_ok=True)
        for name in sorted(os.listdir(self.root)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(self.root, name), "rb") as f:
                obj = orjson.loads(f.read())
            if obj.get("object") == "file":
                self.files[obj["id"]] = obj
            elif obj.get("object") == "batch":
                if obj["status"] in ("validating", "in_progress", "finalizing", "cancelling"):
                    obj.update(status="failed", failed_at=int(time.time()),
                               errors={"object": "list", "data": [{"code": "server_restarted",
                                                                   "message": "the server stopped while it ran"}]})
                self.batches[obj["id"]] = obj

    def _save(self, obj: dict[str, Any]) -> None:
        path = os.path.join(self.root, obj["id"] + ".json")
        with open(path + ".tmp", "wb") as f:
            f.write(orjson.dumps(obj))
        os.replace(path + ".tmp", path)

    def _data(self, file_id: str) -> str:
        return os.path.join(self.root, file_id + ".data")

    def _new_file(self, filename: str, purpose: str) -> dict[str, Any]:
        fid = "file-" + secrets.token_hex(12)
        obj = {"id": fid, "object": "file", "bytes": 0, "created_at": int(time.time()), "filename": filename,
               "purpose": purpose, "status": "processed"}
        self.files[fid] = obj
        return obj

    # --- /v1/files ------------------------------------------------------------------------------
    async def upload(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        self._load()
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
        await asyncio.to_thread(_write, self._data(obj["id"]), data)
        self._save(obj)
        await send_json(send, 200, orjson.dumps(obj), rid)

    async def list_files(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        self._load()
        data = sorted(self.files.values(), key=lambda f: f["created_at"], reverse=True)
        await send_json(send, 200, orjson.dumps({"object": "list", "data": data, "has_more": False}), rid)

    async def file(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        self._load()
        rest = scope["path"].removeprefix("/v1/files/")
        fid, _, tail = rest.partition("/")
        obj = self.files.get(fid)
        if obj is None or tail not in ("", "content"):
            raise NotFound(f"no file {fid!r}", param="file_id")
        if not tail:
            await send_json(send, 200, orjson.dumps(self._sized(obj)), rid)
            return
        data = await asyncio.to_thread(_read, self._data(fid))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"), (b"x-request-id", rid.encode()),
                                content_length(data)]})
        await send({"type": "http.response.body", "body": data})

    def _sized(self, obj: dict[str, Any]) -> dict[str, Any]:
        with contextlib.suppress(OSError):
            obj["bytes"] = os.path.getsize(self._data(obj["id"]))
        return obj

    # --- /v1/batches ----------------------------------------------------------------------------
    async def create(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        caller = self.app.check_auth(scope)
        self._load()
        body = await self.app.read_json(scope, receive)
        if not isinstance(body, dict):
            raise BadRequest("the body must be an object with input_file_id, endpoint and completion_window")
        fid = body.get("input_file_id")
        if not isinstance(fid, str) or fid not in self.files:
            raise NotFound(f"no input file {fid!r}; upload one with POST /v1/files (purpose=batch)",
                           param="input_file_id")
        if body.get("endpoint") != ENDPOINT:
            raise BadRequest(f"endpoint must be {ENDPOINT}", param="endpoint")
        now = int(time.time())
        batch: dict[str, Any] = {
                 "id": "batch_" + secrets.token_hex(12), "object": "batch", "endpoint": ENDPOINT, "errors": None,
                 "input_file_id": fid, "completion_window": body.get("completion_window") or "24h",
                 "status": "in_progress", "output_file_id": None, "error_file_id": None, "created_at": now,
                 "in_progress_at": now, "expires_at": now + 86400, "finalizing_at": None, "completed_at": None,
                 "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0},
                 "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else None}
        self.batches[batch["id"]] = batch
        self._save(batch)
        task = asyncio.create_task(self._run(batch, caller))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await send_json(send, 200, orjson.dumps(batch), rid)

    async def _run(self, batch: dict[str, Any], caller: Caller) -> None:
        out_file = self._new_file(f"{batch['id']}_output.jsonl", "batch_output")
        err_file = self._new_file(f"{batch['id']}_error.jsonl", "batch_output")
        out, err = Appender(self._data(out_file["id"])), LazyAppender(self._data(err_file["id"]))
        engine = BatchEngine(GatewayBackend(self.app.gateway, caller=caller, owns_gateway=False), out, err,
                             concurrency=64, on_result=lambda st: self._count(batch, st))
        self.engines[batch["id"]] = engine
        try:
            total = await asyncio.to_thread(_count_lines, self._data(batch["input_file_id"]))
            batch["request_counts"]["total"] = engine.stats.total = total
            st = await engine.run(read_items(self._data(batch["input_file_id"]), None))
        except Exception as e:
            batch.update(status="failed", failed_at=int(time.time()),
                         errors={"object": "list", "data": [{"code": "batch_error", "message": str(e)}]})
            st = engine.stats
        finally:
            self.engines.pop(batch["id"], None)
            await out.close()
            await err.close()
        self._count(batch, st)
        batch["finalizing_at"] = int(time.time())
        batch["output_file_id"] = out_file["id"]
        self._save(self._sized(out_file))
        if err.lines:
            batch["error_file_id"] = err_file["id"]
            self._save(self._sized(err_file))
        else:
            self.files.pop(err_file["id"], None)
        if batch["status"] == "cancelling":
            batch.update(status="cancelled", cancelled_at=int(time.time()))
        elif batch["status"] != "failed":
            batch.update(status="completed", completed_at=int(time.time()))
        self._save(batch)

    def _count(self, batch: dict[str, Any], st: Any) -> None:
        failed = st.failed + st.malformed
        batch["request_counts"] = {"total": batch["request_counts"]["total"], "completed": st.done,
                                   "failed": failed}

    async def list_batches(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        self._load()
        data = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        await send_json(send, 200, orjson.dumps({
            "object": "list", "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}), rid)

    async def batch(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        self.app.check_auth(scope)
        self._load()
        bid, _, tail = scope["path"].removeprefix("/v1/batches/").partition("/")
        batch = self.batches.get(bid)
        if batch is None or (scope["method"], tail) not in (("GET", ""), ("POST", "cancel")):
            raise NotFound(f"no batch {bid!r}", param="batch_id")
        if tail == "cancel" and batch["status"] in ("validating", "in_progress", "finalizing"):
            batch.update(status="cancelling", cancelling_at=int(time.time()))
            engine = self.engines.get(bid)
            if engine is not None:
                engine.cancel()
            self._save(batch)
        await send_json(send, 200, orjson.dumps(batch), rid)


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


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
