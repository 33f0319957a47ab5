"""`/v1/files` + `/v1/batches` on a real `modelyard serve`, driven by the official openai SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest
from batchkit import (
    KEY,
    SIM_CONFIG,
    openai_line,
    serve_fixture,  # noqa: F401  (the `server` fixture)
    serving,
)


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)


def _wait(client: openai.OpenAI, bid: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        b = client.batches.retrieve(bid)
        if b.status in ("completed", "failed", "cancelled"):
            return b
        assert time.monotonic() < deadline, f"batch still {b.status}"
        time.sleep(0.2)


def test_upload_create_poll_and_read_results_with_the_openai_sdk(tmp_path, server) -> None:
    client = _client(server)
    lines = [openai_line(f"q{i}", i, "sim/fast") for i in range(30)] + ["{broken"]
    src = tmp_path / "requests.jsonl"
    src.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    f = client.files.create(file=src.open("rb"), purpose="batch")
    assert f.id.startswith("file-") and f.purpose == "batch" and f.bytes == src.stat().st_size
    assert client.files.content(f.id).content == src.read_bytes()
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                              metadata={"job": "test"})
    assert b.status == "in_progress" and b.metadata == {"job": "test"}
    b = _wait(client, b.id)
    assert b.status == "completed" and b.output_file_id and b.error_file_id
    assert b.request_counts is not None
    assert (b.request_counts.total, b.request_counts.completed, b.request_counts.failed) == (31, 30, 1)
    out = [json.loads(x) for x in client.files.content(b.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in out) == sorted(f"q{i}" for i in range(30))
    assert all(o["response"]["status_code"] == 200 and o["response"]["body"]["choices"] for o in out)
    (err,) = [json.loads(x) for x in client.files.content(b.error_file_id).text.splitlines()]
    assert err["line"] == 31 and err["error"]["code"] == "invalid_line"
    listed = client.batches.list()
    assert b.id in [x.id for x in listed.data]
    page = client.files.list(limit=1)  # input, output, errors: three pages of one
    assert len(page.data) == 1 and page.has_more
    assert sorted(x.id for x in client.files.list(limit=1)) == sorted({f.id, b.output_file_id, b.error_file_id})
    assert [x.id for x in client.files.list(order="asc")] == [x.id for x in client.files.list()][::-1]
    assert [x.id for x in client.files.list(purpose="batch")] == [f.id]


def test_cancel_and_bad_requests(tmp_path, server) -> None:
    client = _client(server)
    src = tmp_path / "big.jsonl"
    src.write_text("\n".join(json.dumps(openai_line(f"c{i}", i, "sim/fast")) for i in range(3000)) + "\n")
    f = client.files.create(file=src.open("rb"), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    client.batches.cancel(b.id)
    b = _wait(client, b.id)
    assert b.status == "cancelled" and b.request_counts is not None and b.request_counts.completed < 3000
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="endpoint must be"):
        client.batches.create(input_file_id=f.id, endpoint="/v1/embeddings", completion_window="24h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="purpose must be 'batch'"):
        client.files.create(file=src.open("rb"), purpose="assistants")
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    with pytest.raises(openai.BadRequestError, match="limit must be"):
        client.batches.list(limit=0)
    with pytest.raises(openai.BadRequestError, match="after: no batch"):
        client.batches.list(after="batch_../x")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0).batches.list()


def test_two_servers_on_one_batch_dir_share_files_and_batches(tmp_path) -> None:
    """Two replicas (separate processes and request logs) configured with one `server.batch_dir`: a
    file uploaded through one is read and batched through the other, and the batch is seen on both."""
    shared = tmp_path / "shared-batches"
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir()
    config = SIM_CONFIG.replace("server:\n", f"server:\n  batch_dir: {shared}\n")
    with serving(dirs[0], config) as a, serving(dirs[1], config) as b:
        src = tmp_path / "in.jsonl"
        src.write_text("".join(json.dumps(openai_line(f"q{i}", i, "sim/fast")) + "\n" for i in range(5)))
        f = _client(a).files.create(file=src.open("rb"), purpose="batch")
        assert _client(b).files.content(f.id).content == src.read_bytes()
        made = _client(b).batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        done = _wait(_client(a), made.id)
        assert done.status == "completed" and done.request_counts is not None and done.request_counts.completed == 5
        out = _client(a).files.content(done.output_file_id).text.splitlines()
        assert sorted(json.loads(x)["custom_id"] for x in out) == [f"q{i}" for i in range(5)]
    assert any(shared.iterdir()) and not (dirs[0] / "modelyard-batches").exists()
