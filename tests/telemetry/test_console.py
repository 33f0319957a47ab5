"""The console handler of `modelyard serve` on a real pipe whose reader stalls: lines are dropped and
counted, the caller never waits, and the count reaches /metrics and, once the pipe is read again, the
console itself."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator

import httpx
import pytest

from conftest import make_server
from modelyard.defaults import default_config_data
from modelyard.telemetry import console
from modelyard.telemetry.console import ConsoleHandler, Drops

LINE = "x" * 200


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def logger_to(handler: logging.Handler, name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def log_in_thread(log: logging.Logger, n: int) -> None:
    """Log `n` lines from another thread; fails if the calls do not all return (a blocked caller)."""
    t = threading.Thread(target=lambda: [log.info("%d %s", i, LINE) for i in range(n)], daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "a log call blocked on the stalled console"


def test_a_stalled_console_drops_and_counts_lines_and_says_so_once_read(pipe: tuple[int, int]) -> None:
    r, w = pipe
    drops = Drops()
    hooked: list[int] = []
    drops.on_drop(lambda: hooked.append(1))
    handler = ConsoleHandler(w, capacity=20, drops=drops, note_every_s=0)
    log = logger_to(handler, "test.console.stalled")
    log_in_thread(log, 2000)  # ~400 KB: the 64 KiB pipe fills, then the 20-line queue
    assert drops.count > 1000 and len(hooked) == drops.count
    seen = drops.count
    out = b""
    # reading unblocks the writer: every line that was not dropped, and the notes of the drops
    while len(re.findall(rb"^\d+ x+$", out, re.M)) + seen < 2000 or f"({seen} dropped since".encode() not in out:
        out += os.read(r, 1 << 16)
    notes = re.findall(rb"dropped (\d+) console log line\(s\): the console \(stderr\) was not being read", out)
    assert sum(int(n) for n in notes) == seen  # each note says what was dropped since the one before
    log.info("after")  # the console keeps working
    while b"after" not in out:
        out += os.read(r, 1 << 16)
    assert len(re.findall(rb"dropped \d+ console", out)) == len(notes)  # no note without new drops
    handler.close()


def test_dropped_lines_reach_the_metrics(tmp_path_factory: pytest.TempPathFactory, pipe: tuple[int, int]) -> None:
    r, w = pipe
    data = default_config_data(sim_only=True)
    with make_server(tmp_path_factory.mktemp("console"), data) as srv:
        def dropped_total() -> float:
            text = httpx.get(srv.url + "/metrics", timeout=10).text
            m = re.search(r"^modelyard_log_lines_dropped_total (\S+)$", text, re.M)
            assert m, text[:2000]
            return float(m.group(1))

        before, count_before = dropped_total(), console.dropped()
        handler = ConsoleHandler(w, capacity=5)  # the process's drop count, as `modelyard serve` uses
        log_in_thread(logger_to(handler, "test.console.metrics"), 1000)
        added = console.dropped() - count_before
        assert added > 0
        assert dropped_total() - before == added
        os.close(r)  # the reader goes away: the blocked writer gets EPIPE and stops
        handler.close()
