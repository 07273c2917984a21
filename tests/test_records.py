"""The record types and their one JSONL reader and writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlift.errors import RunFolderError
from mlift.records import (
    RAW_LIMIT,
    DatasetRow,
    JsonlWriter,
    Reject,
    RequestResult,
    ScoredPair,
    dumps,
    iter_json_lines,
    iter_records,
    loads,
    repair_torn_tail,
    rewrite,
)
from mlift.runfolder.writer import ThreadedWriter


def test_a_record_round_trips_and_keeps_keys_it_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "dataset.jsonl"
    line = {"id": "a", "lang": "hi", "instruction": "i", "response": "r", "score": 5,
            "added_by_a_script": [1, 2]}
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    (row,) = iter_records(path, DatasetRow)
    assert row.score == 5 and row.extra == {"added_by_a_script": [1, 2]}
    rewrite(path, [row.replace(score=4)])
    assert json.loads(path.read_text())["added_by_a_script"] == [1, 2]
    assert json.loads(path.read_text())["score"] == 4


def test_baseline_rows_leave_out_what_their_method_lacks() -> None:
    row = DatasetRow(id="a", lang="hi", instruction="i", response="r", task="translated")
    data = row.to_json()
    assert "score" not in data and "style" not in data and "template" not in data
    assert data["instruction_en"] is None  # part of every row's schema


def test_request_results_have_either_a_response_or_an_error() -> None:
    ok = RequestResult(line=1, response={"content": "x"}, cached=False, cost_usd=0.0,
                       attempts=1).to_json()
    bad = RequestResult(line=2, error={"type": "PermanentError"}).to_json()
    assert "error" not in ok and "response" in ok
    assert "response" not in bad and "cached" not in bad and bad["error"]["type"]


def test_a_torn_last_line_is_skipped_and_cut_off_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    good = json.dumps({"id": "a", "lang": None, "stage": "input", "code": "bad_input"})
    path.write_text(good + "\n" + good[:17], encoding="utf-8")
    assert [r.id for r in iter_records(path, Reject)] == ["a"]
    assert repair_torn_tail(path) == 17
    writer = JsonlWriter(path)
    writer.write(Reject(id="b", lang=None, stage="input", code="bad_input"))
    writer.close()
    assert [r.id for r in iter_records(path, Reject)] == ["a", "b"]


def test_a_damaged_middle_line_names_file_line_and_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "scored.jsonl"
    path.write_text('{"id": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(RunFolderError, match=r"scored\.jsonl:2: expected a JSON object"):
        list(iter_json_lines(path))
    path.write_text('{"id": "a", "score": 4, "instruction_en": "x"}\n', encoding="utf-8")
    with pytest.raises(RunFolderError, match=r"scored\.jsonl:1: field 'response': missing"):
        list(iter_records(path, ScoredPair))
    path.write_text('{"id": NaN}\n', encoding="utf-8")
    with pytest.raises(RunFolderError, match="NaN is not valid JSON"):
        list(iter_json_lines(path))


def test_raw_model_output_on_a_reject_is_bounded() -> None:
    assert Reject.bounded("short") == "short"
    cut = Reject.bounded("x" * (RAW_LIMIT + 500))
    assert cut is not None and cut.startswith("x" * RAW_LIMIT)
    assert cut.endswith("[500 more characters]")


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_any_text_even_lone_surrogates_is_written_as_json_that_reads_back(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.jsonl"
        writer = JsonlWriter(path)
        writer.write(DatasetRow(id="a", lang="hi", instruction=text, response=text))
        writer.close()
        (row,) = iter_records(path, DatasetRow)
        assert row.instruction == text


def test_the_writer_thread_writes_everything_in_order_and_reports_failures(
        tmp_path: Path) -> None:
    writer = ThreadedWriter({"DatasetRow": tmp_path / "d.jsonl", "Reject": tmp_path / "r.jsonl"})
    for i in range(500):
        writer.put("DatasetRow", DatasetRow(id=str(i), lang="hi", instruction="i", response="r"))
        if i % 7 == 0:
            writer.put("Reject", Reject(id=f"x{i}", lang=None, stage="s", code="c"))
    writer.flush()
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 500
    writer.close()
    assert [r.id for r in iter_records(tmp_path / "d.jsonl", DatasetRow)] == \
        [str(i) for i in range(500)]
    assert len(list(iter_records(tmp_path / "r.jsonl", Reject))) == 72

    broken = ThreadedWriter({"DatasetRow": tmp_path / "missing" / "d.jsonl"})
    broken.put("DatasetRow", DatasetRow(id="a", lang=None, instruction="i", response="r"))
    with pytest.raises(FileNotFoundError):
        broken.close()


def test_a_line_without_its_language_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "dataset.jsonl"
    path.write_text('{"id": "a", "instruction": "i", "response": "r"}\n', encoding="utf-8")
    (row,) = iter_records(path, DatasetRow)
    assert row.lang is None and row.instruction == "i"


# JSON as users' files and mlift's own lines hold it: big integers, floats of every size,
# any text (lone surrogates included), nesting.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(2**62, 2**80).map(lambda i: -i)
    | st.integers(2**62, 2**80) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12)


@settings(max_examples=300)
@given(json_values, st.booleans())
def test_loads_gives_the_standard_librarys_value_for_any_json(value: object,
                                                              ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    got = loads(text.encode("utf-8", "surrogatepass") if ascii_only else text)
    assert got == json.loads(text)
    assert json.dumps(got) == json.dumps(json.loads(text))  # same types: 10**20 stays an int


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", "-Infinity"])
def test_loads_refuses_nan_and_infinity(text: str) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        loads(text)


@settings(max_examples=300)
@given(json_values)
def test_dumps_writes_one_compact_line_that_reads_back_the_same(value: object) -> None:
    line = dumps(value)
    assert b"\n" not in line
    assert json.loads(line.decode("utf-8")) == value
    assert json.dumps(json.loads(line.decode("utf-8"))) == json.dumps(value)
