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

from mlift.errors import ConfigError, UnknownNameError
from mlift.langs import Language, get_language, script_profile
from mlift.pipeline.minhash import MinHasher, NearDupIndex
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


@dataclass(frozen=True, slots=True)
class Analysis:
    """What selection learns of one record without looking at any other.

    Pure given the config, so it can be computed in another process; the
    decisions that compare records (duplicates) are :meth:`Selector.decide`'s.
    ``record`` is the cleaned record (the original when ``reject`` is set);
    rejects always carry ``original``, the record as it was read.
    """

    record: Record
    original: Record
    reject: Reject | None = None
    key: int = 0
    bands: tuple[int, ...] = ()
    wrong_language: str | None = None


def pack(a: Analysis) -> tuple[Any, ...]:
    """An analysis without the record it came from (the receiving side has that)."""
    if a.reject is not None:
        return ("r", a.reject.code, a.reject.detail)
    r, o = a.record, a.original
    return ("k", r.lang, None if r.text == o.text else r.text,
            None if r.context == o.context else r.context, a.key, a.bands, a.wrong_language)


def unpack(packed: tuple[Any, ...], original: Record) -> Analysis:
    """The analysis :func:`pack` reduced, for ``original``."""
    if packed[0] == "r":
        return Analysis(original, original, Reject(packed[1], packed[2], original))
    _, lang, text, context, key, bands, wrong = packed
    cleaned = dataclasses.replace(original, lang=lang,
                                  text=original.text if text is None else text,
                                  context=original.context if context is None else context)
    return Analysis(cleaned, original, None, key, bands, wrong)


class Analyser:
    """The per-record checks of step 0: clean, band, context budget, script, keys, language ID."""

    def __init__(self, config: SelectConfig, *, identify: LanguageIdentifier | None = None,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.config = config
        if config.lang_id and identify is None:
            identify = default_identifier()
        self.identify = identify
        self._count_tokens = count_tokens or approx_tokens
        self._hasher = (MinHasher(config.near_dup_threshold, config.num_perm, config.seed)
                        if config.near_dup else None)

    @property
    def near_dup(self) -> bool:
        return self._hasher is not None

    def analyse(self, record: Record) -> Analysis:
        cfg = self.config

        def reject(code: str, detail: str) -> Analysis:
            return Analysis(record, record, Reject(code, detail, record))

        if not record.lang:
            return reject("missing_lang", "the record has no language")
        try:
            lang = get_language(record.lang)
        except UnknownNameError as e:
            return reject("unknown_language", str(e).split(" Known:")[0])
        text = normalize_text(record.text)
        context = ({k: normalize_text(v) for k, v in record.context.items()}
                   if record.context is not None else None)
        if not text:
            return reject("empty_text", "nothing left after normalisation")
        lo, hi = cfg.bands.get(lang.code, lang.band)
        if context:
            # A response to a context may be short and natural ("En 1982."): no minimum.
            lo = 1
        lo, hi = cfg.min_chars if cfg.min_chars is not None else lo, cfg.max_chars or hi
        if len(text) < lo:
            return reject("too_short", f"{len(text)} characters, {lang.code} minimum {lo}")
        if len(text) > hi:
            return reject("too_long", f"{len(text)} characters, {lang.code} maximum {hi}")
        if context and cfg.max_context_tokens is not None:
            tokens = sum(self._count_tokens(v) for v in context.values())
            if tokens > cfg.max_context_tokens:
                return reject("context_too_long",
                              f"context ~{tokens} tokens, budget {cfg.max_context_tokens}")
        # With a context, the record is the (context, response) pair: checks of
        # script, language and duplication look at both (two QA items may share
        # the answer "1982." and still be different items).
        probe = text if not context else "\n".join([*context.values(), text])
        if cfg.script_check and (detail := self._wrong_script(probe, lang)):
            return reject("wrong_script", detail)
        bands: tuple[int, ...] = ()
        if self._hasher is not None:
            width = cfg.shingle_chars or (3 if _CJK_SCRIPTS & set(lang.scripts) else 5)
            bands = tuple(self._hasher.keys(probe, width))
        wrong = self._wrong_language(probe, lang) if self.identify is not None else None
        cleaned = dataclasses.replace(record, lang=lang.code, text=text, context=context)
        return Analysis(cleaned, record, None, _text_key(probe), bands, wrong)

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
        assert self.identify is not None
        if lang.code not in self.identify.labels:
            return None  # the identifier cannot tell this language; the script check stands
        ranking = self.identify.rank(text[:self.config.lid_max_chars])
        if not ranking:
            return None
        top, p = ranking[0]
        if top == lang.code or top == "zxx":  # zxx: "no linguistic content", no verdict
            return None
        if top in lang.siblings and p < self.config.sibling_max_confidence:
            return None
        return f"detected {top} ({p:.2f}), expected {lang.code}"


class Selector:
    """Applies step 0 to records in stream order; keeps funnel counts per reason code.

    ``select(record)`` = ``decide(analyse(record))``: the per-record analysis
    (:class:`Analyser`) may also be computed elsewhere — in a process pool,
    :mod:`mlift.pipeline.parallel` — and handed to :meth:`decide` in input order,
    which makes the same decisions. ``identify`` replaces the default
    py3langid identifier; ``count_tokens`` the token estimate used for
    ``max_context_tokens`` (default :func:`mlift.tokens.approx_tokens`). Not
    thread-safe: one selector per stream.
    """

    def __init__(self, config: SelectConfig | None = None, *,
                 identify: LanguageIdentifier | None = None,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.config = config or SelectConfig()
        self.analyser = Analyser(self.config, identify=identify, count_tokens=count_tokens)
        self.custom = identify is not None or count_tokens is not None
        self._counts: Counter[str] = Counter()
        self._exact: dict[int, str] = {}
        self._near = NearDupIndex() if self.analyser.near_dup else None

    @property
    def identifier(self) -> LanguageIdentifier | None:
        """The language identifier in use (None with ``lang_id=False``), for later stages."""
        return self.analyser.identify

    def counts(self) -> dict[str, int]:
        """``seen``, ``kept`` and the count of every reason code (zeros included)."""
        return {"seen": self._counts["seen"], "kept": self._counts["kept"],
                **{code: self._counts[code] for code in REASONS}}

    def select_all(self, records: Iterable[Record]) -> Iterator[Record | Reject]:
        return (self.select(r) for r in records)

    def select(self, record: Record) -> Record | Reject:
        """The cleaned record, or a :class:`Reject` saying why it was dropped."""
        return self.decide(self.analyser.analyse(record))

    def decide(self, analysis: Analysis) -> Record | Reject:
        """The decision for the next record in stream order, given its analysis."""
        self._counts["seen"] += 1
        outcome = self._decide(analysis)
        self._counts[outcome.code if isinstance(outcome, Reject) else "kept"] += 1
        return outcome

    def _decide(self, a: Analysis) -> Record | Reject:
        if a.reject is not None:
            return a.reject
        if self.config.dedup and a.key in self._exact:
            return Reject("duplicate", f"same text as {self._exact[a.key]}", a.original)
        if self._near is not None and (other := self._near.find(a.bands)) is not None:
            return Reject("near_duplicate", f"near duplicate of {other}", a.original)
        if a.wrong_language:
            return Reject("wrong_language", a.wrong_language, a.original)
        if self.config.dedup:
            self._exact[a.key] = a.record.id
        if self._near is not None:
            self._near.add(a.bands, a.record.id)
        return a.record
