"""Records and the one place a raw record (a mapping or a text) becomes a Record.

Every reader hands its raw records to :class:`Builder`, which checks the
fields the pipeline uses and cleans the ones it only carries, so the rules
below hold for every format:

- ``id``: a string or integer; a duplicate within the file, or one with an
  unpaired surrogate escape, is rejected. A record whose id is fine *claims*
  it even if another field rejects it: the reject is filed under that id
  (:attr:`~mlift.errors.InputError.record_id`), and a later record with the
  same id is a duplicate, so one id never ends in two places.
- ``text`` and context fields: non-empty strings of valid Unicode; an unpaired
  surrogate escape (``"\\ud800"``, which JSON allows and UTF-8 cannot encode)
  rejects the record, as the text is what the dataset is made of.
- ``lang``: missing or empty takes the default language; otherwise it must be
  a string (at most 64 characters) that :func:`mlift.langs.get_language`
  knows, or the record is rejected.
- other fields are carried to the output, cleaned so that any JSON writer can
  write them: unpaired surrogates in keys and strings become U+FFFD, NaN and
  ±Infinity (JSON extensions Python reads) become ``null``, values JSON has no
  type for (Parquet dates, bytes) become strings.

Messages never contain a raw surrogate (values are shown with ``repr``,
shortened), so writing a reject with ``ensure_ascii=False`` cannot fail.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlift.errors import InputError, UnknownNameError
from mlift.langs import get_language
from mlift.pipeline.sources.stream import Problem

_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_LANG_CHARS = 64
_LANG_MEMO_SIZE = 4096
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: ``line`` is 1-based (the row for Parquet), ``offset`` in bytes."""

    file: str
    line: int | None = None
    offset: int | None = None
    dataset: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "offset": self.offset,
                "dataset": self.dataset}


@dataclass(frozen=True, slots=True)
class Record:
    """One input item: the response ``text`` in language ``lang``, plus optional context.

    ``context`` maps a field name to its text for records from NLP datasets
    (the article of a summary, the passage and question of an answer); it is
    ``None`` for plain corpus text. ``fields`` keeps the record's other fields
    (license, url, …) to carry into the output. Records hash by id, lang,
    text and source.
    """

    id: str
    lang: str | None
    text: str
    context: Mapping[str, str] | None = field(default=None, hash=False)
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)
    source: Source = Source("<memory>")


def has_surrogate(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def show(value: object, limit: int = 60) -> str:
    """``repr`` of a value for a message, shortened (ids and languages can be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def safe(text: str) -> str:
    """``text`` with unpaired surrogates written as ``\\udXXX`` escapes: always encodable."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if has_surrogate(text) \
        else text


def utf8_problem(raw: bytes, e: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 (byte {raw[e.start]:#04x} at byte {e.start + 1} of the line)"


def shown_bytes(text: str) -> str:
    """Text decoded with surrogateescape (a file name, a key), its bad bytes shown as ``\\xNN``."""
    if not has_surrogate(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that was not a byte
        return safe(text)


class Builder:
    """Turns one raw record (a mapping or a text) into a Record or an InputError.

    ``escapes`` tells :meth:`from_mapping` that the raw record may hold
    surrogate escapes; readers pass ``False`` when it cannot (the line had no
    ``\\ud`` escape, or the format has no escapes), which skips those checks.
    """

    def __init__(self, file: str, dataset: str, text_field: str, id_field: str,
                 lang_field: str, context_fields: tuple[str, ...], default_lang: str | None,
                 seen_ids: set[int] | None = None):
        self.file, self.dataset = shown_bytes(file), shown_bytes(dataset)
        self.text_field, self.id_field, self.lang_field = text_field, id_field, lang_field
        self.context_fields, self.default_lang = context_fields, default_lang
        self.known = {text_field, id_field, lang_field, *context_fields}
        # Shared between the files of one run, so an id given twice is caught across files.
        self.seen_ids: set[int] = set() if seen_ids is None else seen_ids
        self._langs: dict[str, str | tuple[str, str]] = {}

    def error(self, message: str, line: int | None, field: str | None, code: str,
              record_id: str | None = None) -> InputError:
        return InputError(safe(message), file=self.file, line=line,
                          field=safe(field) if field is not None else None, code=code,
                          record_id=record_id)

    def problem(self, problem: Problem, line: int) -> InputError:
        return self.error(problem.message, line, None, problem.code)

    def decode(self, raw: bytes, line: int) -> str | InputError:
        """The line as text, without a leading byte-order mark; bad UTF-8 is an InputError.

        A first line starting with a UTF-16/32 byte-order mark gives code
        ``not_utf8``: the whole file is in another encoding, and readers stop.
        """
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            if line == 1 and raw.startswith(_UTF16_BOMS):
                return self.error("the file is UTF-16 or UTF-32 (it starts with that byte-order "
                                  "mark), not UTF-8; convert it, e.g. iconv -f UTF-16 -t UTF-8 "
                                  "IN > OUT", 1, None, "not_utf8")
            return self.error(utf8_problem(raw, e), line, None, "bad_utf8")
        # Any line, not only the first: files joined with `cat` keep each one's mark.
        return text[1:] if text.startswith("\ufeff") else text

    def source(self, line: int, offset: int | None) -> Source:
        return Source(self.file, line, offset, self.dataset)

    def generated_id(self, position: int) -> str:
        return hashlib.sha256(f"{self.dataset}:{position}".encode()).hexdigest()[:16]

    def claim_id(self, obj: Mapping[str, Any], line: int, *, escapes: bool = True,
                 ) -> str | InputError | None:
        """The record's own id, now taken; ``None`` if it has none (an id is generated)."""
        value = obj.get(self.id_field)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            return self.error(f"expected a string or integer id, got {type(value).__name__}",
                              line, self.id_field, "bad_type")
        given = str(value)
        if escapes and has_surrogate(given):
            return self.error(f"id {show(given)} contains an unpaired UTF-16 surrogate "
                              "(\\ud800-\\udfff), which no UTF-8 file can hold", line,
                              self.id_field, "bad_text")
        key = int.from_bytes(hashlib.blake2b(given.encode(), digest_size=8).digest())
        if key in self.seen_ids:
            return self.error(f"duplicate id {show(given)} (seen earlier in this run's input)",
                              line,
                              self.id_field, "duplicate_id")
        self.seen_ids.add(key)
        return given

    def _text(self, obj: Mapping[str, Any], name: str, line: int, escapes: bool,
              rid: str | None) -> str | InputError:
        value = obj.get(name)
        if value is None:
            return self.error("missing", line, name, "missing_field", rid)
        if not isinstance(value, str):
            return self.error(f"expected a string, got {type(value).__name__}", line, name,
                              "bad_type", rid)
        if not value.strip():
            return self.error("empty or whitespace-only text", line, name, "empty_text", rid)
        if escapes and has_surrogate(value):
            return self.error("contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), "
                              "which is not valid Unicode text", line, name, "bad_text", rid)
        return value

    def _lang(self, obj: Mapping[str, Any], line: int, escapes: bool,
              rid: str | None) -> str | InputError:
        value = obj.get(self.lang_field)
        if value is None or value == "":
            if self.default_lang is None:
                return self.error("missing, and no default language was given", line,
                                  self.lang_field, "missing_lang", rid)
            return self.default_lang
        if not isinstance(value, str):
            return self.error(f"expected a language code, got {type(value).__name__}", line,
                              self.lang_field, "bad_type", rid)
        if escapes and has_surrogate(value):
            return self.error(f"{show(value)} contains an unpaired UTF-16 surrogate "
                              "(\\ud800-\\udfff)", line, self.lang_field, "bad_text", rid)
        known = self._langs.get(value)
        if known is None:
            known = self._resolve(value)
            if len(self._langs) >= _LANG_MEMO_SIZE:
                self._langs.clear()
            self._langs[value] = known
        if isinstance(known, str):
            return known
        return self.error(known[0], line, self.lang_field, known[1], rid)

    @staticmethod
    def _resolve(value: str) -> str | tuple[str, str]:
        """A language code, or (message, code): memoised, as the miss path runs difflib."""
        if len(value) > _MAX_LANG_CHARS:
            return (f"{show(value)} is not a language code ({len(value):,} characters)",
                    "unknown_language")
        try:
            return get_language(value).code
        except UnknownNameError as e:
            return str(e).split(" Known:")[0], "unknown_language"

    def from_mapping(self, obj: Mapping[str, Any], line: int, offset: int | None, *,
                     escapes: bool = True) -> Record | InputError:
        rid = self.claim_id(obj, line, escapes=escapes)
        if isinstance(rid, InputError):
            return rid
        text = self._text(obj, self.text_field, line, escapes, rid)
        if isinstance(text, InputError):
            return text
        context: dict[str, str] | None = None
        if self.context_fields:
            context = {}
            for name in self.context_fields:
                value = self._text(obj, name, line, escapes, rid)
                if isinstance(value, InputError):
                    return value
                context[name] = value
        lang = self._lang(obj, line, escapes, rid)
        if isinstance(lang, InputError):
            return lang
        known = self.known
        extra = {(_clean_str(k) if escapes else k): plain(v, escapes)
                 for k, v in obj.items() if k not in known}
        return Record(rid if rid is not None else self.generated_id(line), lang, text, context,
                      extra, self.source(line, offset))

    def from_text(self, text: str, line: int, offset: int) -> Record:
        return Record(self.generated_id(line), self.default_lang, text, None, {},
                      self.source(line, offset))


def _clean_str(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)


def plain(value: Any, escapes: bool = True) -> Any:
    """``value`` as any JSON writer can write it (see the module docstring)."""
    if isinstance(value, str):
        return _clean_str(value) if escapes else value
    if value is None or isinstance(value, int):  # bool is an int
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [plain(v, escapes) for v in value]
    if isinstance(value, dict):
        return {_clean_str(str(k)): plain(v, escapes) for k, v in value.items()}
    return str(value)
