"""`/v1/files` + `/v1/batches` on `modelyard serve --workers 2`: every call opens a new connection
(`connection: close`), so the kernel spreads them over both workers, and each must answer for files
and batches the other one took — through the official openai SDK."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from batchkit import ENV, KEY, openai_line, serving, write_jsonl

# `fast` answers at once; `slow` takes 0.3 s a request (64 at a time: ~200 lines/s), long enough to
# act on a job while it runs. The sim's latency is on (no MODELYARD_SIM_ZERO_LATENCY) for `slow` only.
CONFIG = """
server:
  request_log: {path: log.db}
deployments:
  fast: {provider: sim, model: sim/fast, sim: {zero_latency: true}}
  slow: {provider: sim, model: sim/fast, sim: {ttft_ms: 300, jitter: 0, tokens_per_s: 1000000}}
"""
TERMINAL = ("completed", "failed", "cancelled", "expired")


@pytest.fixture(name="served", scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The URL, and the server's directory (modelyard-batches/ is there, beside log.db)."""
    env = {k: v for k, v in ENV.items() if k not in ("MODELYARD_SIM_ZERO_LATENCY", "PROMETHEUS_MULTIPROC_DIR")}
    where = tmp_path_factory.mktemp("serve")
    with serving(where, CONFIG, "--workers", "2", env=env) as url:
        yield url, where


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, default_headers={"connection": "close"})


def _call(fn: Callable[..., Any], *args: Any, **kw: Any) -> tuple[Any, str]:
    """One SDK call and the worker that answered it (the request id's per-process prefix)."""
    raw = fn(*args, **kw)
    return raw.parse(), raw.headers["x-request-id"][:16]


def _upload(client: openai.OpenAI, path: Path) -> Any:
    f, _ = _call(client.files.with_raw_response.create, file=path.open("rb"), purpose="batch")
    return f


def _both_workers(client: openai.OpenAI, fn: Callable[[], str], rounds: int = 30) -> set[str]:
    """Call `fn` (which returns the answering worker) until both workers have answered. Calls go out
    eight at a time: one after another, the kernel may hand every new connection to the same idle
    worker, while a worker busy with one leaves the next to the other."""
    seen: set[str] = set()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(rounds):
            seen.update(pool.map(lambda _: fn(), range(8)))
            if len(seen) == 2:
                return seen
    raise AssertionError(f"only {seen} answered {rounds * 8} new connections")


def _poll(client: openai.OpenAI, bid: str, until: Callable[[Any], bool], timeout: float = 120) -> Any:
    """Retrieve through new connections (any worker) until `until(batch)`; every call must succeed."""
    deadline = time.monotonic() + timeout
    while True:
        b = client.batches.retrieve(bid)
        if until(b):
            return b
        assert time.monotonic() < deadline, f"batch still {b.status}: {b}"
        time.sleep(0.1)


def _ids(client: openai.OpenAI, file_id: str) -> Counter[str]:
    return Counter(json.loads(x)["custom_id"] for x in client.files.content(file_id).text.splitlines())


def test_any_worker_answers_for_files_and_batches_it_did_not_take(tmp_path: Path, served: tuple[str, Path]) -> None:
    client = _client(served[0])
    # both workers read the directory before the upload (an index loaded once would miss it)
    _both_workers(client, lambda: _call(client.files.with_raw_response.list)[1])
    src = write_jsonl(tmp_path / "in.jsonl", [openai_line(f"q{i}", i, "fast") for i in range(300)])
    f = _upload(client, src)

    def get_file() -> str:
        got, who = _call(client.files.with_raw_response.retrieve, f.id)
        assert got.id == f.id and got.bytes == src.stat().st_size
        return who

    _both_workers(client, get_file)
    _both_workers(client, lambda: _call(client.files.with_raw_response.content, f.id)[1])
    assert client.files.content(f.id).content == src.read_bytes()
    _both_workers(client, lambda: _call(client.files.with_raw_response.list)[1])
    assert f.id in [x.id for x in client.files.list().data]

    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    b = _poll(client, b.id, lambda b: b.status in TERMINAL)
    assert b.status == "completed", b
    assert b.request_counts and (b.request_counts.total, b.request_counts.completed) == (300, 300)
    assert b.output_file_id and b.error_file_id is None

    def get_output() -> str:
        text, who = _call(client.files.with_raw_response.content, b.output_file_id)
        ids = Counter(json.loads(x)["custom_id"] for x in text.text.splitlines())
        assert ids == Counter(f"q{i}" for i in range(300)), "every custom_id exactly once"
        return who

    _both_workers(client, get_output)
    _both_workers(client, lambda: _call(client.batches.with_raw_response.retrieve, b.id)[1])
    listed = _both_workers(client, lambda: _call(client.batches.with_raw_response.list)[1])
    assert listed and b.id in [x.id for x in client.batches.list().data]
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-../../log.db")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_" + "0" * 24)


def _slow_batch(client: openai.OpenAI, tmp_path: Path, n: int = 3000) -> tuple[Any, str]:
    src = write_jsonl(tmp_path / "slow.jsonl", [openai_line(f"s{i}", i, "slow") for i in range(n)])
    f = _upload(client, src)
    return _call(client.batches.with_raw_response.create, input_file_id=f.id, endpoint="/v1/chat/completions",
                 completion_window="24h")


def _running_elsewhere(client: openai.OpenAI, bid: str, owner: str) -> Any:
    """Poll until a worker that is not the owner reports progress: in_progress, some lines done."""
    def seen(b: Any) -> bool:
        assert b.status == "in_progress", b
        return bool(b.request_counts and b.request_counts.completed > 0)

    for _ in range(200):
        b, who = _call(client.batches.with_raw_response.retrieve, bid)
        if seen(b) and who != owner:
            return b
        time.sleep(0.05)
    raise AssertionError("no other worker reported the job's progress")


def test_cancel_through_the_other_worker_reaches_the_job(tmp_path: Path, served: tuple[str, Path]) -> None:
    client = _client(served[0])
    b, owner = _slow_batch(client, tmp_path)
    _running_elsewhere(client, b.id, owner)
    for _ in range(60):  # until a worker that does not run it takes the cancel
        got, who = _call(client.batches.with_raw_response.cancel, b.id)
        if who != owner:
            break
    assert who != owner, "the kernel never gave the cancel to the other worker"
    assert got.status == "cancelling"
    b = _poll(client, b.id, lambda b: b.status in TERMINAL, timeout=30)
    assert b.status == "cancelled", b
    assert b.request_counts and 0 < b.request_counts.completed < 3000
    ids = _ids(client, b.output_file_id)
    assert len(ids) == b.request_counts.completed and set(ids.values()) == {1}
    time.sleep(1)
    again, _ = _call(client.batches.with_raw_response.retrieve, b.id)
    assert again.request_counts and again.request_counts.completed == b.request_counts.completed, "it stopped"


def _lock_owner(lock: Path) -> int:
    """The pid holding an flock on `lock`, from /proc/locks (… FLOCK ADVISORY WRITE <pid> <maj:min:inode> …)."""
    ino = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if "FLOCK" in f and int(f[f.index("FLOCK") + 4].rsplit(":", 1)[1]) == ino:
            return int(f[f.index("FLOCK") + 3])
    raise AssertionError(f"nobody holds {lock}")


def test_a_job_whose_worker_was_killed_is_reported_interrupted(tmp_path: Path, served: tuple[str, Path]) -> None:
    client = _client(served[0])
    b, owner = _slow_batch(client, tmp_path)
    _running_elsewhere(client, b.id, owner)
    pid = _lock_owner(served[1] / "modelyard-batches" / f"{b.id}.lock")
    os.kill(pid, signal.SIGKILL)
    b = _poll(client, b.id, lambda b: b.status in TERMINAL, timeout=30)
    assert b.status == "failed" and b.errors and b.errors.data
    assert b.errors.data[0].code == "server_restarted"
    assert b.failed_at
    ids = _ids(client, b.output_file_id)  # the output so far: readable, nothing twice
    assert ids and set(ids.values()) == {1}
    for _ in range(6):  # every worker (the survivor, a restarted one) says the same
        again, _ = _call(client.batches.with_raw_response.retrieve, b.id)
        assert again.status == "failed" and again.failed_at == b.failed_at

