"""`/v1/files` + `/v1/batches` on a real `modelyard serve`, driven by the official openai SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest
from batchkit import (
    KEY,
    openai_line,
    serve_fixture,  # noqa: F401  (the `server` fixture)
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
