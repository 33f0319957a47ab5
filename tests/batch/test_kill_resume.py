"""A job killed with SIGKILL mid-run loses no finished result and duplicates none (10k sim lines)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter

from batchkit import ENV, command, openai_line, plain, read_jsonl, sim_config, write_jsonl

N = 10_000


def test_sigkill_mid_run_then_rerun_gives_every_custom_id_exactly_once(tmp_path) -> None:
    cfg = str(sim_config(tmp_path))
    write_jsonl(tmp_path / "in.jsonl", [plain(i) if i % 2 else openai_line(f"id-{i}", i) for i in range(N)])
    out = tmp_path / "out.jsonl"
    args = command("in.jsonl", "-o", "out.jsonl", "-c", cfg, "--concurrency", "256")
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.stat().st_size > 600 * 2000:  # ~2000 results in: kill it mid-run
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the batch ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    first = read_jsonl_tolerant(out)
    assert 0 < len(first) < N
    r = subprocess.run(args, cwd=tmp_path, env=ENV, text=True, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ids = Counter(o["custom_id"] for o in read_jsonl(out))
    expected = {f"line-{i + 1}" if i % 2 else f"id-{i}" for i in range(N)}
    assert set(ids) == expected  # none lost
    assert max(ids.values()) == 1  # none duplicated
    assert f"resuming: {len(first)} lines" in r.stderr
    assert all(o["response"]["status_code"] == 200 for o in read_jsonl(out))


def read_jsonl_tolerant(path):
    """What a killed run left: whole lines only (a torn tail, if any, is dropped on resume)."""
    data = path.read_bytes()
    return read_jsonl_bytes(data[: data.rfind(b"\n") + 1])


def read_jsonl_bytes(data: bytes) -> list[dict]:
    import json

    return [json.loads(raw) for raw in data.splitlines() if raw.strip()]


assert read_jsonl  # (used above)
