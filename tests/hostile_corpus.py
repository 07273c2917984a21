"""A corpus of hostile input files, generated (nothing binary is committed).

``build(folder)`` writes 48 files a run must get through record by record
(each mixes good records with one kind of damage) and 7 it must refuse as a
whole before sending anything. Used by tests/test_hostile_corpus.py; to look
at the files by hand::

    python tests/hostile_corpus.py /tmp/hostile
    mlift run /tmp/hostile/inputs/* --lang en --out /tmp/hostile-run --provider sim:default

Good records are English word salad, different enough that deduplication
keeps them; every id is unique across the corpus (prefixed by its file), so
the run's bookkeeping is exercised by the damage alone.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LONG = 16 * 1024 * 1024 + 1  # one byte past the maximum record size

_VOCABULARY = ("river morning garden window village market teacher student winter summer bridge "
         "mountain kitchen library doctor farmer evening letter coffee bread music story "
         "harbour forest ticket station weather island country number history science "
         "engine painting journey silver yellow quiet gentle careful honest simple famous "
         "ancient modern early later often never always slowly quickly together beyond "
         "around between during carry build write answer follow remember explain travel "
         "listen choose happen believe people family friend neighbour children stranger "
         "captain writer sailor baker")
WORDS = _VOCABULARY.split()

SAMPLES_BAD = Path(__file__).resolve().parent.parent / "samples" / "bad" / "mixed.jsonl"


@dataclass
class Corpus:
    inputs: list[Path] = field(default_factory=list)
    # Whole-file problems: (file, text the error must contain).
    refused: list[tuple[Path, str]] = field(default_factory=list)
    # Readable records with a bad field: their own id -> the reject code expected.
    own_id_rejects: dict[str, str] = field(default_factory=dict)


class _Writer:
    def __init__(self, folder: Path) -> None:
        self.inputs = folder / "inputs"
        self.refused = folder / "refused"
        self.inputs.mkdir(parents=True, exist_ok=True)
        self.refused.mkdir(parents=True, exist_ok=True)
        self.corpus = Corpus()
        self.rng = random.Random(12)

    def text(self) -> str:
        words = [self.rng.choice(WORDS) for _ in range(self.rng.randint(30, 45))]
        return " ".join(words).capitalize() + "."

    def good(self, stem: str, n: int, **extra: Any) -> dict[str, Any]:
        return {"id": f"{stem}-{n}", "text": self.text(), "lang": "en", **extra}

    def line(self, obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode()

    def put(self, name: str, data: bytes) -> Path:
        path = self.inputs / name
        path.write_bytes(data)
        self.corpus.inputs.append(path)
        return path

    def lines(self, name: str, *parts: bytes | dict[str, Any], end: bytes = b"\n") -> Path:
        raw = [p if isinstance(p, bytes) else self.line(p) for p in parts]
        return self.put(name, b"".join(r + end for r in raw))

    def goods(self, stem: str, count: int = 2) -> list[bytes]:
        return [self.line(self.good(stem, n)) for n in range(count)]

    def own(self, record_id: str, code: str) -> str:
        self.corpus.own_id_rejects[record_id] = code
        return record_id

    def refuse(self, name: str, data: bytes, match: str) -> None:
        path = self.refused / name
        path.write_bytes(data)
        self.corpus.refused.append((path, match))


def _nest(depth: int) -> str:
    return "[" * depth + "]" * depth


def _gzip_pieces(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as f:
        for start in range(0, len(data), 400):
            f.write(data[start:start + 400])
            f.flush()
    return out.getvalue()


def _jsonl(w: _Writer) -> None:
    g = w.goods
    w.lines("deep_array.jsonl", *g("deep_array"), (
        '{"id": "deep_array-x", "text": "t", "deep": ' + _nest(100_000) + "}").encode())
    w.lines("deep_object.jsonl", *g("deep_object"),
            ('{"a": ' * 50_000 + "1" + "}" * 50_000).encode())
    ok = w.good("depth_limit", 9)
    w.lines("depth_limit.jsonl", *g("depth_limit"),
            json.dumps({**ok, "x": json.loads(_nest(63))}).encode(),
            json.dumps({**w.good("depth_limit", 10), "id": w.own("depth_limit-deep", "too_deep"),
                        "x": json.loads(_nest(64))}).encode())
    w.lines("surrogate_id.jsonl", *g("surrogate_id"),
            b'{"id": "sid-\\ud800", "text": "' + w.text().encode() + b'", "lang": "en"}')
    w.lines("surrogate_text.jsonl", *g("surrogate_text"),
            b'{"id": "' + w.own("surrogate_text-x", "bad_text").encode()
            + b'", "text": "broken \\udc00 text", "lang": "en"}')
    w.lines("surrogate_lang.jsonl", *g("surrogate_lang"),
            b'{"id": "' + w.own("surrogate_lang-x", "bad_text").encode()
            + b'", "text": "' + w.text().encode() + b'", "lang": "e\\ud800n"}')
    w.lines("surrogate_carried.jsonl", *g("surrogate_carried"),
            b'{"id": "surrogate_carried-x", "text": "' + w.text().encode()
            + b'", "lang": "en", "url\\udfff": "http://x/\\ud800", "tags": [["\\udbff"]]}')
    w.lines("surrogate_pairs.jsonl", *g("surrogate_pairs"),
            b'{"id": "surrogate_pairs-\\ud83d\\ude00", "text": "' + w.text().encode()
            + b' \\ud83d\\ude00", "lang": "en"}')
    w.lines("huge_numbers.jsonl", *g("huge_numbers"),
            b'{"id": "huge_numbers-x", "text": "t", "n": 1' + b"0" * 5_000 + b"}",
            w.line({**w.good("huge_numbers", 7), "big": int("9" * 4_000)}),
            b'{"id": "huge_numbers-8", "text": "' + w.text().encode() + b'", "lang": "en", '
            b'"tiny": 1e-999, "huge": 1e999}')
    w.lines("nan_inf.jsonl", *g("nan_inf"),
            b'{"id": "nan_inf-x", "text": "' + w.text().encode()
            + b'", "lang": "en", "a": NaN, "b": [Infinity, -Infinity]}')
    w.lines("bad_fields.jsonl", *g("bad_fields"),
            {"id": w.own("bad_fields-empty", "empty_text"), "text": "", "lang": "en"},
            {"id": w.own("bad_fields-number", "bad_type"), "text": 42, "lang": "en"},
            {"id": w.own("bad_fields-none", "missing_field"), "lang": "en"},
            {"id": w.own("bad_fields-null", "missing_field"), "text": None},
            {"id": w.own("bad_fields-list", "bad_type"), "text": ["a"]},
            {"id": w.own("bad_fields-lang", "bad_type"), "text": w.text(), "lang": 7},
            {"id": w.own("bad_fields-klingon", "unknown_language"), "text": w.text(),
             "lang": "klingon"},
            {"id": 12345, "text": w.text(), "lang": "en"})
    w.lines("invalid_utf8.jsonl", *g("invalid_utf8"),
            b'{"id": "' + w.own("invalid_utf8-x", "bad_utf8").encode()
            + b'", "text": "caf\xe9 au lait", "lang": "en"}',
            b'{"id": "invalid_utf8-\xff", "text": "t", "lang": "en"}',
            b'{"id": "' + w.own("invalid_utf8-k", "bad_utf8").encode()
            + b'", "text": "t", "lang": "en", "k\xc3": 1}')
    w.lines("nul_bytes.jsonl", *g("nul_bytes"), b'{"text": "raw \x00 nul", "lang": "en"}',
            w.line({**w.good("nul_bytes", 5), "text": "escaped \x00 nul " + w.text()}))
    bom = "\ufeff".encode()
    w.lines("bom_first.jsonl", bom + g("bom_first", 1)[0], *g("bom_first", 3)[1:])
    w.lines("bom_every_line.jsonl", *(bom + x for x in g("bom_every_line", 3)))
    w.put("utf16.jsonl", b"".join(x + b"\n" for x in g("utf16")).decode().encode("utf-16"))
    w.lines("crlf.jsonl", *g("crlf", 3), end=b"\r\n")
    w.lines("cr_only.jsonl", *g("cr_only", 3), end=b"\r")
    w.lines("long_line.jsonl", *g("long_line"),
            b'{"id": "long_line-x", "text": "' + b"x" * LONG + b'"}', w.line(w.good("long", 9)))
    w.put("array.json", json.dumps([w.good("array", 0), w.good("array", 1)], indent=2).encode())
    w.lines("not_objects.jsonl", *g("not_objects"), b"[1, 2]", b'"a string"', b"42",
            b"null", b"true", b"{}")
    w.put("torn_last_line.jsonl", b"\n".join(g("torn_last_line")) + b'\n{"id": "torn", "te')
    w.put("empty.jsonl", b"")
    w.put("blank_only.jsonl", b"\n  \n\t\r\n\n")
    w.put("binary_junk.jsonl", random.Random(7).randbytes(4096))
    w.lines("dup_ids.jsonl", *g("dup_ids"), w.line(w.good("dup_ids", 0)),
            {"id": w.own("dup_ids-claimed", "empty_text"), "text": "", "lang": "en"},
            w.line({**w.good("dup_ids", 5), "id": "dup_ids-claimed"}))
    w.lines("weird_ids.jsonl", *g("weird_ids"),
            {"id": 9876543210123, "text": w.text(), "lang": "en"},
            {"id": True, "text": w.text(), "lang": "en"},
            {"id": 1.5, "text": w.text(), "lang": "en"},
            {"id": ["weird"], "text": w.text(), "lang": "en"},
            {"id": "weird_ids-" + "z" * 10_000, "text": w.text(), "lang": "en"},
            {"id": "weird_ids-\n\t\x01", "text": w.text(), "lang": "en"},
            {"id": "  ", "text": w.text(), "lang": "en"})
    w.lines("controls.jsonl", *g("controls"),
            {"id": "controls-zw", "text": "\u200b\u200d\u2066" + w.text() + "\u202e", "lang": "en"},
            {"id": "controls-marks", "text": "\u0301\u0301\u0301", "lang": "en"},
            {"id": "controls-c1", "text": "\x85\x9f\x07" + w.text(), "lang": "en"})
    w.lines("lang_weird.jsonl", *g("lang_weird"),
            {"id": "lang_weird-empty", "text": w.text(), "lang": ""},
            {"id": "lang_weird-upper", "text": w.text(), "lang": "EN"},
            {"id": "lang_weird-region", "text": w.text(), "lang": "en_GB"},
            {"id": w.own("lang_weird-huge", "unknown_language"), "text": w.text(),
             "lang": "x" * 1_000_000})
    gz = _gzip_pieces(b"\n".join(g("truncated_gz", 30)) + b"\n")
    w.put("truncated.jsonl.gz", gz[: len(gz) // 2])
    corrupt = bytearray(_gzip_pieces(b"\n".join(g("corrupt_gz", 30)) + b"\n"))
    corrupt[len(corrupt) // 2] ^= 0x55
    w.put("corrupt.jsonl.gz", bytes(corrupt))
    w.put("trailing_garbage.jsonl.gz", gzip.compress(b"\n".join(g("trailing_gz")) + b"\n")
          + b"not gzip")
    w.put("truncated.jsonl.bz2", bz2.compress(b"\n".join(g("truncated_bz2")) + b"\n")[:-10])
    xz = lzma.compress(b"\n".join(g("truncated_xz", 20)) + b"\n")
    w.put("truncated.jsonl.xz", xz[: len(xz) * 2 // 3])
    w.put("good.jsonl.gz", gzip.compress(b"\n".join(g("good_gz")) + b"\n"))
    shutil.copy(SAMPLES_BAD, w.inputs / "samples_bad_mixed.jsonl")
    w.corpus.inputs.append(w.inputs / "samples_bad_mixed.jsonl")


def _text(w: _Writer) -> None:
    bom = "\ufeff".encode()
    w.put("lines.txt", bom + w.text().encode() + b"\r\n\r\n" + b"bad \xff byte\n"
          + b"nul \x00 " + w.text().encode() + b"\n" + bom + w.text().encode() + b"\n")
    w.put("long_line.txt", w.text().encode() + b"\n" + b"y" * LONG + b"\n"
          + w.text().encode() + b"\n")
    txt = _gzip_pieces(b"".join(w.text().encode() + b"\n" for _ in range(20)))
    w.put("truncated.txt.gz", txt[: len(txt) // 2])
    w.put("utf16.txt", (w.text() + "\n" + w.text() + "\n").encode("utf-16"))


def _csv(w: _Writer) -> None:
    t = w.text
    w.put("ragged.csv", (
        "id,text,lang,license\n"
        f"ragged-1,{t()},en,cc0\n"
        f'ragged-2,"{t()}, with ""quotes""\nand a newline",en,cc0\n'
        "ragged-3\n"
        f"ragged-4,{t()},en,cc0,extra,cells\n"
        f"ragged-5,{t()}\n").encode())
    w.corpus.own_id_rejects["ragged-3"] = "missing_field"
    w.put("unterminated.csv", (f'id,text,lang\nunterminated-1,{t()},en\n'
                               f'unterminated-2,"{t()},en\nunterminated-3,{t()},en\n').encode())
    w.put("huge_field.csv", b"id,text,lang\n" + f"huge_field-1,{t()},en\n".encode()
          + b"huge_field-2," + b"w " * 500_000 + b",en\n"
          + b'huge_field-3,"' + (b"v" * (1 << 20) + b"\n") * 17 + b'",en\n'
          + f"huge_field-4,{t()},en\n".encode())
    w.put("bad_utf8.csv", (b"id,text,lang\n" + f"bad_utf8-1,{t()},en\n".encode()
                           + b"bad_utf8-2,caf\xe9,en\n" + f"bad_utf8-3,{t()},en\n".encode()))
    w.put("nul.csv", f"id,text,lang\nnul-1,{t()}\x00,en\nnul-2,{t()},en\n".encode())
    w.put("crlf_bom.tsv", "\ufeffid\ttext\tlang\r\n".encode()
          + f"crlf_bom-1\t{t()}\ten\r\ncrlf_bom-2\t{t()}\ten\r\n".encode())
    rows = "".join(f"truncated_csv-{n},{t()},en\n" for n in range(25))
    gz = _gzip_pieces(("id,text,lang\n" + rows).encode())
    w.put("truncated.csv.gz", gz[: len(gz) * 2 // 3])


def _parquet(w: _Writer) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pyarrow is optional; the other 47 files still run
        return
    path = w.inputs / "mixed.parquet"
    table = pa.table({
        "id": ["parquet-1", "parquet-2", "parquet-3", "parquet-4", None],
        "text": [w.text(), "", None, w.text(), w.text()],
        "lang": ["en", "en", "en", "xx", None],
        "score": [float("nan"), 1.0, float("inf"), 2.0, None],
        "raw": [b"\x00\xff", b"", None, b"x", b"y"],
        "nested": [{"a": [1.0, float("nan")]}, None, {"a": []}, {"a": [2.0]}, None]})
    pq.write_table(table, path, row_group_size=2)
    w.corpus.inputs.append(path)
    w.corpus.own_id_rejects.update({"parquet-2": "empty_text", "parquet-3": "missing_field",
                                    "parquet-4": "unknown_language"})


def _refused(w: _Writer) -> None:
    w.refuse("not_parquet.parquet", b"PAR1" + random.Random(3).randbytes(300),
             "not a readable Parquet file")
    w.refuse("empty.parquet", b"", "not a readable Parquet file")
    w.refuse("no_text_column.csv", b"id,body\n1,hello\n", "no column 'text'")
    w.refuse("utf16_header.csv", "text,lang\nx,en\n".encode("utf-16"), "UTF-16")
    w.refuse("fake.jsonl.gz", b'{"text": "not compressed"}\n', "not a gzip file")
    w.refuse("archive.jsonl.zst", b"(\xb5/\xfd\x00", "zstd -d")
    w.refuse("data.xml", b"<x/>", "cannot tell the input format")


def build(folder: Path) -> Corpus:
    w = _Writer(folder)
    _jsonl(w)
    _text(w)
    _csv(w)
    _parquet(w)
    _refused(w)
    return w.corpus


if __name__ == "__main__":
    corpus = build(Path(sys.argv[1]))
    print(f"{len(corpus.inputs)} inputs, {len(corpus.refused)} refused files in {sys.argv[1]}")
