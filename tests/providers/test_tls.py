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


def _pkcs8(leaf: trustme.LeafCert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
async def mtls_upstream(ca: trustme.CA) -> AsyncIterator[str]:
    """An https upstream that answers only a client presenting a certificate `ca` signed."""

    async def chat(request: web.Request) -> web.Response:
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        await runner.cleanup()


def _client_files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    leaf = ca.issue_cert("gateway.example")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key.write_bytes(_pkcs8(leaf))
    return {"cert": str(cert), "key": str(key)}


async def test_a_client_certificate_answers_a_server_that_asks_for_one(mtls_upstream: str, ca: trustme.CA,
                                                                      tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    gw = _gateway(mtls_upstream, tls_verify=str(ca_file), tls_client_cert=_client_files(ca, tmp_path))
    assert await _ask(gw) == "over TLS"
    with pytest.raises(ConnectionFailed) as err:  # the same server, no certificate presented
        await _ask(_gateway(mtls_upstream, tls_verify=str(ca_file)))
    text = str(err.value)
    assert "deployment 'up'" in text and "if the server requires a client certificate" in text, text
    assert "tls_client_cert" in text, text


def test_client_certificate_files_are_checked_at_start(ca: trustme.CA, tmp_path: Path) -> None:
    files = _client_files(ca, tmp_path)
    with pytest.raises(ConfigError) as err:  # a file that is not there: when the config is read
        _gateway("https://127.0.0.1:1/v1", tls_client_cert={**files, "key": str(tmp_path / "nope.key")})
    assert "tls_client_cert.key" in str(err.value) and "nope.key" in str(err.value)
    with pytest.raises(ConfigError, match="tls_client_cert"):  # one of the two alone
        _gateway("https://127.0.0.1:1/v1", tls_client_cert={"cert": files["cert"]})
    sec1 = tmp_path / "sec1.key"  # trustme's own key file: SEC1 ("BEGIN EC PRIVATE KEY"), not PKCS#8
    sec1.write_bytes(ca.issue_cert("x.example").private_key_pem.bytes())
    with pytest.raises(ConfigError) as err:
        _gateway("https://127.0.0.1:1/v1", tls_client_cert={**files, "key": str(sec1)})
    text = str(err.value)
    assert "tls.yaml" in text and "deployments.up.tls_client_cert" in text and "openssl pkcs8" in text, text
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a certificate")
    with pytest.raises(ConfigError, match="not a PEM certificate chain"):
        _gateway("https://127.0.0.1:1/v1", tls_client_cert={**files, "cert": str(garbage)})
