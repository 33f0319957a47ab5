"""Judge scoring: a configured model grades a sample of each variant's answers, off the request path.

After a request of an experiment is answered, `Scorer.offer` decides from the request id's hash
whether it is in the `sample_pct` sample (the same share of every variant, reproducibly), and if so
starts a background task: the judge model, called through the gateway like any request (its own log
row, id `<request id>.judge`, its cost visible), rates the answer from 1 to 10; the score, scaled to
0..1, goes into the `experiment_scores` table of the request log's database (data.py). At most
`MAX_PENDING` gradings run at once; past that, answers are skipped (counted in `skipped`), so a
traffic burst never queues work behind the gateway. A judge that fails or answers unreadably is
counted in `failed` and logged at debug level; the request it grades is never affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from ..errors import ModelyardError
from ..modes.parse import ParseError, extract_json
from ..store.backend import db_errors
from ..store.location import is_postgres
from ..types import ChatRequest, Message
from .buckets import BUCKETS, bucket
from .data import SCORES

if TYPE_CHECKING:
    from ..config import JudgeScoringConfig
    from ..gateway import Gateway

log = logging.getLogger("modelyard.experiments")

MAX_PENDING = 8
MAX_TEXT = 20_000  # characters of the request and of the answer shown to the judge

SYSTEM = ("You are a strict, impartial reviewer. You rate how well an assistant's answer serves the request: "
          "correct first, then complete, clear and faithful to the request's instructions. Length is not merit.")


def grading_messages(req: ChatRequest, answer: str, criteria: str | None) -> list[Message]:
    convo = "\n\n".join(f"{m.role}: {m.text()}" for m in req.messages if m.role != "tool")
    extra = f"\n\nWhat matters most here: {criteria}" if criteria else ""
    user = (f"## Request\n{convo[-MAX_TEXT:]}\n\n## Answer\n{answer[:MAX_TEXT]}{extra}\n\n"
            "Rate the answer from 1 (wrong or useless) to 10 (excellent). Reply with JSON only, no other text: "
            '{"score": <1 to 10>, "reason": "<one sentence>"}')
    return [Message("system", SYSTEM), Message("user", user)]


_NUMBER = re.compile(r"(?i)\bscore\b\D{0,12}(\d+(?:\.\d+)?)|^\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*$")


def parse_score(text: str) -> tuple[float, str] | None:
    """(score scaled to 0..1, reason) from the judge's reply, or None when it names no score 1..10."""
    raw: Any = None
    reason = ""
    try:
        doc = extract_json(text)
        if isinstance(doc, dict):
            raw, reason = doc.get("score", doc.get("rating")), str(doc.get("reason", ""))
    except ParseError:
        pass
    if raw is None:
        m = _NUMBER.search(text)
        raw = (m.group(1) or m.group(2)) if m else None
    try:
        value = float(raw) if raw is not None and not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        value = None
    if value is None or not 1 <= value <= 10:
        return None
    return (value - 1) / 9, reason[:500]


class Scorer:
    """Grades a sample of one experiment's answers with its judge model."""

    def __init__(self, experiment: str, cfg: JudgeScoringConfig) -> None:
        self.experiment, self.model, self.criteria = experiment, cfg.model, cfg.criteria
        self.cutoff = round(cfg.sample_pct * BUCKETS / 100)
        self.pending: set[asyncio.Task[None]] = set()
        self.scored = self.failed = self.skipped = 0

    def sampled(self, request_id: str) -> bool:
        return bucket(f"{self.experiment}/judge", request_id) < self.cutoff

    def offer(self, gw: Gateway, request_id: str, req: ChatRequest, answer: str) -> None:
        """Called when a request of the experiment was answered: grade it if it is in the sample."""
        tag = req.experiment
        if tag is None or ";" in tag or not answer or not self.sampled(request_id):
            return
        if len(self.pending) >= MAX_PENDING or gw.request_log is None:
            self.skipped += 1
            return
        task = asyncio.get_running_loop().create_task(
            self._grade(gw, request_id, req, answer, tag.partition("=")[2]))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _grade(self, gw: Gateway, request_id: str, req: ChatRequest, answer: str, variant: str) -> None:
        judge_req = ChatRequest(model=self.model, messages=grading_messages(req, answer, self.criteria),
                                temperature=0.0)  # the operator's call: no key's budget pays for it
        try:
            resp = await gw.chat(judge_req, request_id=f"{request_id}.judge")
        except ModelyardError as e:
            self.failed += 1
            log.debug("judge %s failed on %s: %s", self.model, request_id, e.message)
            return
        parsed = parse_score(resp.text)
        if parsed is None:
            self.failed += 1
            log.debug("judge %s gave no readable score for %s", self.model, request_id)
            return
        assert gw.request_log is not None
        try:
            await asyncio.to_thread(store_score, gw.request_log.path, request_id, self.experiment, variant,
                                    parsed[0], self.model, parsed[1])
        except db_errors(gw.request_log.path) as e:
            self.failed += 1
            log.warning("judge score for %s not stored: %s", request_id, e)
            return
        self.scored += 1

    async def close(self) -> None:
        """Stop the gradings still running (gateway shutdown)."""
        for task in list(self.pending):
            task.cancel()
        for task in list(self.pending):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def store_score(path: str, request_id: str, experiment: str, variant: str, score: float, judge: str,
                reason: str) -> None:
    if is_postgres(path):
        from ..store.postgres.records import add_score

        return add_score(path, request_id, experiment, variant, score, judge, reason)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    try:
        conn.executescript(SCORES)
        conn.execute("INSERT INTO experiment_scores (request_id, experiment, variant, ts, score, judge, reason) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", (request_id, experiment, variant, time.time(), score, judge,
                                                      reason))
    finally:
        conn.close()
