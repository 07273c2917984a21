"""ROUGE-1/2/L in any script, tokenized the way XL-Sum's multilingual scorer does.

The n-gram and LCS arithmetic is Google's ``rouge-score``; only the tokenizer
is ours, because its default one keeps ``[a-z0-9]`` and drops everything else,
which turns a Hindi, Telugu or Japanese summary into nothing. The tokenizer
follows ``multilingual_rouge_scoring`` of csebuetnlp/xl-sum (the scorer behind
the XL-Sum paper's numbers), step by step:

1. lowercase;
2. drop NUL, U+FFFD and control/format characters (category C*, so ZWJ/ZWNJ
   inside Indic words vanish rather than split them), map every whitespace
   to a space;
3. split on whitespace and on punctuation — Unicode category P* plus the
   ASCII symbols ``!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~`` — dropping the
   punctuation itself (so ``।``, ``、`` and ``。`` are separators, not words);
4. Japanese: MeCab word segmentation (``fugashi`` with the ``unidic-lite``
   dictionary, shipped inside its wheel; XL-Sum uses full UniDic, which needs
   a download, so segmentation can differ on rare words);
5. every other language (and Japanese text the segmenter returns nothing
   for): split runs of letters from runs of digits and set every other symbol
   apart, as OpenNMT's "aggressive" pretokenizer does (combining marks stay
   with their letter or digit), then give each CJK ideograph a token of its
   own.

No stemming: XL-Sum's stemmers are per language (a Hindi suffix stripper,
Snowball with NLTK's stop-word lists, which need a data download) and there
are none for Telugu or Japanese; scores here are therefore comparable across
languages and models, not to XL-Sum's stemmed figures for Hindi or English.
There is no word segmenter here for Chinese, Thai or Burmese (XL-Sum has
them): Han characters count one token each, Thai and Burmese words are the
space-separated runs, and :func:`tokenizer_for` says so in its ``note``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlift.errors import ConfigError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
INSTALL_HINT = "pip install 'mlift[eval]'"
# Languages XL-Sum segments with a dictionary-based segmenter we do not have.
_UNSEGMENTED = {"zh": "Chinese", "th": "Thai", "my": "Burmese"}


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True  # every non-alphanumeric printable ASCII character
    return unicodedata.category(ch).startswith("P")


def _clean(text: str) -> str:
    out = []
    for ch in text:
        if ch in " \t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif ch == "\0" or ch == "\ufffd" or unicodedata.category(ch).startswith("C"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def words(text: str) -> list[str]:
    """Steps 2–3: the text's words, control characters and punctuation removed."""
    out: list[str] = []
    for chunk in _clean(text).split():
        word: list[str] = []
        for ch in chunk:
            if _is_punctuation(ch):
                if word:
                    out.append("".join(word))
                    word = []
            else:
                word.append(ch)
        if word:
            out.append("".join(word))
    return out


def _char_class(ch: str) -> str:
    major = unicodedata.category(ch)[0]
    return major if major in "LNM" else "S"


def split_letters_digits(word: str) -> list[str]:
    """Step 5a: runs of letters and runs of numbers apart, every other symbol alone.

    Combining marks stay with what they follow (``हिंदी`` stays whole, and so
    does ``€`` with an accent on it); ``₹500`` → ``₹``, ``500``. One departure
    from the pretokenizer XL-Sum uses: marks that *begin* a word are a token of
    their own here, where it glues them to an escaped space (``％0020ा``).
    """
    tokens: list[str] = []
    run: list[str] = []
    run_class = ""
    for ch in word:
        cls = _char_class(ch)
        if run and (cls == "M" or (cls == run_class and cls in "LN")):
            run.append(ch)
            continue
        if run:
            tokens.append("".join(run))
        run, run_class = [ch], cls
    if run:
        tokens.append("".join(run))
    return tokens


def _is_cjk_ideograph(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def split_ideographs(token: str) -> list[str]:
    """Step 5b: each CJK ideograph its own token, the rest of ``token`` kept together."""
    out: list[str] = []
    rest: list[str] = []
    for ch in token:
        if _is_cjk_ideograph(ord(ch)):
            if rest:
                out.append("".join(rest))
                rest = []
            out.append(ch)
        else:
            rest.append(ch)
    if rest:
        out.append("".join(rest))
    return out


@functools.lru_cache(maxsize=1)
def _japanese_segmenter() -> Callable[[str], list[str]]:
    try:
        fugashi = importlib.import_module("fugashi")
        unidic_lite = importlib.import_module("unidic_lite")
    except ImportError as exc:
        raise ConfigError(f"Japanese ROUGE needs MeCab word segmentation ({exc.name} is not "
                          f"installed): {INSTALL_HINT}") from None
    # The dictionary is named explicitly: with the full `unidic` package also
    # installed (and never downloaded), fugashi would pick that one and fail.
    d = unidic_lite.DICDIR
    tagger: Any = fugashi.Tagger(f'-O wakati -b 50000 -d "{d}" -r "{d}/mecabrc"')

    def segment(text: str) -> list[str]:
        return str(tagger.parse(text)).split()

    return segment


@dataclass(frozen=True, slots=True)
class XlsumTokenizer:
    """A ``rouge-score`` tokenizer (it calls ``tokenize``) for one language."""

    lang: str

    @property
    def name(self) -> str:
        if self.lang == "ja":
            return f"xlsum+mecab(unidic-lite {_version('unidic-lite')})"
        return "xlsum"

    def tokenize(self, text: str) -> list[str]:
        cleaned = " ".join(words(text.lower()))
        tokens = _japanese_segmenter()(cleaned) if self.lang == "ja" and cleaned else []
        if not tokens:
            tokens = [piece for w in cleaned.split() for tok in split_letters_digits(w)
                      for piece in split_ideographs(tok)]
        return [t for t in tokens if t]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def tokenizer_for(lang: str) -> tuple[XlsumTokenizer, str | None]:
    """The tokenizer for ``lang`` and a note when it departs from XL-Sum's."""
    note = None
    if lang in _UNSEGMENTED:
        note = (f"{_UNSEGMENTED[lang]}: no word segmenter in mlift; XL-Sum segments words, "
                "here each ideograph (or space-separated run) is a token")
    return XlsumTokenizer(lang), note


@dataclass(frozen=True, slots=True)
class Rouge:
    """Per-pair ROUGE F-measures (0–1), keyed ``rouge1``, ``rouge2``, ``rougeL``."""

    scores: dict[str, float]
    precision: dict[str, float]
    recall: dict[str, float]


class RougeScorer:
    """ROUGE-1/2/L of (reference, prediction) pairs in one language."""

    def __init__(self, lang: str) -> None:
        try:
            from rouge_score import rouge_scorer  # type: ignore[import-untyped]
        except ImportError:
            raise ConfigError(f"ROUGE needs the rouge-score package: {INSTALL_HINT}") from None
        self.tokenizer, self.note = tokenizer_for(lang)
        if lang == "ja":
            _japanese_segmenter()  # fail now, not on the first scored item
        self._scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=self.tokenizer)

    @property
    def signature(self) -> str:
        return (f"rouge-score {_version('rouge-score')}|tok:{self.tokenizer.name}|stem:no|"
                "types:" + ",".join(ROUGE_TYPES))

    def score(self, reference: str, prediction: str) -> Rouge:
        got = self._scorer.score(reference, prediction)
        return Rouge({k: float(got[k].fmeasure) for k in ROUGE_TYPES},
                     {k: float(got[k].precision) for k in ROUGE_TYPES},
                     {k: float(got[k].recall) for k in ROUGE_TYPES})
