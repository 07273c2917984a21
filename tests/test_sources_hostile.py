"""Hostile input, case by case: each becomes records or located InputErrors, never a crash."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sources_contract import check_lines_unique, drain

from mlift.errors import ConfigError, InputError
from mlift.pipeline.sources import MAX_DEPTH, Record, read_records

GOOD = '{"id": "good", "text": "A good response.", "lang": "en"}'


def write(tmp_path: Path, data: bytes, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path: Path, **options: Any) -> list[Record | InputError]:
    items = drain(path, **options)
    assert items is not None, "the call refused the file"
    check_lines_unique(items)
    return items


def errors(items: list[Record | InputError]) -> list[tuple[int | None, str | None, str]]:
    return [(e.line, e.field, e.code) for e in items if isinstance(e, InputError)]


def nest(depth: int, kind: str = "[") -> str:
    if kind == "[":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


# -- deep nesting -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["[", "{"])
def test_nesting_up_to_the_limit_is_read_and_beyond_it_rejected(tmp_path: Path,
                                                                kind: str) -> None:
    # The record object is level 1, so a field may nest MAX_DEPTH - 1 more.
    ok = f'{{"id": "ok", "text": "t", "lang": "en", "x": {nest(MAX_DEPTH - 1, kind)}}}'
    deep = f'{{"id": "deep", "text": "t", "lang": "en", "x": {nest(MAX_DEPTH, kind)}}}'
    items = read(write(tmp_path, f"{ok}\n{deep}\n{GOOD}\n".encode()))
    assert [type(i).__name__ for i in items] == ["Record", "InputError", "Record"]
    assert errors(items) == [(2, None, "too_deep")]
    assert "64 levels" in str(items[1])
    assert items[1].record_id == "deep"  # type: ignore[union-attr]  # parsed, so its id is known


@pytest.mark.parametrize("line", [nest(200_000), nest(200_000, "{"),
                                  '{"text": ' + nest(100_000) + "}",
                                  '{"text": "t", "lang": "en", "x": ' + nest(5_000) + "}"],
                         ids=["array", "object", "in text", "in a field"])
def test_nesting_past_pythons_recursion_limit_is_one_reject(tmp_path: Path, line: str) -> None:
    items = read(write(tmp_path, f"{GOOD}\n{line}\n{GOOD.replace('good', 'g2')}\n".encode()))
    assert errors(items) == [(2, None, "too_deep")]
    assert len(items) == 3


def test_brackets_inside_strings_are_not_nesting(tmp_path: Path) -> None:
    line = json.dumps({"text": "[[{{" * 5_000, "lang": "en", "note": "]]" * 1_000})
    [item] = read(write(tmp_path, line.encode() + b"\n"))
    assert isinstance(item, Record)


# -- numbers ----------------------------------------------------------------


def test_numbers_json_cannot_write_become_null_in_carried_fields(tmp_path: Path) -> None:
    line = ('{"text": "t", "lang": "en", "a": NaN, "b": Infinity, "c": -Infinity, '
            '"d": 1e999, "e": [NaN, {"f": -1e400}], "g": 1.5, "big": ' + "9" * 4_000 + "}")
    [rec] = read(write(tmp_path, line.encode() + b"\n"))
    assert isinstance(rec, Record)
    assert dict(rec.fields) == {"a": None, "b": None, "c": None, "d": None,
                                "e": [None, {"f": None}], "g": 1.5, "big": int("9" * 4_000)}


@pytest.mark.parametrize(("line", "field", "code"), [
    ('{"text": NaN, "lang": "en"}', "text", "bad_type"),
    ('{"text": 1e999, "lang": "en"}', "text", "bad_type"),
    ('{"id": NaN, "text": "t", "lang": "en"}', "id", "bad_type"),
    ('{"text": "t", "lang": Infinity}', "lang", "bad_type"),
    ('{"text": "t", "lang": "en", "n": ' + "1" * 5_000 + "}", None, "bad_json"),
    ('{"id": ' + "7" * 5_000 + ', "text": "t", "lang": "en"}', None, "bad_json"),
], ids=["NaN text", "inf text", "NaN id", "inf lang", "huge int field", "huge int id"])
def test_numbers_where_the_pipeline_needs_a_string_are_rejected(
        tmp_path: Path, line: str, field: str | None, code: str) -> None:
    items = read(write(tmp_path, f"{line}\n{GOOD}\n".encode()))
    assert errors(items) == [(1, field, code)]
    if code == "bad_json":
        assert "4,300 digits" in str(items[0])


# -- surrogate escapes --------------------------------------------------------

ESCAPES = ["\\ud800", "\\udfff", "\\uDC00", "tail \\ud83d", "\\ude00\\ud83d first"]


@pytest.mark.parametrize("escape", ESCAPES)
@pytest.mark.parametrize("field", ["id", "text", "lang", "article"])
def test_a_lone_surrogate_in_a_used_field_rejects_the_record_naming_it(
        tmp_path: Path, field: str, escape: str) -> None:
    obj = {"id": "r1", "text": "t", "lang": "en", "article": "a"}
    line = json.dumps(obj).replace(f'"{field}": "{obj[field]}"', f'"{field}": "{escape}"')
    good = json.dumps({**obj, "id": "r2"})
    items = read(write(tmp_path, f"{line}\n{good}\n".encode()), context_fields=("article",))
    assert errors(items) == [(1, field, "bad_text")]
    assert items[0].record_id == (None if field == "id" else "r1")  # type: ignore[union-attr]
    assert "surrogate" in str(items[0])


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_lone_surrogate_in_a_carried_field_becomes_a_replacement_character(
        tmp_path: Path, escape: str) -> None:
    line = ('{"text": "t", "lang": "en", "k' + escape + '": "v' + escape + '", '
            '"nested": [{"x' + escape + '": ["' + escape + '"]}]}')
    [rec] = read(write(tmp_path, line.encode() + b"\n"))
    assert isinstance(rec, Record)
    dumped = json.dumps(dict(rec.fields), ensure_ascii=False)
    assert "\ufffd" in dumped
    dumped.encode("utf-8")


def test_a_surrogate_pair_escape_is_one_valid_character(tmp_path: Path) -> None:
    line = '{"id": "\\ud83d\\ude00", "text": "smile \\ud83d\\ude00", "lang": "en"}'
    [rec] = read(write(tmp_path, line.encode() + b"\n"))
    assert isinstance(rec, Record)
    assert (rec.id, rec.text) == ("😀", "smile 😀")


def test_a_surrogate_in_a_message_is_escaped_so_the_reject_can_be_written(
        tmp_path: Path) -> None:
    line = '{"id": "a\\ud800", "text": "t", "lang": "en"}\n{"id": "x", "text": "\\udc00"}'
    for item in read(write(tmp_path, line.encode() + b"\n")):
        assert isinstance(item, InputError)
        json.dumps({"detail": str(item), "field": item.field}, ensure_ascii=False).encode()


# -- encodings ----------------------------------------------------------------


@pytest.mark.parametrize(("raw", "field", "rid"), [
    (b'{"id": "a", "text": "caf\xe9", "lang": "en"}', "text", "a"),
    (b'{"id": "\xff", "text": "cafe", "lang": "en"}', "id", None),
    (b'{"id": "a", "text": "cafe", "lang": "en", "k\xc3": 1}', "k\udcc3", "a"),
    (b'{"id": "a", "text": "cafe", "lang": "en", "n": [["\xed\xa0\x80"]]}', "n", "a"),
    (b'{"id": "a", "text": "caf\xe9', None, None),
], ids=["text", "id", "key", "nested CESU-8 surrogate", "malformed too"])
def test_invalid_utf8_names_the_field_and_carries_a_clean_id(
        tmp_path: Path, raw: bytes, field: str | None, rid: str | None) -> None:
    items = read(write(tmp_path, raw + b"\n" + GOOD.encode() + b"\n"))
    error = items[0]
    assert isinstance(error, InputError)
    assert (error.line, error.code, error.record_id) == (1, "bad_utf8", rid)
    if field is not None:
        assert error.field is not None
        error.field.encode("utf-8")  # a key's bad byte is shown escaped
        assert error.field == field.encode("utf-8", "surrogateescape").decode(
            "utf-8", "backslashreplace")
    assert isinstance(items[1], Record)


def test_nul_bytes_raw_are_malformed_json_and_escaped_are_text(tmp_path: Path) -> None:
    data = b'{"text": "a\x00b", "lang": "en"}\n{"text": "a\\u0000b", "lang": "en"}\n'
    items = read(write(tmp_path, data))
    assert errors(items) == [(1, None, "bad_json")]
    assert isinstance(items[1], Record) and items[1].text == "a\x00b"


def test_byte_order_marks_at_any_line_start_are_dropped(tmp_path: Path) -> None:
    bom = "\ufeff".encode()
    data = bom + GOOD.encode() + b"\n" + bom + GOOD.replace("good", "g2").encode() + b"\n"
    assert [r.id for r in read(write(tmp_path, data)) if isinstance(r, Record)] == [
        "good", "g2"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("name", ["in.jsonl", "in.txt"])
def test_a_utf16_file_is_one_error_saying_how_to_convert_it(tmp_path: Path, name: str,
                                                            codec: str) -> None:
    data = ("\ufeff" if codec == "utf-16-be" else "") + (GOOD + "\n") * 50
    items = read(write(tmp_path, data.encode(codec), name), default_lang="en")
    assert errors(items) == [(1, None, "not_utf8")]
    assert "iconv" in str(items[0])


def test_crlf_and_lone_cr_line_ends(tmp_path: Path) -> None:
    crlf = read(write(tmp_path, (GOOD + "\r\n\r\n" + GOOD.replace("good", "g2") + "\r\n")
                      .encode()))
    assert [r.id for r in crlf if isinstance(r, Record)] == ["good", "g2"]
    # Lines end at \n only: a CR-only file is one line, and not one JSON value.
    cr = read(write(tmp_path, (GOOD + "\r" + GOOD.replace("good", "g2") + "\r").encode()))
    assert errors(cr) == [(1, None, "bad_json")]
    txt = read(write(tmp_path, b"one\r\ntwo\r\n", "in.txt"), default_lang="en")
    assert [r.text for r in txt if isinstance(r, Record)] == ["one", "two"]


def test_a_file_name_that_is_not_utf8_is_written_escaped(tmp_path: Path) -> None:
    raw_path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.jsonl")
    with open(raw_path, "wb") as f:
        f.write(b'{"text": "", "lang": "en"}\n' + GOOD.encode() + b"\n")
    items = read(Path(os.fsdecode(raw_path)))
    assert items[0].file.endswith("caf\\xe9.jsonl")  # type: ignore[union-attr]
    assert items[1].source.file.endswith("caf\\xe9.jsonl")  # type: ignore[union-attr]


# -- record size ----------------------------------------------------------------


def test_a_line_over_the_limit_is_skipped_without_reading_it_whole(tmp_path: Path) -> None:
    limit = 1 << 20
    huge = b'{"text": "' + b"x" * (30 * limit) + b'", "lang": "en"}'
    path = write(tmp_path, GOOD.encode() + b"\n" + huge + b"\n" + GOOD.replace(
        "good", "g2").encode() + b"\n")
    tracemalloc.start()
    try:
        items = read(path, max_record_bytes=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limit
    assert errors(items) == [(2, None, "record_too_large")]
    last = items[2]
    assert isinstance(last, Record)
    assert (last.id, last.source.line, last.source.offset) == ("g2", 3, len(GOOD) + len(huge) + 2)


@pytest.mark.parametrize("ending", [b"\n", b""])
def test_the_limit_counts_a_lines_bytes_without_its_newline(tmp_path: Path,
                                                            ending: bytes) -> None:
    line = b'{"text": "' + b"x" * 80 + b'", "lang": "en"}'
    assert drain(write(tmp_path, line + ending), max_record_bytes=len(line)) is not None
    fits = read(write(tmp_path, line + ending), max_record_bytes=len(line))
    over = read(write(tmp_path, line + ending), max_record_bytes=len(line) - 1)
    assert [type(i).__name__ for i in fits] == ["Record"]
    assert errors(over) == [(1, None, "record_too_large")]


def test_a_text_block_over_the_limit_is_rejected_by_its_first_line(tmp_path: Path) -> None:
    data = b"short block\n\n" + b"line of forty bytes, more or less ....\n" * 10 + b"\nlast\n"
    items = read(write(tmp_path, data, "in.txt"), default_lang="en", txt_mode="block",
                 max_record_bytes=200)
    assert [(i.text if isinstance(i, Record) else i.code) for i in items] == [
        "short block", "record_too_large", "last"]
    assert errors(items)[0][0] == 3


def test_a_csv_row_over_the_limit_is_rejected_and_later_rows_are_read(tmp_path: Path) -> None:
    data = (b"id,text,lang\n1,first,en\n"
            b'2,"' + b"many lines\n" * 40 + b'",en\n'
            b"3,after,en\n")
    items = read(write(tmp_path, data, "in.csv"), max_record_bytes=200)
    # Counting quotes finds where the oversized row ends, so row 3 is read in step.
    assert [(r.id, r.source.line) if isinstance(r, Record) else (r.line, r.code)
            for r in items] == [("1", 2), (3, "record_too_large"), ("3", 44)]


# -- CSV --------------------------------------------------------------------------


def test_csv_ragged_rows_quotes_newlines_and_huge_fields(tmp_path: Path) -> None:
    big = "y" * 1_000_000  # past the csv module's default 128 KiB field limit
    data = ("\ufeffid,text,lang,license\r\n"
            "1,short row\r\n"
            '2,"quoted, with\r\nnewline and ""quotes""",en,cc0\r\n'
            f"3,{big},en,mit\r\n"
            "4,a,en,b,c,d\r\n"
            '5,"stray" quote,en,x\r\n'
            "6,\x00nul inside,en,x\r\n"
            "7\r\n").encode()
    items = read(write(tmp_path, data, "in.csv"), default_lang="es")
    got = [(r.id, r.source.line, r.lang, len(r.text)) if isinstance(r, Record)
           else (r.line, r.field, r.code, r.record_id) for r in items]
    assert got == [("1", 2, "es", 9), ("2", 3, "en", 34), ("3", 5, "en", len(big)),
                   (6, None, "bad_csv", None), (7, None, "bad_csv", None),
                   ("6", 8, "en", 11), (9, "text", "missing_field", "7")]


def test_csv_unterminated_quote_is_one_error_at_its_row(tmp_path: Path) -> None:
    data = b'id,text,lang\n1,ok,en\n2,"never closed,en\n3,lost,en\n4,lost,en\n'
    items = read(write(tmp_path, data, "in.csv"))
    assert [r.id for r in items if isinstance(r, Record)] == ["1"]
    assert errors(items) == [(3, None, "bad_csv")]


@pytest.mark.parametrize(("data", "match"), [
    (b"id,body\n1,x\n", "no column 'text'"),
    (b"id,\xfftext\n", "not UTF-8|invalid UTF-8"),
    ("text,lang\nx,en\n".encode("utf-16"), "UTF-16"),
    (b'"text\n', "unreadable CSV header"),
])
def test_csv_without_a_usable_header_fails_at_the_call(tmp_path: Path, data: bytes,
                                                       match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        read_records(write(tmp_path, data, "in.csv"))


def test_csv_with_only_blank_lines_or_nothing_has_no_records(tmp_path: Path) -> None:
    assert read(write(tmp_path, b"", "in.csv")) == []
    assert read(write(tmp_path, b"\n\n", "in.csv")) == []
    assert read(write(tmp_path, b"\ntext,lang\n", "in.csv")) == []


# -- Parquet ----------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"PAR1", b"PAR1" + os.urandom(200) + b"PAR1",
                                  b'{"text": "json in disguise"}\n'],
                         ids=["empty", "magic only", "junk", "json"])
def test_parquet_that_is_not_parquet_fails_at_the_call_naming_the_file(
        tmp_path: Path, data: bytes) -> None:
    pytest.importorskip("pyarrow.parquet")
    path = write(tmp_path, data, "data.parquet")
    with pytest.raises(ConfigError, match=f"{path}: not a readable Parquet file"):
        read_records(path, default_lang="en")


def test_parquet_values_json_cannot_write_are_cleaned(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    table = pa.table({"text": ["uno", "dos"], "lang": ["es", "es"],
                      "score": [float("nan"), float("inf")], "raw": [b"\x00\xff", b""],
                      "nested": [{"a": [1.0, float("nan")]}, {"a": []}]})
    pq.write_table(table, path)
    items = read(path)
    assert [dict(r.fields) for r in items if isinstance(r, Record)] == [
        {"score": None, "raw": "b'\\x00\\xff'", "nested": {"a": [1.0, None]}},
        {"score": None, "raw": "b''", "nested": {"a": []}}]


def test_parquet_text_of_the_wrong_type_is_rejected_per_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": [b"bytes", b"more"]}), path)
    items = read(path, default_lang="en")
    assert [(e.line, e.field, e.code, e.record_id) for e in items
            if isinstance(e, InputError)] == [(1, "text", "bad_type", "a"),
                                              (2, "text", "bad_type", "b")]


# -- compression ------------------------------------------------------------------

def numbered(n: int) -> bytes:
    return b"".join(f'{{"id": "r{i}", "text": "record number {i}", "lang": "en"}}\n'.encode()
                    for i in range(n))


LINES = numbered(300)
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    ".gz": gzip.compress, ".xz": lzma.compress,
    ".bz2": lambda data: bz2.compress(data, compresslevel=1)}  # 100 kB blocks


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_compressed_text_formats_are_read_like_plain(tmp_path: Path, suffix: str) -> None:
    items = read(write(tmp_path, COMPRESS[suffix](LINES), "in.jsonl" + suffix))
    assert [r.id for r in items if isinstance(r, Record)] == [f"r{i}" for i in range(300)]
    assert items[0].source.dataset == "in.jsonl"  # type: ignore[union-attr]
    txt = read(write(tmp_path, COMPRESS[suffix](b"a\nb\n"), "in.txt" + suffix),
               default_lang="en")
    assert [r.text for r in txt if isinstance(r, Record)] == ["a", "b"]


@pytest.mark.parametrize("suffix", list(COMPRESS))
def test_a_truncated_compressed_file_gives_its_records_then_one_error(
        tmp_path: Path, suffix: str) -> None:
    data = COMPRESS[suffix](numbered(8_000))  # several blocks: some come out before the cut
    items = read(write(tmp_path, data[: len(data) * 3 // 4], "in.jsonl" + suffix))
    *records, last = items
    assert records and all(isinstance(r, Record) for r in records)
    assert isinstance(last, InputError)
    assert last.code == "truncated"
    assert last.line == len(records) + 1
    assert "truncated" in str(last)


def test_gzip_with_trailing_garbage_reads_the_stream_then_says_corrupt(tmp_path: Path) -> None:
    items = read(write(tmp_path, gzip.compress(LINES) + b"garbage", "in.jsonl.gz"))
    assert len(items) == 301
    assert errors(items) == [(301, None, "corrupt")]


def test_empty_compressed_files_have_no_records(tmp_path: Path) -> None:
    for suffix in COMPRESS:
        assert read(write(tmp_path, b"", "in.jsonl" + suffix)) == []


@pytest.mark.parametrize(("name", "data", "match"), [
    ("in.jsonl.gz", b"plain text, not gzip\n", "not a gzip file"),
    ("in.csv.xz", gzip.compress(b"text\nx\n"), "not a xz file"),
    ("in.jsonl.zst", b"(\xb5/\xfd", "zstd -d in.jsonl.zst"),
    ("in.zip", b"PK\x03\x04", "unzip in.zip"),
    ("data.parquet.gz", gzip.compress(b"x"), "cannot tell the input format"),
])
def test_wrong_or_unsupported_compression_fails_at_the_call(
        tmp_path: Path, name: str, data: bytes, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        read_records(write(tmp_path, data, name), default_lang="en")


def test_an_unreadable_file_fails_at_the_call(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.encode())
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who can read anything")
        with pytest.raises(ConfigError, match="cannot read"):
            read_records(path)
    finally:
        path.chmod(0o600)


# -- languages --------------------------------------------------------------------


def test_a_huge_language_value_is_rejected_with_a_short_message(tmp_path: Path) -> None:
    line = json.dumps({"id": "a", "text": "t", "lang": "x" * 1_000_000})
    [error] = read(write(tmp_path, line.encode() + b"\n"))
    assert isinstance(error, InputError)
    assert (error.field, error.code, error.record_id) == ("lang", "unknown_language", "a")
    assert len(str(error)) < 200
