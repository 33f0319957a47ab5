"""`modelyard batch` as a user runs it: a real process, the sim fleet in process, files on disk."""

from __future__ import annotations

import re

from batchkit import openai_line, plain, read_jsonl, run_batch, sim_config, write_jsonl


def test_both_formats_run_and_bad_lines_go_to_the_errors_file_with_their_line_numbers(tmp_path) -> None:
    lines = [plain(i) for i in range(1, 21)] + [openai_line(f"job-{i}", i) for i in range(20)]
    lines[4] = "{oops"  # line 5: not JSON
    lines[9] = {"messages": [{"role": "wizard", "content": "hi"}]}  # line 10: fails the gateway's validation
    lines.append(openai_line("job-3", 99))  # line 41: a duplicate custom_id
    write_jsonl(tmp_path / "in.jsonl", lines)
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "--config", str(sim_config(tmp_path)))
    assert r.returncode == 1, r.stderr  # some lines did not make it
    out = read_jsonl(tmp_path / "out.jsonl")
    ids = [o["custom_id"] for o in out]
    expected = {f"line-{n}" for n in range(1, 21) if n not in (5, 10)} | {f"job-{i}" for i in range(20)}
    assert sorted(ids) == sorted(expected)  # each once; plain lines are line-N (1-based)
    for o in out:
        assert set(o) == {"id", "custom_id", "response", "error"} and o["error"] is None
        assert o["id"].startswith("batch_req_")
        resp = o["response"]
        assert resp["status_code"] == 200 and resp["request_id"].startswith("req_")
        assert resp["body"]["object"] == "chat.completion" and resp["body"]["choices"][0]["message"]["content"]
    errors = {e["line"]: e for e in read_jsonl(tmp_path / "out.errors.jsonl")}
    assert sorted(errors) == [5, 10, 41]
    assert errors[5]["error"]["code"] == "invalid_line" and "line 5: not valid JSON" in errors[5]["error"]["message"]
    assert errors[10]["custom_id"] == "line-10" and errors[10]["response"]["status_code"] == 400
    assert "messages[0].role" in errors[10]["error"]["message"]
    assert errors[41]["error"]["code"] == "duplicate_custom_id" and "first on line 24" in errors[41]["error"]["message"]
    summary = r.stdout
    assert re.search(r"done\s+│ 38", summary) and re.search(r"failed\s+│ 1", summary)
    assert "malformed" in summary and "1 duplicate" in summary
    assert "sim/" in summary and re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms", summary)


def test_rerunning_skips_finished_lines_and_retries_failed_ones(tmp_path) -> None:
    cfg = str(sim_config(tmp_path))
    write_jsonl(tmp_path / "in.jsonl", [plain(i) for i in range(30)])
    assert run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "-c", cfg).returncode == 0
    # a result lost (as if that line had failed) and a torn last line (as a power cut leaves it)
    path = tmp_path / "out.jsonl"
    kept = path.read_text().splitlines()[:-2]
    path.write_text("\n".join(kept) + '\n{"id": "batch_req_x", "custom_id": "line-')
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "-c", cfg)
    assert r.returncode == 0, r.stderr
    assert "dropped a torn last line" in r.stderr and "resuming: 28 lines" in r.stderr
    assert re.search(r"done\s+│ 2 ", r.stdout) and re.search(r"skipped\s+│ 28", r.stdout)
    ids = [o["custom_id"] for o in read_jsonl(path)]
    assert sorted(ids) == sorted(f"line-{i}" for i in range(1, 31))


def test_max_cost_stops_launching_and_says_how_many_are_left(tmp_path) -> None:
    cfg = str(sim_config(tmp_path))
    write_jsonl(tmp_path / "in.jsonl", [openai_line(f"c{i}", i, model="sim/balanced") for i in range(200)])
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "-c", cfg, "--max-cost", "0.0005", "--concurrency", "16")
    assert r.returncode == 1
    done = read_jsonl(tmp_path / "out.jsonl")
    cost = float(re.search(r"cost\s+│ \$([\d.]+)", r.stdout).group(1))  # type: ignore[union-attr]
    assert 0 < cost <= 0.0005
    left = int(re.search(r"reached: (\d+) lines left", r.stderr).group(1))  # type: ignore[union-attr]
    assert 0 < len(done) < 200 and len(done) + left == 200
    # raising the limit continues where it stopped
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "-c", cfg)
    assert r.returncode == 0
    assert sorted(o["custom_id"] for o in read_jsonl(tmp_path / "out.jsonl")) == sorted(f"c{i}" for i in range(200))


def test_bad_invocations_are_named(tmp_path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [plain(1)])
    r = run_batch(tmp_path, "missing.jsonl", "-o", "out.jsonl")
    assert r.returncode == 2 and "missing.jsonl: no such input file" in r.stderr
    r = run_batch(tmp_path, "in.jsonl", "-o", "out.jsonl", "--url", "http://127.0.0.1:1", "-c", "x.yaml")
    assert r.returncode == 2 and "--config and --url exclude each other" in r.stderr
    r = run_batch(tmp_path, "in.jsonl", "-o", "in.jsonl")
    assert r.returncode == 2 and "must not be the input" in r.stderr
