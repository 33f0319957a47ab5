"""The batch engine's HTTP backend: lines go to a running gateway's `/v1/chat/completions` (so a
fleet of replicas, their keys, budgets and limits apply), with the master key or a virtual key.
Cost and deployment come from the gateway's `x-modelyard-*` response headers; any other
OpenAI-compatible server works too, without them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from .engine import Outcome


def base_url(url: str) -> str:
    """`http://host:port`, `…/v1` or `…/v1/` → the server's root."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


class Unreachable(Exception):
    """Nothing answers at the batch's --url."""


class HttpBackend:
    def __init__(self, url: str, *, api_key: str | None = None, concurrency: int = 64,
                 timeout_s: float = 600.0) -> None:
        self.url = base_url(url) + "/v1/chat/completions"
        self.headers = {"content-type": "application/json"}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))

    async def start(self) -> None:
        """Fail fast when nothing answers at the URL (rather than retrying every line)."""
        try:
            await self._client.get(self.url.removesuffix("/v1/chat/completions") + "/health", timeout=10.0)
        except httpx.TransportError as e:
            raise Unreachable(f"cannot reach a gateway at {self.url}: {type(e).__name__}: {e}") from None

    async def close(self) -> None:
        await self._client.aclose()

    async def call(self, body: dict[str, Any]) -> Outcome:
        t0 = time.perf_counter()
        try:
            r = await self._client.post(self.url, content=orjson.dumps(body), headers=self.headers)
        except httpx.TransportError as e:
            return Outcome(0, b"", error_code="connection_error",
                           error_message=f"could not reach {self.url}: {type(e).__name__}: {e}")
        latency = (time.perf_counter() - t0) * 1000
        h = r.headers
        rid = h.get("x-request-id", "")
        try:
            parsed = orjson.loads(r.content)
        except orjson.JSONDecodeError:
            return Outcome(r.status_code if r.status_code != 200 else 502, b"", rid, latency_ms=latency,
                           error_code="bad_response",
                           error_message=f"the server answered {r.status_code} with a body that is not JSON")
        if r.status_code == 200:
            return Outcome(200, r.content, rid, deployment=h.get("x-modelyard-deployment"),
                           cost_usd=_float(h.get("x-modelyard-cost-usd")) or 0.0, latency_ms=latency)
        err = parsed.get("error") if isinstance(parsed, dict) else None
        err = err if isinstance(err, dict) else {}
        return Outcome(r.status_code, r.content, rid, deployment=h.get("x-modelyard-deployment"), latency_ms=latency,
                       retry_after=_float(h.get("retry-after")), error_code=str(err.get("type") or err.get("code")
                                                                                or "http_" + str(r.status_code)),
                       error_message=str(err.get("message") or f"status {r.status_code}"))


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None
