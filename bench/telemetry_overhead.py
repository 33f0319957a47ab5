"""What telemetry costs a request, in-process (uvloop), A/B alternated, medians of the reps:

- the metrics observer on one finished request's row (label children resolved, counters and
  histograms updated), and the request-line observer (a queue put; the writer thread's formatting
  is timed separately, as CPU it takes from the same core);
- a whole non-streamed `Gateway.chat` on a zero-latency sim deployment with metrics off (A) and on
  (B), so the observer's share of a request's cost is seen;
- the same with tracing configured (spans to an in-memory exporter) — the price of turning it on.

    MODELYARD_SIM_ZERO_LATENCY=1 .venv/bin/python bench/telemetry_overhead.py
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from typing import Any

import uvloop

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.store.rows import request_row
from modelyard.telemetry import logs, metrics, tracing
from modelyard.types import ChatRequest, Message, RouteDecision, Usage

N = 20_000
REPS = 5


def config() -> dict[str, Any]:
    return {"deployments": {"d": {"provider": "sim", "model": "sim/fast", "sim": {"zero_latency": True}}},
            "model_groups": {"g": {"deployments": ["d"]}}, "server": {"request_log": {"enabled": False}}}


def row() -> Any:
    d = RouteDecision(model="g", deployment="d", strategy="first-healthy", attempts=1)
    d.upstream_s = 0.0008
    return request_row("req_x", "g", 200, deployment="d", provider="sim", usage=Usage(120, 40),
                       cost_usd=0.00012, latency_ms=1.0, decision=d)


def per_call_us(fn: Any, arg: Any, n: int = 200_000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter() - t0) / n * 1e6


async def chat_us(gw: Gateway, n: int) -> float:
    req = ChatRequest(model="g", messages=[Message("user", "hello there, how are you?")])
    t0 = time.perf_counter()
    for _ in range(n):
        await gw.chat(req)
    return (time.perf_counter() - t0) / n * 1e6


async def main() -> None:
    os.environ.setdefault("MODELYARD_SIM_ZERO_LATENCY", "1")
    gw = Gateway(parse_config(config(), "bench.yaml"), source="bench.yaml")
    await gw.start()
    m = metrics.GatewayMetrics(gw, inflight=lambda: 0)
    r = row()
    observe = [per_call_us(m.observe, r) for _ in range(REPS)]
    print(f"metrics observer: {statistics.median(observe):.2f} µs/row (median of {REPS})")
    logging.getLogger("modelyard.requests").addHandler(logging.NullHandler())
    logging.getLogger("modelyard.requests").propagate = False
    logging.getLogger("modelyard.requests").setLevel(logging.INFO)
    lines = logs.RequestLines("json")
    print(f"request-line observer (queue put): {per_call_us(lines.observe, r):.2f} µs/row")
    lines.close()
    print(f"  writer thread, json line: {per_call_us(lines._emit, r, 50_000):.2f} µs/row; "
          f"text: {per_call_us(lambda x: logs.text_line(x), r, 50_000):.2f} µs/row (format only)")

    await chat_us(gw, 2000)  # warm up
    a, b = [], []
    for _ in range(REPS):
        a.append(await chat_us(gw, N))
        gw.observers.append(m.observe)
        b.append(await chat_us(gw, N))
        gw.observers.remove(m.observe)
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"Gateway.chat, metrics off: {ma:.1f} µs/req; on: {mb:.1f} µs/req; "
          f"+{mb - ma:.2f} µs ({(mb - ma) / ma * 100:+.1f} %), medians of {REPS} alternated reps")

    try:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        print("tracing: the otel extra is not installed")
    else:
        exporter = InMemorySpanExporter()
        tracing.configure(exporter=exporter)
        t = [await chat_us(gw, N // 4) for _ in range(3)]
        tracing.shutdown()
        print(f"Gateway.chat with tracing on (3 spans each, in-memory exporter): {statistics.median(t):.1f} µs/req")
    await gw.close()


if __name__ == "__main__":
    uvloop.run(main())
