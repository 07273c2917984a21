"""Response selection (step 0): clean each record and keep it or reject it with a reason.

:class:`Selector` looks at records in stream order and returns, for each, the
normalised record or a :class:`Reject` carrying one reason code:

============== ============================================================
code           why
============== ============================================================
missing_lang   the record has no language (sources always set one)
unknown_language  its language is not in :mod:`mlift.langs`
empty_text     nothing left after normalisation
too_short      fewer characters than the language's band (or the override)
too_long       more characters than the band
context_too_long  the context needs more tokens than ``max_context_tokens``
wrong_script   under ``min_script_fraction`` (80 %) of the letters are in the
               language's script(s); the detail says which script dominates
duplicate      same normalised text as a kept record (detail: its id)
near_duplicate MinHash/LSH estimate of character-shingle Jaccard ≥ ~0.8 with
               a kept record (detail: its id)
wrong_language the language identifier names another language
============== ============================================================

**Normalisation.** NFC; ``\\r\\n`` and ``\\r`` become ``\\n``; control
characters other than newline and tab are removed (format characters such as
ZWNJ, which Indic scripts need, are kept); runs of spaces, tabs and no-break
spaces become one space (the ideographic space U+3000 is kept); spaces around
line breaks go and three or more line breaks become two. Context is cleaned
the same way.

**Near duplicates.** MinHash over the set of character shingles of the
case-folded text (5 characters; 3 for languages written in Han, kana or
Hangul), so Chinese and Japanese need no word segmentation. 128 seeded
permutations, split into the LSH bands and rows that minimise false
positives plus false negatives at the threshold (9 bands × 13 rows for 0.8).
A record whose band hash matches a kept record's is a near duplicate, with no
second check: at 0.8 a pair of true Jaccard 0.6 / 0.7 / 0.8 / 0.9 / 0.95 is
caught with probability 1 % / 8 % / 40 % / 93 % / 99.8 % (the S-curve
``1 - (1 - J**13)**9``); lower the threshold to catch more. Memory:
the exact index holds one dict entry (8-byte hash → id) per kept record and
the LSH index one per band per kept record (~10 entries, ≈0.7 KB per kept
record in CPython, ≈0.7 GB per million kept); turn ``near_dup`` off or split
the input for corpora much larger than that. Signatures are not stored.

**Language ID: py3langid.** Chosen by measurement on 10 hand-written
sentences per language in hi, mr, ne, bn, te, ja, es, en (each sentence,
3-word fragments, 4-sentence paragraphs), all libraries detecting among every
language they know:

=================== ======== ======== ========= ============ ============ ========
library              frag/80  sent/80  para/80   ms/sentence  ms/1.5k chr  install
=================== ======== ======== ========= ============ ============ ========
py3langid 0.4.0       74       80       80        0.22         1.5        4.5 MB + numpy
pycld2 0.42           76*      79       80        0.04         0.2        14 MB
langdetect 1.0.9      72       80       80        2.4          7.4        2.5 MB
langid 1.1.6          67       77       80        2.9          3.4        5 MB + numpy
lingua 2.1 (low acc)  55       68       70        0.55         2.9        96 MB
=================== ======== ======== ========= ============ ============ ========

(* pycld2 answers "unknown" on 4 fragments; lingua's high-accuracy mode
needs 1.3 GB of RAM and 12 s to load.) On the 120 sample paragraphs plus the
40 NLP-sample fields (avg 474 characters) py3langid got 157/160, pycld2
159, lingua 158, langdetect and langid 157; py3langid's three misses were
1-3 word QA answers labelled with a sibling (sa 0.73, ne 0.46, sa 0.66),
which the rule below accepts. pycld2 is faster, but it
labels plain Spanish as Galician with 98 % on a whole sentence and gives no
probabilities, so a confusable sibling cannot be told from a confident
verdict; lingua has no Nepali; gcld3 does not build. py3langid ships its model
in the wheel (no download at run time), is deterministic, gives calibrated
probabilities over 140 labels, and its errors on fragments are all
low-confidence siblings (hi→gom 0.29, mr→hi 0.41, mr→gom 0.40, ne→hi 0.46,
bn→as 0.61, es→ext 0.69). Loading the model takes ~1 s, once per process.
It reads UTF-8 bytes, so Indic text costs ~3x Latin per character (2.3 ms
for 500 Devanagari/Telugu characters); only the first ``lid_max_chars``
(1000) characters are identified. Per 500-character record the other checks
cost ~0.4 ms (MinHash) and ~0.3 ms (normalisation and script profile).

**The sibling rule.** A record is accepted when the identifier's top language
is its own; or when the top language is a listed confusable sibling of its
own (:attr:`mlift.langs.Language.siblings`: Hindi ↔ Marathi/Nepali/Konkani,
Spanish ↔ Portuguese/Galician, …) with probability below
``sibling_max_confidence`` (0.9), the script check having passed already; or
when the identifier does not know the language at all (then only the script
check applies). Everything else is ``wrong_language``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from mlift.errors import ConfigError, UnknownNameError
from mlift.langs import Language, get_language, script_profile
from mlift.pipeline.sources import Record
from mlift.tokens import approx_tokens

__all__ = ["REASONS", "LanguageIdentifier", "Reject", "SelectConfig", "Selector",
           "default_identifier", "normalize_text"]

REASONS = ("missing_lang", "unknown_language", "empty_text", "too_short", "too_long",
           "context_too_long", "wrong_script", "duplicate", "near_duplicate", "wrong_language")
"""Every reason code a :class:`Selector` gives, in the order the checks run."""

_CJK_SCRIPTS = frozenset({"Han", "Hiragana", "Katakana", "Hangul"})


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that left the pipeline at selection, with its reason code and detail."""

    code: str
    detail: str
    record: Record
    stage: str = "select"


@dataclass(frozen=True, slots=True)
class SelectConfig:
    """What the selector checks. ``min_chars``/``max_chars`` override every band;
    ``bands`` overrides per language code."""

    min_chars: int | None = None
    max_chars: int | None = None
    bands: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    dedup: bool = True
    near_dup: bool = True
    near_dup_threshold: float = 0.8
    num_perm: int = 128
    shingle_chars: int | None = None
    script_check: bool = True
    min_script_fraction: float = 0.8
    lang_id: bool = True
    sibling_max_confidence: float = 0.9
    lid_max_chars: int = 1000
    max_context_tokens: int | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        problems = [f"{name} must be positive, not {value}"
                    for name in ("min_chars", "max_chars", "max_context_tokens", "shingle_chars")
                    if (value := getattr(self, name)) is not None
                    and value < (0 if name == "min_chars" else 1)]
        problems += [f"{name} must be in (0, 1], not {value}"
                     for name in ("near_dup_threshold", "min_script_fraction",
                                  "sibling_max_confidence")
                     if not 0.0 < (value := getattr(self, name)) <= 1.0]
        if self.num_perm < 8 or self.lid_max_chars < 1:
            problems.append("num_perm must be ≥ 8 and lid_max_chars ≥ 1")
        for code, (lo, hi) in self.bands.items():
            if not 0 <= lo <= hi:
                problems.append(f"band for {code!r} must be 0 ≤ min ≤ max, not ({lo}, {hi})")
        if problems:
            raise ConfigError("selection config: " + "; ".join(problems))


class LanguageIdentifier(Protocol):
    """Ranks languages for a text: ``rank`` returns (code, probability) pairs, best first."""

    labels: frozenset[str]

    def rank(self, text: str) -> Sequence[tuple[str, float]]: ...


class _Py3LangId:
    """py3langid with normalised probabilities; its model ships inside the wheel."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.labels = frozenset(model.labels)

    def rank(self, text: str) -> Sequence[tuple[str, float]]:
        return [(code, float(p)) for code, p in self._model.rank(text)[:5]]


@lru_cache(maxsize=1)
def default_identifier() -> LanguageIdentifier:
    """The py3langid identifier, loaded once per process (~1 s).

    Raises :class:`~mlift.errors.ConfigError` naming the fix if py3langid is
    not installed.
    """
    try:
        # py3langid is untyped; import_module keeps mypy from needing stubs for it.
        langid = importlib.import_module("py3langid.langid")
    except ImportError:
        raise ConfigError("the language check needs py3langid: pip install py3langid "
                          "(or turn the check off with lang_id=False)") from None
    model = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)
    return _Py3LangId(model)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
_SPACES = re.compile("[^\\S\n\u3000]+")
_AROUND_NEWLINE = re.compile(" ?\n ?")
_BLANK_LINES = re.compile("\n{3,}")


def normalize_text(text: str) -> str:
    """NFC plus whitespace clean-up (see the module docstring); never changes the words."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = _CONTROL.sub("", text.replace("\u2029", "\n\n"))
    text = _AROUND_NEWLINE.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _text_key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())


@lru_cache(maxsize=8)
def _lsh_shape(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the false-positive plus false-negative area at ``threshold``."""
    s = np.linspace(0.0, 1.0, 1001)
    below = s < threshold
    best = (float("inf"), 1, 1)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands  # chance that some band matches at Jaccard s
            # Riemann sums of the false-positive area below and false-negative area above.
            err = float(np.where(below, p, 1.0 - p).sum()) / (len(s) - 1)
            if err < best[0]:
                best = (err, bands, rows)
    return best[1], best[2]


_ROLL = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the rolling shingle hash


def _mix64(x: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """MurmurHash3's 64-bit finaliser, so every bit of a shingle hash depends on every input bit.

    Array arithmetic wraps modulo 2**64 silently, which is what hashing wants.
    """
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _shingle_hashes(text: str, width: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """The distinct 32-bit hashes of the text's ``width``-character shingles, vectorised."""
    folded = " ".join(text.casefold().split())
    points = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    count = max(1, len(points) - width + 1)
    rolled = np.zeros(count, dtype=np.uint64)
    for j in range(min(width, len(points))):  # polynomial hash of each window, mod 2**64
        rolled = rolled * _ROLL + points[j:j + count]
    return np.unique(_mix64(rolled) >> np.uint64(32)).astype(np.uint32)


class _NearDupIndex:
    """MinHash signatures, LSH band buckets; stores band hashes only, never signatures.

    Permutation i is the multiply-shift hash ``a_i * x + b_i mod 2**32`` (odd
    ``a_i``) of the well-mixed shingle hash ``x``. Over the sample texts its
    Jaccard estimates were unbiased (mean error -0.003, sd 0.033 at 128
    permutations, the binomial limit). Plain affine hashes of unmixed 32-bit
    CRCs were not: they inflated a 0.61 Jaccard to 0.84.
    """

    def __init__(self, threshold: float, num_perm: int, seed: int) -> None:
        self.bands, self.rows = _lsh_shape(threshold, num_perm)
        rng = np.random.default_rng(seed)
        top = np.iinfo(np.uint32).max
        self._a = rng.integers(0, top, size=(num_perm, 1), dtype=np.uint32, endpoint=True)
        self._a |= np.uint32(1)
        self._b = rng.integers(0, top, size=(num_perm, 1), dtype=np.uint32, endpoint=True)
        self._buckets: dict[int, str] = {}

    def keys(self, text: str, width: int) -> list[int]:
        signature = (_shingle_hashes(text, width) * self._a + self._b).min(axis=1)
        r = self.rows
        return [int.from_bytes(hashlib.blake2b(signature[i * r:(i + 1) * r].tobytes(),
                                               digest_size=8, salt=i.to_bytes(2)).digest())
                for i in range(self.bands)]

    def find(self, keys: Iterable[int]) -> str | None:
        return next((self._buckets[k] for k in keys if k in self._buckets), None)

    def add(self, keys: Iterable[int], record_id: str) -> None:
        for k in keys:
            self._buckets.setdefault(k, record_id)

    def __len__(self) -> int:
        return len(self._buckets)


class Selector:
    """Applies step 0 to records in stream order; keeps funnel counts per reason code.

    ``identify`` replaces the default py3langid identifier; ``count_tokens``
    the token estimate used for ``max_context_tokens`` (default
    :func:`mlift.tokens.approx_tokens`). Not thread-safe: one selector per stream.
    """

    def __init__(self, config: SelectConfig | None = None, *,
                 identify: LanguageIdentifier | None = None,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.config = config or SelectConfig()
        if self.config.lang_id and identify is None:
            identify = default_identifier()
        self._identify = identify
        self._count_tokens = count_tokens or approx_tokens
        self._counts: Counter[str] = Counter()
        self._exact: dict[int, str] = {}
        self._near = (_NearDupIndex(self.config.near_dup_threshold, self.config.num_perm,
                                    self.config.seed) if self.config.near_dup else None)

    @property
    def identifier(self) -> LanguageIdentifier | None:
        """The language identifier in use (None with ``lang_id=False``), for later stages."""
        return self._identify

    def counts(self) -> dict[str, int]:
        """``seen``, ``kept`` and the count of every reason code (zeros included)."""
        return {"seen": self._counts["seen"], "kept": self._counts["kept"],
                **{code: self._counts[code] for code in REASONS}}

    def select_all(self, records: Iterable[Record]) -> Iterator[Record | Reject]:
        return (self.select(r) for r in records)

    def select(self, record: Record) -> Record | Reject:
        """The cleaned record, or a :class:`Reject` saying why it was dropped."""
        self._counts["seen"] += 1
        outcome = self._check(record)
        self._counts[outcome.code if isinstance(outcome, Reject) else "kept"] += 1
        return outcome

    def _check(self, record: Record) -> Record | Reject:
        cfg = self.config
        if not record.lang:
            return Reject("missing_lang", "the record has no language", record)
        try:
            lang = get_language(record.lang)
        except UnknownNameError as e:
            return Reject("unknown_language", str(e).split(" Known:")[0], record)
        text = normalize_text(record.text)
        context = ({k: normalize_text(v) for k, v in record.context.items()}
                   if record.context is not None else None)
        if not text:
            return Reject("empty_text", "nothing left after normalisation", record)
        lo, hi = cfg.bands.get(lang.code, lang.band)
        if context:
            # A response to a context may be short and natural ("En 1982."): no minimum.
            lo = 1
        lo, hi = cfg.min_chars if cfg.min_chars is not None else lo, cfg.max_chars or hi
        if len(text) < lo:
            return Reject("too_short", f"{len(text)} characters, {lang.code} minimum {lo}",
                          record)
        if len(text) > hi:
            return Reject("too_long", f"{len(text)} characters, {lang.code} maximum {hi}",
                          record)
        if context and cfg.max_context_tokens is not None:
            tokens = sum(self._count_tokens(v) for v in context.values())
            if tokens > cfg.max_context_tokens:
                return Reject("context_too_long",
                              f"context ~{tokens} tokens, budget {cfg.max_context_tokens}",
                              record)
        # With a context, the record is the (context, response) pair: checks of
        # script, language and duplication look at both (two QA items may share
        # the answer "1982." and still be different items).
        probe = text if not context else "\n".join([*context.values(), text])
        if cfg.script_check and (detail := self._wrong_script(probe, lang)):
            return Reject("wrong_script", detail, record)
        key = _text_key(probe)
        if cfg.dedup and key in self._exact:
            return Reject("duplicate", f"same text as {self._exact[key]}", record)
        keys: list[int] = []
        if self._near is not None:
            width = cfg.shingle_chars or (3 if _CJK_SCRIPTS & set(lang.scripts) else 5)
            keys = self._near.keys(probe, width)
            if (other := self._near.find(keys)) is not None:
                return Reject("near_duplicate", f"near duplicate of {other}", record)
        if self._identify is not None and (detail := self._wrong_language(probe, lang)):
            return Reject("wrong_language", detail, record)
        if cfg.dedup:
            self._exact[key] = record.id
        if self._near is not None:
            self._near.add(keys, record.id)
        return dataclasses.replace(record, lang=lang.code, text=text, context=context)

    def _wrong_script(self, text: str, lang: Language) -> str | None:
        profile = script_profile(text)
        if not profile:
            return "no letters"
        share = sum(profile.get(s, 0.0) for s in lang.scripts)
        if share >= self.config.min_script_fraction:
            return None
        top, top_share = next(iter(profile.items()))
        return (f"{share:.0%} of letters in {'+'.join(lang.scripts)} (needs "
                f"{self.config.min_script_fraction:.0%}); mostly {top} ({top_share:.0%})")

    def _wrong_language(self, text: str, lang: Language) -> str | None:
        assert self._identify is not None
        if lang.code not in self._identify.labels:
            return None  # the identifier cannot tell this language; the script check stands
        ranking = self._identify.rank(text[:self.config.lid_max_chars])
        if not ranking:
            return None
        top, p = ranking[0]
        if top == lang.code or top == "zxx":  # zxx: "no linguistic content", no verdict
            return None
        if top in lang.siblings and p < self.config.sibling_max_confidence:
            return None
        return f"detected {top} ({p:.2f}), expected {lang.code}"
