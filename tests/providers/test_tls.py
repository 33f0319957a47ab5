"""https upstreams (wreq's path): a real TLS server on loopback with a certificate from a throwaway CA.

The system's roots do not know that CA, so the default refuses it with an error that says so; a
deployment's `tls_verify` names the CA file to trust instead, or turns verification off.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from modelyard.errors import ConfigError, ConnectionFailed
from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.types import ChatRequest, Message

KEY = "sk-tls-SECRET-0123456789abcdef"
ANSWER = {"id": "chatcmpl-tls", "object": "chat.completion", "created": 1, "model": "m",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "over TLS"}, "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def https_upstream(ca: trustme.CA) -> AsyncIterator[str]:
    """An OpenAI-format upstream on https://127.0.0.1:PORT/v1 whose certificate `ca` signed."""

    async def chat(request: web.Request) -> web.Response:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock, ssl_context=context).start()
    port = sock.getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def _gateway(api_base: str, **dep: Any) -> Gateway:
    up = {"provider": "openai", "model": "m", "api_base": api_base, "api_key": "env:TLS_KEY", **dep}
    config = {"deployments": {"up": up}, "model_groups": {"g": {"deployments": ["up"]}}}
    environ = {"TLS_KEY": KEY}
    return Gateway(parse_config(config, "tls.yaml", environ), source="tls.yaml", environ=environ, request_log=False)


async def _ask(gw: Gateway) -> str:
    try:
        resp = await gw.chat(ChatRequest(model="g", messages=[Message("user", "hi")]))
    finally:
        await gw.close()
    return resp.text


async def test_a_ca_file_makes_a_private_certificate_trusted(https_upstream: str, ca: trustme.CA,
                                                             tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    assert await _ask(_gateway(https_upstream, tls_verify=str(ca_file))) == "over TLS"


async def test_the_system_roots_refuse_it_and_say_why(https_upstream: str) -> None:
    with pytest.raises(ConnectionFailed) as err:
        await _ask(_gateway(https_upstream))
    text = str(err.value)
    assert "up" in text and "CERTIFICATE_VERIFY_FAILED" in text and "tls_verify" in text, text
    assert KEY not in text


async def test_verification_can_be_turned_off_with_a_warning(https_upstream: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="modelyard.providers"):
        gw = _gateway(https_upstream, tls_verify=False)
    assert "TLS certificates are not verified" in caplog.text
    assert await _ask(gw) == "over TLS"


def test_a_missing_ca_file_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _gateway("https://127.0.0.1:1/v1", tls_verify=str(tmp_path / "nope.pem"))
    text = str(err.value)
    assert "tls.yaml" in text and "tls_verify" in text and "nope.pem" in text, text
