"""A constant-response ASGI app served on uvicorn: with our HTTP/1.1 protocol (server/h1.py, the
options `modelyard serve` uses) or, with --uvicorn, uvicorn's own httptools protocol. What the
server layer alone costs per request: `bash bench/instructions_per_request.sh --http --const`
(or `--const-uvicorn`).

    .venv/bin/python bench/const_app.py --port 14022 [--uvicorn]
"""

import argparse
from typing import Any

import uvicorn

from modelyard.config import ServerConfig
from modelyard.server.protocol import uvicorn_options

BODY = (b'{"id":"chatcmpl-1","object":"chat.completion","model":"bench-model","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}')
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=14022)
    p.add_argument("--uvicorn", action="store_true", help="uvicorn's httptools protocol instead of ours")
    a = p.parse_args()
    opts: dict[str, Any] = {**uvicorn_options(ServerConfig()), "lifespan": "off", "loop": "uvloop"}
    if a.uvicorn:
        opts["http"] = "httptools"
    uvicorn.run(app, host=a.host, port=a.port, **opts)
