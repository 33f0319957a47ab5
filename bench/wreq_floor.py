"""The floor of modelyard's own stack: the harness's floor proxy (uvicorn + httptools + uvloop,
bytes forwarded untouched, no parsing, routing or logging) with modelyard's upstream client —
`providers/http.py`: the in-loop client for the harness's http:// upstream, or wreq with
WREQ_FLOOR_PLAIN=wreq — instead of aiohttp. The harness's floor measures what a Python
gateway on the reference stack can reach; this one measures what the pipeline on top of our stack
costs (modelyard minus this), which is the part our code controls.

  FLOOR_SCRIPT=bench/wreq_floor.py FLOOR_PY=.venv/bin/python bash bench/cpu_per_request.sh stream

With WREQ_FLOOR_USAGE=1 it asks the upstream for a stream's usage (`stream_options.include_usage`),
as the gateway must to account for a stream, and forwards the extra event: the least a stream can
cost on this stack with accounting possible.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn

from modelyard.catalog import unknown_card
from modelyard.deployment import Deployment
from modelyard.providers import io_threads
from modelyard.providers.http import HttpClients, configure_plain_http, make_endpoint, open_stream, post

UPSTREAM = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:18001/v1").rstrip("/")
SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
JSON = [(b"content-type", b"application/json")]


UP = Deployment(name="upstream", provider="openai", model="m", card=unknown_card("m", "openai"))
USAGE = os.environ.get("WREQ_FLOOR_USAGE") == "1"
CLIENTS = HttpClients()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                io_threads.configure("batch")  # our stack at its best under load (no server to say it is busy)
                configure_plain_http(os.environ.get("WREQ_FLOOR_PLAIN", "loop"))
                UP.endpoint = make_endpoint(UP, UPSTREAM + "/chat/completions", {"content-type": "application/json"})
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await CLIENTS.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body, more = b"", True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    ep = UP.endpoint
    assert ep is not None
    url = ep.url
    if b'"stream":true' in body.replace(b" ", b""):
        if USAGE and b'"stream_options"' not in body:
            body = body[:-1] + b',"stream_options":{"include_usage":true}}'
        s = await open_stream(CLIENTS, UP, ep, url, body)
        try:
            await send({"type": "http.response.start", "status": s.status, "headers": SSE})
            while chunk := await s.read():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await s.close()
    else:
        status, _, data = await post(CLIENTS, UP, ep, url, body)
        await send({"type": "http.response.start", "status": status, "headers": JSON})
        await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=14003)
    a = p.parse_args()
    uvicorn.run(app, host=a.host, port=a.port, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_level="warning")
