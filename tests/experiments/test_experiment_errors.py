"""A request an experiment assigned that ends in an error — refused by admission (budget 429, rate
limit 429), or failed upstream (502) — still carries `x-modelyard-experiment`, and its log row the
`experiment` column, on the OpenAI and the Anthropic routes (real server, official SDKs)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from expkit import config_data

from conftest import ServerThread, make_server

MASTER = "exp-master-key"
BUDGET_KEY = "sk-my-budget-key-aaaaaaaaaaaaaaaaaaaaaaaaa"
RPM_KEY = "sk-my-rpm-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
TAG = "broken=treatment"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("EXP_ERR_BUDGET_KEY", BUDGET_KEY)
    mp.setenv("EXP_ERR_RPM_KEY", RPM_KEY)
    tmp = tmp_path_factory.mktemp("experr")
    data = config_data({"unit": "request", "split": {"treatment": 100},
                        "variants": {"control": {}, "treatment": {"deployments": ["sim/failing"]}}})
    data["experiments"] = {"broken": data["experiments"].pop("cheaper")}
    data["deployments"]["sim/failing"] = {"provider": "sim", "model": "gpt-4o-mini", "sim": {"failure_rate": 1.0}}
    data["keys"] = {"budget": {"key": "env:EXP_ERR_BUDGET_KEY", "budget_usd": 1e-9},
                    "rpm": {"key": "env:EXP_ERR_RPM_KEY", "rpm": 1}}
    try:
        with make_server(tmp, data, master_key=MASTER) as s:
            yield s, tmp / "requests.db"
    finally:
        mp.undo()


def logged(db: Path, rid: str) -> tuple[Any, ...]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as c:
            row = c.execute("SELECT status, experiment FROM requests WHERE id = ?", (rid,)).fetchone()
        if row is not None:
            return tuple(row)
        time.sleep(0.05)
    raise AssertionError(f"no row for {rid}")


def _openai(s: ServerThread, key: str, rid: str) -> openai.APIStatusError:
    client = openai.OpenAI(base_url=s.url + "/v1", api_key=key, max_retries=0,
                           default_headers={"x-request-id": rid})
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "hi"}])
    return e.value


def _anthropic(s: ServerThread, key: str, rid: str, stream: bool = False) -> anthropic.APIStatusError:
    client = anthropic.Anthropic(base_url=s.url, api_key=key, max_retries=0, default_headers={"x-request-id": rid})
    with pytest.raises(anthropic.APIStatusError) as e:
        if stream:
            with client.messages.stream(model="smart", max_tokens=20,
                                        messages=[{"role": "user", "content": "hi"}]) as st:
                st.until_done()
        else:
            client.messages.create(model="smart", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    return e.value


def test_upstream_failure(served: tuple[ServerThread, Path]) -> None:
    s, db = served
    e = _openai(s, MASTER, "xe-502-o")
    assert e.status_code >= 500 and e.response.headers["x-modelyard-experiment"] == TAG
    a = _anthropic(s, MASTER, "xe-502-a")
    assert a.status_code >= 500 and a.response.headers["x-modelyard-experiment"] == TAG
    s_ = _anthropic(s, MASTER, "xe-502-s", stream=True)
    assert s_.response.headers["x-modelyard-experiment"] == TAG
    for rid in ("xe-502-o", "xe-502-a", "xe-502-s"):
        status, exp = logged(db, rid)
        assert status >= 500 and exp == TAG


def test_admission_refusals(served: tuple[ServerThread, Path]) -> None:
    s, db = served
    e = _openai(s, BUDGET_KEY, "xe-budget-o")
    assert e.status_code == 429 and "budget" in str(e.body) and e.response.headers["x-modelyard-experiment"] == TAG
    a = _anthropic(s, BUDGET_KEY, "xe-budget-a")
    assert a.status_code == 429 and a.response.headers["x-modelyard-experiment"] == TAG
    _openai(s, RPM_KEY, "xe-rpm-1")  # (its one request a minute: failed upstream, still counted)
    r = _anthropic(s, RPM_KEY, "xe-rpm-2")
    assert r.status_code == 429 and r.response.headers["x-modelyard-experiment"] == TAG
    for rid in ("xe-budget-o", "xe-budget-a", "xe-rpm-2"):
        assert logged(db, rid) == (429, TAG)
