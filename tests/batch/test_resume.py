"""Finding what a previous run finished, and dropping a torn last line."""

from __future__ import annotations

import asyncio

from modelyard.batch.output import Appender
from modelyard.batch.resume import scan


def test_finished_ids_and_a_torn_last_line_is_cut_off(tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"custom_id": "a", "response": {}}\n{"custom_id": "b"}\n\n{"custom_id": "c", "resp')
    got = scan(str(out))
    assert got.ids == {"a", "b"} and got.torn_bytes == len(b'{"custom_id": "c", "resp')
    assert out.read_bytes().endswith(b'{"custom_id": "b"}\n\n')
    assert scan(str(out)).torn_bytes == 0  # idempotent


def test_unreadable_complete_lines_are_counted_not_finished(tmp_path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"custom_id": "a"}\ngarbage\n{"no_id": 1}\n')
    got = scan(str(out))
    assert got.ids == {"a"} and got.unreadable == 2


def test_missing_output_means_nothing_finished(tmp_path) -> None:
    assert scan(str(tmp_path / "none.jsonl")).ids == set()


def test_appender_writes_whole_lines_and_syncs_on_close(tmp_path) -> None:
    path = tmp_path / "out.jsonl"

    async def go() -> None:
        a = Appender(str(path), sync_every=3)
        for i in range(10):
            a.append(b'{"custom_id": "%d"}' % i)
            assert path.read_bytes().endswith(b"}\n")  # in the file as soon as append returns
        await a.close()

    asyncio.run(go())
    assert scan(str(path)).ids == {str(i) for i in range(10)}
