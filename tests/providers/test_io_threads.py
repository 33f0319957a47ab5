"""The upstream client's I/O threads: named, shared by every client, and batch-scheduled on Linux
unless `server.io_threads: normal` says otherwise — checked on the real threads, through /proc."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from modelyard.config import parse_config
from modelyard.gateway import Gateway
from modelyard.providers import io_threads
from modelyard.providers.http import HttpClients

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread scheduling is Linux's")


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    yield
    io_threads.configure(True)  # the default, for the tests after these


def test_every_client_runs_on_the_one_runtime_whose_threads_are_batch_scheduled() -> None:
    a, b = HttpClients(), HttpClients()
    a.get(10.0), b.get(3.0)
    threads = io_threads.threads()
    assert threads, "no thread named modelyard-io"
    assert set(threads.values()) == {os.SCHED_BATCH}
    a.get(5.0)  # another client: no more threads, and wreq's own default runtime never started
    assert io_threads.threads() == threads
    assert not [t for t in os.listdir("/proc/self/task") if _comm(t) == "wreq-python"]
    # The thread that started the runtime keeps its own policy.
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_the_policy_follows_the_setting_on_threads_already_running() -> None:
    io_threads.runtime()
    io_threads.configure(False)
    assert set(io_threads.threads().values()) == {os.SCHED_OTHER}
    io_threads.configure(True)
    assert set(io_threads.threads().values()) == {os.SCHED_BATCH}


async def test_the_gateway_applies_server_io_threads(tmp_path) -> None:
    io_threads.runtime()
    cfg = parse_config({"server": {"io_threads": "normal", "request_log": {"enabled": False}},
                        "deployments": {"a": {"provider": "sim", "model": "sim/a"}}}, "c.yaml")
    gw = Gateway(cfg, source="c.yaml")
    await gw.start()
    try:
        assert set(io_threads.threads().values()) == {os.SCHED_OTHER}
    finally:
        await gw.close()


def _comm(tid: str) -> str:
    with open(f"/proc/self/task/{tid}/comm") as f:
        return f.read().strip()
