"""The batch engine's in-process backend: each line goes through `Gateway.chat` exactly as a live
`POST /v1/chat/completions` does — the same validation (server/openai_api.py), routing, retries and
fallbacks, cost and request-log row — and comes back as the bytes the HTTP API would have sent."""

from __future__ import annotations

import time
from typing import Any

from ..batch.engine import Outcome
from ..errors import ModelyardError, RateLimited
from ..gateway import Gateway, new_request_id
from ..types import MASTER, Caller
from . import openai_api


class GatewayBackend:
    def __init__(self, gateway: Gateway, *, caller: Caller = MASTER, owns_gateway: bool = True) -> None:
        self.gateway = gateway
        self.caller = caller
        self.owns_gateway = owns_gateway  # start/close it (the CLI); the server's is already running

    async def start(self) -> None:
        if self.owns_gateway:
            await self.gateway.start()

    async def close(self) -> None:
        if self.owns_gateway:
            await self.gateway.close()

    async def call(self, body: dict[str, Any]) -> Outcome:
        rid = new_request_id()
        t0 = time.perf_counter()
        try:
            req = openai_api.parse_request(body)
            req.caller = self.caller
            resp = await self.gateway.chat(req, request_id=rid)
        except ModelyardError as e:
            return Outcome(e.status, openai_api.error_body(e), rid, deployment=e.deployment,
                           latency_ms=(time.perf_counter() - t0) * 1000,
                           retry_after=e.retry_after if isinstance(e, RateLimited) else None,
                           error_code=e.type, error_message=e.message)
        return Outcome(200, openai_api.render_response(resp), rid, deployment=resp.deployment,
                       cost_usd=resp.cost_usd, latency_ms=resp.latency_ms)
