"""Input lines: both formats, and every kind of bad line named with its line number."""

from __future__ import annotations

from batchkit import openai_line, plain, write_jsonl

from modelyard.batch.reader import Item, Malformed, read_items


def test_both_line_formats_become_requests(tmp_path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [plain(1), openai_line("a", 2, model="fast"),
                                                {**plain(3, "smart"), "custom_id": "mine"}])
    items = list(read_items(str(path), "auto"))
    assert [(i.line, i.custom_id) for i in items if isinstance(i, Item)] == [(1, "line-1"), (2, "a"), (3, "mine")]
    first, second, third = items
    assert isinstance(first, Item) and first.body["model"] == "auto"  # --model fills a missing model
    assert isinstance(second, Item) and second.body["model"] == "fast" and second.body["max_tokens"] == 50
    assert isinstance(third, Item) and "custom_id" not in third.body and third.body["model"] == "smart"


def test_line_numbers_count_blank_lines_and_problems_name_the_line(tmp_path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [
        plain(1), "", "{not json", "[1, 2]", {"custom_id": "x", "method": "GET", "body": {}},
        {"custom_id": "y", "url": "/v1/embeddings", "body": plain(1)},
        {"method": "POST", "body": plain(1)}, {"custom_id": "z", "body": "hi"}, {"messages": []},
        {**plain(1), "stream": True}, {"custom_id": 7, "body": plain(1)}, plain(12),
        openai_line("dup", 1), openai_line("dup", 2),
    ])
    got = list(read_items(str(path), "auto"))
    bad = {m.line: m for m in got if isinstance(m, Malformed)}
    assert sorted(bad) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 14]
    assert "not valid JSON" in bad[3].reason
    assert "must be a JSON object, got an array" in bad[4].reason
    assert "method must be POST" in bad[5].reason and bad[5].custom_id == "x"
    assert "url must be /v1/chat/completions" in bad[6].reason
    assert "needs a custom_id" in bad[7].reason
    assert "body must be" in bad[8].reason
    assert "messages must be a non-empty array" in bad[9].reason and bad[9].custom_id == "line-9"
    assert "stream is not supported" in bad[10].reason
    assert "custom_id must be a non-empty string" in bad[11].reason
    assert bad[14].reason == "duplicate custom_id 'dup' (first on line 13)"
    assert [i.line for i in got if isinstance(i, Item)] == [1, 12, 13]


def test_without_a_default_model_a_line_must_name_one(tmp_path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [plain(1)])
    (m,) = read_items(str(path), None)
    assert isinstance(m, Malformed) and "model must be" in m.reason
