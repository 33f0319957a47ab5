"""Helpers for the fault-injection tests: gateway configs pointing at the fault upstream, and
HTTP calls through the real gateway server that return what a client would see."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fault_upstream import FaultUpstream

# Fast retries and a breaker that stays out of the way unless a test is about it.
TEST_RESILIENCE: dict[str, Any] = {
    "timeout_s": 5.0,
    "retry": {"backoff_base_s": 0.01, "backoff_max_s": 0.05},
    "breaker": {"consecutive_failures": 1000, "min_requests": 1000, "cooldown_s": 60},
}


def config(up: FaultUpstream, deployments: dict[str, Any], groups: dict[str, Any],
           resilience: dict[str, Any] | None = None, catalog: dict[str, Any] | None = None) -> dict[str, Any]:
    """`deployments`: name -> "openai" | "anthropic" | {"fmt": ..., other DeploymentConfig fields}."""
    deps: dict[str, Any] = {}
    for name, spec in deployments.items():
        spec = {"fmt": spec} if isinstance(spec, str) else dict(spec)
        fmt = spec.pop("fmt", "openai")
        deps[name] = {"provider": fmt, "model": f"model-{name}", "api_base": up.base(name, fmt),
                      "api_key": "test-upstream-key", **spec}
    res = {**TEST_RESILIENCE}
    for k, v in (resilience or {}).items():
        res[k] = {**res[k], **v} if isinstance(v, dict) and isinstance(res.get(k), dict) else v
    groups = {g: {"strategy": "first-healthy", **spec} for g, spec in groups.items()}
    return {"deployments": deps, "model_groups": groups, "resilience": res, "catalog": catalog or {}}


def gateway_of(server: Any) -> Any:
    """The Gateway object behind a conftest ServerThread (read-only use from tests)."""
    return server.server.config.app.gateway


@dataclass
class Result:
    status: int
    headers: httpx.Headers
    body: Any  # parsed JSON (non-streamed), or the list of SSE events (streamed)
    elapsed: float
    events: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def deployment(self) -> str | None:
        return self.headers.get("x-modelyard-deployment")

    @property
    def attempts(self) -> int:
        return int(self.headers.get("x-modelyard-attempts", "0"))

    @property
    def fallbacks(self) -> list[str]:
        v = self.headers.get("x-modelyard-fallbacks")
        return v.split(",") if v else []

    @property
    def text(self) -> str:
        """The answer's text, whatever the API and whether streamed."""
        if not self.events:
            b = self.body
            if "choices" in b:
                return b["choices"][0]["message"]["content"]
            return "".join(c.get("text", "") for c in b.get("content", []))
        out = []
        for _, d in self.events:
            if isinstance(d, dict):
                if d.get("choices"):
                    out.append(d["choices"][0].get("delta", {}).get("content") or "")
                elif d.get("type") == "content_block_delta":
                    out.append(d["delta"].get("text", ""))
        return "".join(out)

    @property
    def error_event(self) -> dict[str, Any] | None:
        for name, d in self.events:
            if name == "error" or (isinstance(d, dict) and "error" in d):
                return d
        return None


def chat(url: str, model: str = "g", *, stream: bool = False, api: str = "openai", text: str = "hello",
         metadata: dict[str, Any] | None = None, timeout: float = 30.0) -> Result:
    """One request through the gateway's OpenAI (`/v1/chat/completions`) or Anthropic (`/v1/messages`) API."""
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    if api == "anthropic":
        body["max_tokens"] = 50
    if metadata:
        body["metadata" if api == "openai" else "modelyard"] = metadata
    path = "/v1/chat/completions" if api == "openai" else "/v1/messages"
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=timeout) as c:
        if not stream:
            r = c.post(path, json=body)
            return Result(r.status_code, r.headers, r.json(), time.perf_counter() - t0)
        with c.stream("POST", path, json=body) as r:
            raw = r.read()
            elapsed = time.perf_counter() - t0
    if r.status_code != 200:
        return Result(r.status_code, r.headers, orjson.loads(raw), elapsed)
    return Result(r.status_code, r.headers, raw, elapsed, events=parse_sse(raw))


def parse_sse(raw: bytes) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    for block in raw.split(b"\n\n"):
        name, data = "", b""
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if data:
            events.append((name, "[DONE]" if data == b"[DONE]" else orjson.loads(data)))
    return events


def wait_for(predicate: Any, timeout: float = 3.0) -> bool:
    """Poll a condition that another thread makes true (the upstream noticing a cancel, a breaker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


# --- load ---------------------------------------------------------------------------------------

@dataclass
class LoadReport:
    n: int
    wall_s: float
    statuses: dict[int, int]
    attempts: dict[int, int]  # attempts per request -> requests
    served_by: dict[str, int]
    latencies: list[float]  # seconds, sorted

    @property
    def success_rate(self) -> float:
        return self.statuses.get(200, 0) / self.n

    def pct(self, q: float) -> float:
        return self.latencies[min(len(self.latencies) - 1, int(q * len(self.latencies)))]

    @property
    def total_attempts(self) -> int:
        return sum(k * v for k, v in self.attempts.items())


def run_load(url: str, n: int, concurrency: int, *, stream_every: int = 4, model: str = "g",
             timeout: float = 30.0) -> LoadReport:
    """`n` requests, `concurrency` at a time, every `stream_every`-th one streamed; the stream is read
    to its end (a stream that fails after its first byte counts as a failure)."""
    import asyncio
    import collections

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, int, float, str]:
        body = {"model": model, "messages": [{"role": "user", "content": f"request {i}"}],
                "stream": stream_every > 0 and i % stream_every == 0}
        t0 = time.perf_counter()
        if not body["stream"]:
            r = await client.post("/v1/chat/completions", json=body)
            status = r.status_code
        else:
            async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                raw = await r.aread()
            status = r.status_code
            if status == 200 and not raw.rstrip().endswith(b"data: [DONE]"):
                status = 599  # broke after the first byte
        return (status, int(r.headers.get("x-modelyard-attempts", "0")), time.perf_counter() - t0,
                r.headers.get("x-modelyard-deployment", ""))

    async def main() -> tuple[list[tuple[int, int, float, str]], float]:
        sem = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
            async def guarded(i: int) -> tuple[int, int, float, str]:
                async with sem:
                    return await one(client, i)
            t0 = time.perf_counter()
            results = await asyncio.gather(*(guarded(i) for i in range(n)))
            return results, time.perf_counter() - t0

    results, wall = asyncio.run(main())
    return LoadReport(
        n=n, wall_s=wall,
        statuses=dict(collections.Counter(r[0] for r in results)),
        attempts=dict(collections.Counter(r[1] for r in results)),
        served_by=dict(collections.Counter(r[3] for r in results)),
        latencies=sorted(r[2] for r in results),
    )
