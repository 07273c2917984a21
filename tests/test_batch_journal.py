"""The batch journal: durable appends, replay into chunk records, torn lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlift.batch import BatchJournal


def submitting(chunk: str, ids: list[str]) -> dict[str, object]:
    return {"event": "submitting", "chunk": chunk, "stage": "judge", "target": "openai:m",
            "kind": "openai", "custom_ids": ids, "bytes": 10, "at": 1.0}


async def test_events_replay_into_the_state_of_each_chunk(tmp_path: Path) -> None:
    journal = BatchJournal(tmp_path / "run")
    await journal.append(submitting("c1", ["a", "b"]))
    await journal.append({"event": "created", "chunk": "c1", "batch_id": "batch_1", "at": 2.0})
    await journal.append({"event": "state", "chunk": "c1", "state": "in_progress", "done": 1,
                          "failed": 0, "total": 2, "at": 3.0})
    await journal.append(submitting("c2", ["c"]))
    await journal.append({"event": "ended", "chunk": "c1", "state": "completed", "at": 4.0})
    await journal.append({"event": "collected", "chunk": "c1", "succeeded": 1, "retry": ["b"],
                          "final": [], "at": 5.0})
    await journal.append({"event": "created", "chunk": "nope", "batch_id": "x"})
    c1, c2 = await journal.load()
    assert (c1.batch_id, c1.state, c1.ended, c1.collected, c1.retry) == (
        "batch_1", "completed", True, True, {"b"})
    assert c1.custom_ids == ["a", "b"] and not c1.open and not c1.in_doubt
    assert c2.in_doubt and c2.batch_id is None  # sent for creation, fate unknown
    lines = (tmp_path / "run" / "batches.jsonl").read_text().splitlines()
    assert all(json.loads(line)["v"] == 1 for line in lines)


async def test_a_line_torn_by_a_crash_is_skipped_and_the_next_append_starts_afresh(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = BatchJournal(tmp_path)
    await journal.append(submitting("c1", ["a"]))
    with journal.path.open("ab") as f:
        f.write(b'{"v":1,"event":"created","chunk":"c1","batch_')  # killed mid-write
    [c1] = await journal.load()
    assert c1.in_doubt  # the creation it was recording is treated as unknown
    assert "unreadable line" in caplog.text
    await journal.append({"event": "created", "chunk": "c1", "batch_id": "batch_9"})
    [c1] = await journal.load()
    assert c1.batch_id == "batch_9"
    assert journal.path.read_bytes().count(b"\n") == 3


async def test_a_missing_journal_is_an_empty_one(tmp_path: Path) -> None:
    assert await BatchJournal(tmp_path / "nothing-yet").load() == []
