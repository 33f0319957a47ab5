"""The master key on the real server: the scheme is case-insensitive, either header may carry the
key, and refused requests are counted and logged rate-limited, without key material."""

from __future__ import annotations

import logging

import httpx
import pytest
from kit import GuardedServer

from modelyard.defaults import default_config_data

KEY = "sk-test-master-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with GuardedServer(tmp_path_factory.mktemp("auth"), default_config_data(sim_only=True), master_key=KEY) as s:
        yield s


@pytest.mark.parametrize("headers", [
    {"authorization": f"Bearer {KEY}"},
    {"authorization": f"BEARER {KEY}"},
    {"authorization": f"bearer   {KEY}"},
    {"x-api-key": KEY},
    {"authorization": "Bearer sk-some-other-key", "x-api-key": KEY},  # a proxy's or SDK's own bearer
    {"authorization": f"Basic {KEY}", "x-api-key": KEY},
])
def test_the_key_is_accepted_in_either_header(server, headers) -> None:
    assert httpx.get(server.url + "/v1/models", headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [
    {}, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"authorization": f"Basic {KEY}"},
    {"authorization": f"Bearer {KEY}x"}, {"authorization": KEY},
])
def test_anything_else_is_401(server, headers) -> None:
    r = httpx.get(server.url + "/v1/models", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "invalid_api_key" or "API key" in r.json()["error"]["message"]


def test_failed_logins_are_counted_and_logged_once_per_interval_without_the_key(server, caplog) -> None:
    auth = server.app.auth
    auth._last_log = float("-inf")  # (a fresh interval whatever the tests before did)
    before = auth.failures
    with caplog.at_level(logging.WARNING, logger="modelyard.server.auth"):
        for i in range(5):
            headers = {"authorization": f"Bearer sk-guess-{i}-secretish"}
            assert httpx.get(server.url + "/v1/models", headers=headers).status_code == 401
    assert auth.failures == before + 5
    records = [r for r in caplog.records if r.name == "modelyard.server.auth"]
    assert len(records) == 1, [r.getMessage() for r in records]
    text = records[0].getMessage()
    assert "wrong key from 127.0.0.1" in text and "GET /v1/models" in text
    assert "sk-guess" not in text and "secretish" not in text and KEY not in text
