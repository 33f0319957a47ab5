"""The upstream client's I/O threads: named, shared by every client, and batch-scheduled on Linux
while the gateway is busy (or always, or never, by `server.io_threads`) — checked on the real
threads, through /proc."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from modelyard.gateway import Gateway
from modelyard.loader import parse_config
from modelyard.providers import io_threads
from modelyard.providers.http import HttpClients

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread scheduling is Linux's")


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    """Each test starts from, and leaves, the default: auto and idle (the runtime is per process)."""
    io_threads.configure("auto")
    io_threads.busy(False)
    yield
    io_threads.configure("auto")
    io_threads.busy(False)


def test_every_client_runs_on_the_one_runtime() -> None:
    a, b = HttpClients(), HttpClients()
    a.get(10.0), b.get(3.0)
    threads = io_threads.threads()
    assert threads, "no thread named modelyard-io"
    a.get(5.0)  # another client: no more threads, and wreq's own default runtime never started
    assert io_threads.threads() == threads
    assert not [t for t in os.listdir("/proc/self/task") if _comm(t) == "wreq-python"]


def test_auto_is_batch_while_busy_and_normal_when_idle() -> None:
    io_threads.runtime()
    assert set(io_threads.threads().values()) == {os.SCHED_OTHER}
    io_threads.busy(True)
    assert set(io_threads.threads().values()) == {os.SCHED_BATCH}
    io_threads.busy(False)
    assert set(io_threads.threads().values()) == {os.SCHED_OTHER}


def test_batch_and_normal_hold_whatever_the_load() -> None:
    io_threads.runtime()
    io_threads.configure("batch")
    io_threads.busy(False)
    assert set(io_threads.threads().values()) == {os.SCHED_BATCH}
    io_threads.configure("normal")
    io_threads.busy(True)
    assert set(io_threads.threads().values()) == {os.SCHED_OTHER}
    with pytest.raises(ValueError, match="auto, batch, normal"):
        io_threads.configure("fast")


def test_follow_is_batch_from_busy_at_until_idle_at() -> None:
    io_threads.runtime()
    for n in range(1, io_threads.BUSY_AT):
        io_threads.follow(n)
    assert set(io_threads.threads().values()) == {os.SCHED_OTHER}
    io_threads.follow(io_threads.BUSY_AT)
    assert set(io_threads.threads().values()) == {os.SCHED_BATCH}
    for n in range(io_threads.BUSY_AT - 1, io_threads.IDLE_AT, -1):  # going down: still busy
        io_threads.follow(n)
    assert set(io_threads.threads().values()) == {os.SCHED_BATCH}
    io_threads.follow(io_threads.IDLE_AT)
    assert set(io_threads.threads().values()) == {os.SCHED_OTHER}


async def test_a_library_gateway_leaves_the_policy_alone(tmp_path) -> None:
    """Only `modelyard serve` sets the policy (tests/cli/test_serve_cli.py): a Gateway does not."""
    io_threads.runtime()
    io_threads.busy(True)
    cfg = parse_config({"server": {"io_threads": "normal", "request_log": {"enabled": False}},
                        "deployments": {"a": {"provider": "sim", "model": "sim/a"}}}, "c.yaml")
    gw = Gateway(cfg, source="c.yaml")
    await gw.start()
    try:
        assert set(io_threads.threads().values()) == {os.SCHED_BATCH}
    finally:
        await gw.close()


def test_the_serve_command_applies_server_io_threads() -> None:
    from modelyard.cli.serve import serving_app

    io_threads.runtime()
    io_threads.busy(True)
    cfg = parse_config({"server": {"io_threads": "normal", "request_log": {"enabled": False}},
                        "deployments": {"a": {"provider": "sim", "model": "sim/a"}}}, "c.yaml")
    app = serving_app(Gateway(cfg, source="c.yaml"))
    assert set(io_threads.threads().values()) == {os.SCHED_OTHER}
    assert app.on_inflight is io_threads.follow


@pytest.mark.parametrize(("setup", "policy"), [
    ("t.configure('batch')", "SCHED_BATCH"),
    ("t.busy(True)", "SCHED_BATCH"),  # auto, and the server already busy when the first call starts it
    ("t.busy(False)", "SCHED_OTHER"),
    ("t.configure('normal'); t.busy(True)", "SCHED_OTHER"),
])
def test_the_runtime_starts_with_the_policy_wanted_then(setup: str, policy: str) -> None:
    """Every thread has it from its start (inherited at creation), and the starting thread keeps its
    own (an own process: the runtime is one per process)."""
    code = (f"import os, time; from modelyard.providers import io_threads as t; {setup}; t.runtime(); "
            "time.sleep(0.2); print(sorted(set(t.threads().values())), os.sched_getscheduler(0), "
            "sorted(t.threads()) == sorted(t._tids))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == [f"[{getattr(os, policy)}]", str(os.SCHED_OTHER), "True"], out.stderr


def _comm(tid: str) -> str:
    with open(f"/proc/self/task/{tid}/comm") as f:
        return f.read().strip()
