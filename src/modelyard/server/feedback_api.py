"""`POST /v1/feedback {request_id, score, comment?, prompt?}`: a quality signal on a logged request.

The score (0 = bad … 1 = good) is stored against the request in the request log's database
(store/feedback.py). With the prompt included, knn routers of this gateway learn from it at once,
and `modelyard train --from-log` can retrain on it later.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import BadRequest, ModelyardError, NotFound
from ..store.feedback import FeedbackStore, StoreUnavailable

if TYPE_CHECKING:
    from .app import App

MAX_TEXT = 100_000
FLUSH_WAIT_S = 1.0  # how long feedback waits for the request log to write a buffered request


class LogUnavailable(ModelyardError):
    """The request log's database cannot be read or written right now (locked, unreachable)."""

    status = 503
    type = "store_unavailable"
    anthropic_type = "overloaded_error"

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"2")]


def _unavailable(detail: str) -> LogUnavailable:
    return LogUnavailable(f"the request log database is unavailable ({detail}); feedback was not stored, "
                          "retry in a few seconds")
_FIELDS = frozenset(("request_id", "score", "comment", "prompt"))
_stores: weakref.WeakKeyDictionary[Any, FeedbackStore] = weakref.WeakKeyDictionary()


def parse_feedback(body: Any) -> tuple[str, float, str | None, str | None]:
    """Validate a feedback body; BadRequest names the field."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object: {request_id, score, comment?, prompt?}")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadRequest(f"unknown field '{unknown[0]}'; send request_id, score, comment, prompt", param=unknown[0])
    rid = body.get("request_id")
    if not isinstance(rid, str) or not rid or len(rid) > 200:
        raise BadRequest("'request_id' must be the x-request-id of a response (a non-empty string)",
                         param="request_id")
    score = body.get("score")
    if isinstance(score, bool):
        score = float(score)
    if not isinstance(score, int | float) or not math.isfinite(score) or not 0 <= score <= 1:
        raise BadRequest("'score' must be a number from 0 (bad) to 1 (good)", param="score")
    texts = []
    for name in ("comment", "prompt"):
        v = body.get(name)
        if v is not None and (not isinstance(v, str) or len(v) > MAX_TEXT):
            raise BadRequest(f"'{name}' must be a string of at most {MAX_TEXT} characters", param=name)
        texts.append(v or None)
    return rid, float(score), texts[0], texts[1]


def handler(app: App) -> Callable[[dict[str, Any], Any, Any, str], Awaitable[None]]:
    """The route handler, bound to an App (uses its auth, body reading and JSON replies)."""
    from .http import send_json as _send_json

    async def feedback(scope: dict[str, Any], receive: Any, send: Any, rid: str) -> None:
        caller = app._check_auth(scope)
        request_id, score, comment, prompt = parse_feedback(await app._read_json(scope, receive))
        gw = app.gateway
        log = gw.request_log
        if log is None:
            raise BadRequest("feedback is stored with the request log, which is disabled "
                             "(server.request_log.enabled: false)")
        store = _stores.get(gw)
        if store is None:
            store = _stores[gw] = FeedbackStore(log.path)
        try:
            logged = await store.request(request_id)
            if logged is None:  # maybe still buffered: flush waits for any batch being written too
                if not log.available:
                    raise _unavailable(log.last_error or "writes are failing")
                try:
                    written = await asyncio.wait_for(asyncio.shield(log.flush()), FLUSH_WAIT_S)
                except TimeoutError:
                    raise _unavailable("a write is waiting on a lock") from None
                if not written:
                    raise _unavailable(log.last_error or "writes are failing")
                logged = await store.request(request_id)
            if logged is not None and caller.key_id is not None and logged.key_id != caller.key_id:
                logged = None  # another key's request: answered as unknown, so ids cannot be probed
            if logged is None:
                raise NotFound(f"no logged request with id '{request_id}'" + (
                    " made with this key" if caller.key_id is not None else ""), param="request_id")
            fid = await store.add(request_id, score, comment=comment, prompt=prompt)
        except StoreUnavailable as e:
            raise _unavailable(str(e)) from None
        learned = 0
        if prompt and logged.deployment and gw.online is not None:
            # the routers that learn online read the new row now (other workers: at their next poll)
            learned = (await gw.online.catch_up()).get(fid, 0)
        body = {"object": "feedback", "id": fid, "request_id": request_id, "score": score,
                "deployment": logged.deployment, "learned_by": learned}
        await _send_json(send, 200, orjson.dumps(body), rid)

    return feedback
