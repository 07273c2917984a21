"""Reading input records: every bad-input kind becomes an InputError and the rest still runs."""

from __future__ import annotations

import gzip
import json
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from mlift.errors import ConfigError, InputError, UnknownNameError
from mlift.pipeline.sources import Record, read_records

GOOD = {"text": "A good response.", "lang": "en"}


def jsonl(tmp_path: Path, *lines: bytes | str | dict[str, Any], name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    raw = [ln if isinstance(ln, bytes) else
           (json.dumps(ln, ensure_ascii=False) if isinstance(ln, dict) else ln).encode()
           for ln in lines]
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path


def records(items: list[Record | InputError]) -> list[Record]:
    return [r for r in items if isinstance(r, Record)]


BAD_LINES: list[tuple[str, bytes | str | dict[str, Any], str | None, str]] = [
    ("malformed JSON", '{"text": "unclosed', None, "bad_json"),
    ("an array, not an object", '["text", "lang"]', None, "not_object"),
    ("a bare string", '"just a string"', None, "not_object"),
    ("text missing", {"lang": "en"}, "text", "missing_field"),
    ("text null", {"text": None, "lang": "en"}, "text", "missing_field"),
    ("text a number", {"text": 42, "lang": "en"}, "text", "bad_type"),
    ("text empty", {"text": "", "lang": "en"}, "text", "empty_text"),
    ("text whitespace only", {"text": " \t\u3000\n ", "lang": "en"}, "text", "empty_text"),
    ("invalid UTF-8", b'{"text": "caf\xe9 au lait", "lang": "en"}', "text", "bad_utf8"),
    ("lone surrogate escape", '{"text": "broken \\ud800 pair", "lang": "en"}', "text",
     "bad_text"),
    ("lang missing", {"text": "Some text."}, "lang", "missing_lang"),
    ("lang unknown", {"text": "Some text.", "lang": "klingon"}, "lang", "unknown_language"),
    ("lang not a string", {"text": "Some text.", "lang": 7}, "lang", "bad_type"),
    ("id a list", {"id": [1], "text": "Some text.", "lang": "en"}, "id", "bad_type"),
]


@pytest.mark.parametrize(("kind", "bad", "field", "code"), BAD_LINES,
                         ids=[b[0] for b in BAD_LINES])
def test_each_bad_record_kind_is_an_input_error_and_neighbours_survive(
        tmp_path: Path, kind: str, bad: Any, field: str | None, code: str) -> None:
    path = jsonl(tmp_path, {"id": "a", **GOOD}, bad, {"id": "c", **GOOD})
    out = list(read_records(path))
    assert [type(r).__name__ for r in out] == ["Record", "InputError", "Record"], kind
    error = out[1]
    assert isinstance(error, InputError)
    assert (error.file, error.line, error.field, error.code) == (str(path), 2, field, code)
    assert f"{path}:2:" in str(error)
    if field:
        assert repr(field) in str(error)
    assert [r.id for r in records(out)] == ["a", "c"]


def test_duplicate_given_id_rejects_the_second_record(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"id": 7, **GOOD}, {"id": "7", **GOOD}, {"id": 8, **GOOD})
    out = list(read_records(path))
    assert isinstance(out[1], InputError)
    assert (out[1].line, out[1].field, out[1].code) == (2, "id", "duplicate_id")
    assert [r.id for r in records(out)] == ["7", "8"]


def test_a_record_rejected_for_a_field_claims_its_id(tmp_path: Path) -> None:
    # Its reject is filed under "x", so a second "x" would end in two places.
    path = jsonl(tmp_path, {"id": "x", "text": "", "lang": "en"}, {"id": "x", **GOOD})
    out = list(read_records(path))
    assert all(isinstance(r, InputError) for r in out)
    assert [(r.code, r.record_id) for r in out if isinstance(r, InputError)] == [
        ("empty_text", "x"), ("duplicate_id", None)]


@pytest.mark.parametrize("bad", [{"text": ""}, {"text": 42}, {}, {"text": None},
                                 {"text": "ok", "lang": "klingon"}, {"text": ["a"]}],
                         ids=["empty", "number", "missing", "null", "unknown lang", "list"])
def test_a_readable_record_with_a_bad_field_carries_its_own_id(
        tmp_path: Path, bad: dict[str, Any]) -> None:
    path = jsonl(tmp_path, {"id": "rec-7", "lang": "en", **bad}, {"id": 8, "lang": "en"})
    out = list(read_records(path))
    assert [e.record_id for e in out if isinstance(e, InputError)] == ["rec-7", "8"]


def test_an_unreadable_line_or_a_record_without_an_id_carries_none(tmp_path: Path) -> None:
    path = jsonl(tmp_path, '{"id": "a", "text": ', {"text": "", "lang": "en"},
                 {"id": ["a"], "text": "", "lang": "en"})
    out = list(read_records(path))
    assert [(e.code, e.record_id) for e in out if isinstance(e, InputError)] == [
        ("bad_json", None), ("empty_text", None), ("bad_type", None)]


def test_generated_ids_are_stable_across_reads_and_differ_by_position(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GOOD, GOOD, GOOD)
    first = [r.id for r in records(list(read_records(path)))]
    second = [r.id for r in records(list(read_records(path)))]
    assert first == second
    assert len(set(first)) == 3
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in first)


def test_generated_ids_survive_moving_the_file_but_depend_on_dataset(tmp_path: Path) -> None:
    a = jsonl(tmp_path, GOOD)
    (tmp_path / "moved").mkdir()
    b = jsonl(tmp_path / "moved", GOOD)
    ids = [records(list(read_records(p)))[0].id for p in (a, b)]
    assert ids[0] == ids[1]
    other = records(list(read_records(a, dataset="xsum")))[0]
    assert other.id != ids[0]
    assert other.source.dataset == "xsum"


def test_record_carries_source_lang_context_and_other_fields(tmp_path: Path) -> None:
    row = {"article": "Long article text.", "summary": "Short summary.", "language": "Hindi",
           "license": "cc-by-4.0", "url": "https://example.org/a"}
    path = jsonl(tmp_path, {"x": 1}, row)
    out = list(read_records(path, text_field="summary", lang_field="language",
                            context_fields=("article",)))
    rec = out[1]
    assert isinstance(rec, Record)
    assert rec.text == "Short summary."
    assert rec.lang == "hi"
    assert rec.context == {"article": "Long article text."}
    assert rec.fields == {"license": "cc-by-4.0", "url": "https://example.org/a"}
    assert (rec.source.file, rec.source.line, rec.source.offset) == (str(path), 2, 9)


def test_missing_context_field_names_that_field(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"context": "Passage.", "answer": "An answer.", "lang": "en"},
                 {"answer": "An answer.", "lang": "en"})
    out = list(read_records(path, text_field="answer", context_fields=("context", "question")))
    assert [(r.line, r.field, r.code) for r in out if isinstance(r, InputError)] == [
        (1, "question", "missing_field"), (2, "context", "missing_field")]


def test_default_lang_fills_gaps_and_the_record_lang_wins(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"text": "Hola."}, {"text": "Olá.", "lang": "por"})
    assert [r.lang for r in records(list(read_records(path, default_lang="Spanish")))] == [
        "es", "pt"]


def test_blank_lines_and_a_byte_order_mark_are_not_records(tmp_path: Path) -> None:
    path = jsonl(tmp_path, "\ufeff" + json.dumps(GOOD), "", "   ", GOOD)
    out = list(read_records(path))
    assert len(out) == 2
    assert all(isinstance(r, Record) for r in out)


def test_a_json_array_file_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps([GOOD, GOOD], indent=2))
    out = list(read_records(path))
    assert len(out) == 1
    assert isinstance(out[0], InputError)
    assert out[0].code == "not_jsonl"
    assert "jq" in str(out[0])


def test_gzipped_jsonl_is_read_like_plain(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    out = records(list(read_records(path)))
    assert [r.source.line for r in out] == [1, 2]
    assert out[0].source.dataset == "in.jsonl"


def test_reading_streams_without_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "x" * 1000, "lang": "en"}) + "\n"
    path.write_text(line * 4_000)  # ~4 MB
    tracemalloc.start()
    try:
        n = sum(1 for r in read_records(path) if isinstance(r, Record))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 4_000
    assert peak < 1_000_000


def test_txt_line_mode_gives_one_record_per_non_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes("पहली पंक्ति\r\n\nदूसरी पंक्ति\n".encode())
    out = records(list(read_records(path, default_lang="hi")))
    assert [(r.text, r.source.line, r.lang) for r in out] == [
        ("पहली पंक्ति", 1, "hi"), ("दूसरी पंक्ति", 3, "hi")]


def test_txt_block_mode_numbers_a_block_by_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("\n\nfirst para\nstill first\n\n\nsecond para\n")
    out = records(list(read_records(path, default_lang="en", txt_mode="block")))
    assert [(r.text, r.source.line) for r in out] == [
        ("first para\nstill first", 3), ("second para", 7)]


@pytest.mark.parametrize("mode", ["line", "block"])
def test_txt_bad_utf8_rejects_only_its_line_or_block(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"good one\n\nbad \xff line\nsame block\n\ngood two\n")
    out = list(read_records(path, default_lang="en", txt_mode=mode))
    errors = [r for r in out if isinstance(r, InputError)]
    assert [(e.line, e.code) for e in errors] == [(3, "bad_utf8")]
    texts = [r.text for r in records(out)]
    assert texts == (["good one", "same block", "good two"] if mode == "line"
                     else ["good one", "good two"])


def test_txt_without_a_language_fails_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("text\n")
    with pytest.raises(ConfigError, match="--lang"):
        read_records(path)


def test_csv_rows_with_quoted_newlines_keep_their_first_line(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text,lang,license\n'
                     b'1,"multi\nline, with comma",es,cc0\n'
                     b'2,"bad \xff byte",es,cc0\n'
                     b'3,plain,es\n'
                     b'4,too,many,columns,here\n'
                     b'\n'
                     b'5,,es,x\n'
                     b'6,last,es,mit\n')
    out = list(read_records(path))
    got = [(r.id, r.text, r.source.line, dict(r.fields)) if isinstance(r, Record)
           else (r.line, r.field, r.code) for r in out]
    assert got == [
        ("1", "multi\nline, with comma", 2, {"license": "cc0"}),
        (4, None, "bad_utf8"),
        ("3", "plain", 5, {}),
        (6, None, "bad_csv"),
        (8, "text", "empty_text"),
        ("6", "last", 9, {"license": "mit"}),
    ]


def test_csv_without_the_text_column_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("id,body\n1,hello\n")
    with pytest.raises(ConfigError, match="'text'"):
        list(read_records(path, default_lang="en"))


def test_tsv_uses_tabs(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("text\tlang\na, b\ten\n")
    assert [r.text for r in records(list(read_records(path)))] == ["a, b"]


def test_parquet_rows_stream_with_row_numbers(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is optional (pip install pyarrow)")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    table = pa.table({"text": ["uno", "", None, "cuatro"], "lang": ["es"] * 4,
                      "n": [1, 2, 3, 4]})
    pq.write_table(table, path, row_group_size=2)
    out = list(read_records(path))
    got = [(r.text, r.source.line, dict(r.fields)) if isinstance(r, Record)
           else (r.line, r.field, r.code) for r in out]
    assert got == [("uno", 1, {"n": 1}), (2, "text", "empty_text"),
                   (3, "text", "missing_field"), ("cuatro", 4, {"n": 4})]


def test_parquet_without_the_text_column_is_a_config_error(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is optional (pip install pyarrow)")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(ConfigError, match="no column 'text'"):
        read_records(path, default_lang="en")


def test_parquet_without_pyarrow_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # makes the import fail
    with pytest.raises(ConfigError, match="pip install pyarrow"):
        read_records(path, default_lang="en")


def test_whole_input_problems_fail_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_records(tmp_path / "missing.jsonl")
    odd = tmp_path / "data.xml"
    odd.write_text("<x/>")
    with pytest.raises(ConfigError, match="format"):
        read_records(odd)
    with pytest.raises(UnknownNameError, match="Did you mean 'jsonl'"):
        read_records(odd, fmt="jsonlines")
    with pytest.raises(UnknownNameError, match="language"):
        read_records(odd, fmt="txt", default_lang="elvish")
    with pytest.raises(ConfigError, match="txt_mode"):
        read_records(odd, fmt="txt", default_lang="en", txt_mode="paragraph")
