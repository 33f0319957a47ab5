"""`modelyard batch --url`: the lines go through a running `modelyard serve` (a real process on a
loopback port), authenticated with the master key from MODELYARD_MASTER_KEY."""

from __future__ import annotations

import re
import socket

from batchkit import (
    ENV,
    KEY,
    openai_line,
    plain,
    read_jsonl,
    run_batch,
    serve_fixture,  # noqa: F401  (the `server` fixture)
    write_jsonl,
)


def test_url_mode_runs_every_line_through_the_server(tmp_path, server) -> None:
    lines = [plain(i) for i in range(40)] + [openai_line(f"k{i}", i, "sim/fast") for i in range(40)]
    write_jsonl(tmp_path / "in.jsonl", lines)
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "--url", server + "/v1",
                  env={**ENV, "MODELYARD_MASTER_KEY": KEY})
    assert r.returncode == 0, r.stderr
    out = read_jsonl(tmp_path / "out.jsonl")
    assert len({o["custom_id"] for o in out}) == 80
    assert all(o["response"]["status_code"] == 200 and o["response"]["request_id"].startswith("req_") for o in out)
    # cost and deployments come from the server's x-modelyard-* headers
    assert re.search(r"models\s+│ sim/fast × 80", r.stdout), r.stdout
    assert "$0.000000" not in r.stdout
    assert KEY not in r.stdout + r.stderr


def test_url_mode_with_a_wrong_key_fails_each_line_with_the_reason_and_no_key_in_it(tmp_path, server) -> None:
    write_jsonl(tmp_path / "in.jsonl", [plain(i) for i in range(5)])
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "--url", server, "--api-key", "sk-wrong-key-123")
    assert r.returncode == 1
    assert read_jsonl(tmp_path / "out.jsonl") == []
    errors = read_jsonl(tmp_path / "out.errors.jsonl")
    assert sorted(e["line"] for e in errors) == [1, 2, 3, 4, 5]
    assert all(e["response"]["status_code"] == 401 and e["error"]["code"] == "authentication_error" for e in errors)
    assert "sk-wrong-key-123" not in (tmp_path / "out.errors.jsonl").read_text()


def test_url_mode_with_nothing_listening_fails_fast_and_says_so(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_jsonl(tmp_path / "in.jsonl", [plain(1)])
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "--url", f"http://127.0.0.1:{port}", timeout=60)
    assert r.returncode == 2 and "cannot reach a gateway at" in r.stderr
