"""Properties of the input readers: any bytes give records or located InputErrors, nothing else.

The contract every example is held to is :func:`sources_contract.check_item`:
a Record every JSON writer can write (UTF-8, no NaN), or an InputError naming
file and line; the call itself may only refuse a whole file with ConfigError.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from sources_contract import check_lines_unique, drain

from mlift.errors import InputError
from mlift.langs import get_language
from mlift.pipeline.sources import MAX_DEPTH, MAX_RECORD_BYTES, Record

PROPS = settings(deadline=None, max_examples=100,
                 suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sources")


def put(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


READERS: dict[str, dict[str, Any]] = {
    "in.jsonl": {}, "in.jsonl.gz": {}, "ctx.jsonl": {"context_fields": ("article",)},
    "in.txt": {"default_lang": "en"},
    "blocks.txt": {"default_lang": "en", "txt_mode": "block"},
    "in.csv": {"default_lang": "en"}, "in.tsv": {"default_lang": "en"},
    "in.parquet": {"default_lang": "en"},
}
limits = st.sampled_from([1, 16, 100, 4096, MAX_RECORD_BYTES])


# -- arbitrary bytes ----------------------------------------------------------------

# Bytes that matter to some reader, so random input reaches past the first check.
TOKENS = [b"\n", b"\r\n", b"\r", b'"', b",", b"\t", b"{", b"}", b"[", b"]", b":", b"\\",
          b"\\ud800", b"\\u0000", b"\x00", b"\xff", b"\xed\xa0\x80", b"\xef\xbb\xbf",
          b"\xff\xfe", b'"text"', b'"lang"', b'"id"', b'"en"', b"NaN", b"1e999", b"text",
          b"lang", b"id", b"en", b"PAR1", b"\x1f\x8b", b" ", b"x", "é".encode()]
noisy = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)),
                 max_size=120).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=2000), noisy)


@PROPS
@given(name=st.sampled_from(sorted(READERS)), data=any_bytes, limit=limits)
@example(name="in.jsonl", data=b"[" * 100_000, limit=MAX_RECORD_BYTES)
@example(name="in.jsonl", data=b'{"id": "\\ud800", "text": "x", "lang": "en"}',
         limit=MAX_RECORD_BYTES)
@example(name="in.csv", data=b'text\n"' + b"x\n" * 50, limit=16)
def test_any_bytes_give_records_or_located_errors(folder: Path, name: str, data: bytes,
                                                  limit: int) -> None:
    if name.endswith(".gz"):
        data = gzip.compress(data)
    items = drain(put(folder, name, data), max_record_bytes=limit, **READERS[name])
    if items is not None:
        check_lines_unique(items)


# -- JSON-shaped records -------------------------------------------------------------

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
chars = st.one_of(st.characters(), surrogates, st.sampled_from(" \t\n\x00\ufeff"))
strings = st.text(chars, max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), strings,
                    st.floats(allow_nan=True, allow_infinity=True))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(strings, inner, max_size=3)), max_leaves=12)
# Mostly good values, so records get through and their carried fields are checked too.
good_text = st.one_of(st.just("A response."), st.text(st.characters(), min_size=1)
                      .filter(lambda t: bool(t.strip())))
texts = st.one_of(good_text, good_text, values, st.sampled_from(["", "  ", "ok \ud800", "\udfff"]))
langs = st.one_of(st.sampled_from(["en", "hi", "Japanese", "es-MX", ""]),
                  st.sampled_from(["klingon", " ", "e\ud800"]), values)
objects = st.fixed_dictionaries({"text": texts}, optional={
    "id": st.one_of(st.sampled_from(["a", "b", "", "\ud800"]), values),
    "lang": langs, "article": texts,
    "extra": values, "k\ud800": values, "n": st.floats(allow_nan=True)})


def _bad_string(value: Any) -> bool:
    return (not isinstance(value, str) or not value.strip()
            or any(0xD800 <= ord(c) <= 0xDFFF for c in value))


def _bad_lang(value: Any) -> bool:
    if value is None or value == "":
        return False  # the default (en) fills it
    if _bad_string(value):
        return True
    try:
        get_language(value)
    except KeyError:
        return True
    return False


def _clean(value: Any) -> Any:
    """What a carried field must become: surrogates replaced, NaN/Infinity null."""
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


@PROPS
@given(objs=st.lists(objects, min_size=1, max_size=6), ensure_ascii=st.booleans(),
       crlf=st.booleans(), context=st.booleans())
@example(objs=[{"id": "a", "text": "A response.", "k\ud800": ["\udfff", {"\udc00": "x\ud800"}],
                "n": math.nan}, {"id": "a", "text": "again"}, {"text": "\ud800", "id": "b"},
               {"text": "ok", "id": "b"}], ensure_ascii=True, crlf=False, context=False)
def test_each_json_record_is_read_faithfully_or_rejected_for_a_real_fault(
        folder: Path, objs: list[dict[str, Any]], ensure_ascii: bool, crlf: bool,
        context: bool) -> None:
    """No false rejects, no false accepts: a Record is the object cleaned as documented."""
    lines = [json.dumps(o, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
             for o in objs]
    path = put(folder, "objs.jsonl", (b"\r\n" if crlf else b"\n").join(lines))
    used = ("id", "text", "lang", "article") if context else ("id", "text", "lang")
    items = drain(path, default_lang="en", context_fields=used[3:])
    assert items is not None
    assert len(items) == len(objs)
    seen: set[str] = set()
    for obj, item in zip(objs, items, strict=True):
        given_id = obj.get("id")
        own = (str(given_id) if isinstance(given_id, str | int) and not isinstance(
            given_id, bool) and given_id != "" and not _bad_string(str(given_id)) else None)
        if isinstance(item, Record):
            assert not _bad_string(obj.get("text")) and not _bad_lang(obj.get("lang"))
            assert item.text == obj["text"]
            if context:
                assert not _bad_string(obj.get("article"))
                assert dict(item.context or {}) == {"article": obj["article"]}
            assert dict(item.fields) == {_clean(k): _clean(v) for k, v in obj.items()
                                         if k not in used}
            if own is not None:
                assert item.id == own and own not in seen
        else:
            assert isinstance(item, InputError)
            if item.code == "bad_utf8":  # a raw surrogate written as UTF-8 bytes
                assert not ensure_ascii
                assert any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(obj, ensure_ascii=False))
            else:
                assert item.field in used, item
                bad = {"id": given_id not in (None, "") and (own is None or own in seen),
                       "text": _bad_string(obj.get("text")),
                       "article": _bad_string(obj.get("article")),
                       "lang": _bad_lang(obj.get("lang"))}
                assert bad[item.field], (item, obj)
                if item.record_id is not None:
                    assert item.record_id == own and own not in seen
        if own is not None and (isinstance(item, Record) or item.record_id == own):
            seen.add(own)


@PROPS
@given(depth=st.integers(1, 3 * MAX_DEPTH), kinds=st.lists(st.booleans(), min_size=1))
@example(depth=MAX_DEPTH - 1, kinds=[True])
@example(depth=MAX_DEPTH, kinds=[False])
def test_nesting_is_read_to_the_limit_and_rejected_past_it(folder: Path, depth: int,
                                                           kinds: list[bool]) -> None:
    value: Any = 1
    for level in range(depth):
        value = [value] if kinds[level % len(kinds)] else {"k": value}
    line = json.dumps({"text": "t", "lang": "en", "deep": value})
    [item] = drain(put(folder, "deep.jsonl", line.encode()))  # type: ignore[misc]
    # The record object is level 1, so its field may nest MAX_DEPTH - 1 more.
    assert isinstance(item, Record) == (depth <= MAX_DEPTH - 1)
    if isinstance(item, InputError):
        assert item.code == "too_deep"


@PROPS
@given(rows=st.lists(st.text(st.sampled_from('ab é,"\t\n\r\x00'), max_size=30), max_size=12),
       header=st.sampled_from(["text", "text,lang", "id,text,lang", "lang,text,article"]),
       junk=st.lists(st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=3)),
                     max_size=3),
       limit=limits)
def test_any_csv_gives_records_or_located_errors(folder: Path, rows: list[str], header: str,
                                                 junk: list[tuple[int, bytes]],
                                                 limit: int) -> None:
    data = bytearray((header + "\n" + "\n".join(rows)).encode())
    for at, raw in junk:
        data[at:at] = raw
    items = drain(put(folder, "rows.csv", bytes(data)), default_lang="en",
                  max_record_bytes=limit)
    if items is not None:
        check_lines_unique(items)


# -- compressed files, cut and corrupted ---------------------------------------------

ORIGINAL = [{"id": f"r{i}", "text": f"record {i}: " + "lorem ipsum " * (i % 7 + 1),
             "lang": "en"} for i in range(60)]
PLAIN = b"".join(json.dumps(r).encode() + b"\n" for r in ORIGINAL)


def _gzip_in_pieces(data: bytes) -> bytes:
    """A gzip stream flushed every 600 bytes, so a cut anywhere leaves whole blocks before it."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        for start in range(0, len(data), 600):
            f.write(data[start:start + 600])
            f.flush()
    return out.getvalue()


COMPRESSED: dict[str, Callable[[bytes], bytes]] = {
    ".gz": _gzip_in_pieces, ".bz2": bz2.compress, ".xz": lzma.compress}


def _ids(items: list[Record | InputError]) -> list[str]:
    return [r.id for r in items if isinstance(r, Record)]


@pytest.mark.parametrize("suffix", list(COMPRESSED))
def test_a_compressed_file_cut_anywhere_gives_a_prefix_then_one_error(
        folder: Path, suffix: str) -> None:
    data = COMPRESSED[suffix](PLAIN)
    every = [r["id"] for r in ORIGINAL]
    step = 1 if suffix == ".gz" else 5  # every offset of the gzip stream
    seen_partial = False
    for cut in range(0, len(data) + 1, step):
        items = drain(put(folder, "cut.jsonl" + suffix, data[:cut]))
        assert items is not None, cut
        check_lines_unique(items)
        *records, last = items or [None]
        if cut == len(data):
            assert _ids(items) == every
            continue
        if cut == 0:
            assert items == []  # an empty file is an empty input
            continue
        assert isinstance(last, InputError), cut
        assert last.code in ("truncated", "corrupt"), (cut, last)
        assert all(isinstance(r, Record) for r in records), cut
        assert _ids(items) == every[:len(records)], cut
        assert last.line == len(records) + 1
        seen_partial = seen_partial or 0 < len(records) < len(every)
    assert seen_partial or suffix == ".bz2"  # bzip2 decodes whole 100k blocks only


@pytest.mark.parametrize("suffix", list(COMPRESSED))
def test_a_corrupted_byte_never_changes_records_silently(folder: Path, suffix: str) -> None:
    data = COMPRESSED[suffix](PLAIN)
    every = _ids(drain(put(folder, "ok.jsonl" + suffix, data)) or [])
    assert len(every) == len(ORIGINAL)
    originals = {r["id"]: r["text"] for r in ORIGINAL}
    step = 1 if suffix == ".gz" else 3
    for at in range(0, len(data), step):
        broken = bytearray(data)
        broken[at] ^= 0x55
        items = drain(put(folder, "flip.jsonl" + suffix, bytes(broken)))
        if items is None:
            continue  # the signature itself was hit: refused at the call
        check_lines_unique(items)
        changed = [r for r in items if isinstance(r, Record) and originals.get(r.id) != r.text]
        damaged = [e for e in items if isinstance(e, InputError)]
        # Checksums catch what decompression does not: a change always comes with an error.
        assert damaged or (not changed and _ids(items) == every), at


@settings(deadline=None, max_examples=60)
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1,
                      max_size=4), cut=st.one_of(st.none(), st.integers(0, 10_000)))
def test_damaged_parquet_is_refused_at_the_call_or_read_to_the_damage(
        folder: Path, flips: list[tuple[int, int]], cut: int | None) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(300)],
                             "text": [f"text {i}" for i in range(300)],
                             "x": [float(i) for i in range(300)]}), buf, row_group_size=100)
    data = bytearray(buf.getvalue())
    assume(all(at < len(data) for at, _ in flips))
    for at, xor in flips:
        data[at] ^= xor
    items = drain(put(folder, "broken.parquet", bytes(data[:cut])), default_lang="en")
    if items is not None:
        check_lines_unique(items)
