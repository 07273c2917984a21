"""Pseudo-translation: deterministic made-up words in the target language's script.

Not a translation. Each source word becomes a pseudo-word that depends only on
(seed, target, word), so the same text always gives the same output, and its
length follows how many characters each language needs to say the same thing.
Lengths use a density table (characters per unit of meaning, English = 1.0),
set from the usual ratios between parallel texts:

    en 1.0  es/pt/it 1.1  fr/de 1.15  hi/mr/ne 1.0  bn/te 0.95  ta 1.1
    ar 0.85  fa/ur 0.9  ru/uk/bg 1.05  th 0.9  ko 0.45  ja 0.4  zh 0.3

so ja→en is about x2.5 characters, en→ja x0.4, hi↔en x1.0, es→en x0.9.
Sentence punctuation is mapped to the target's (。 、 । ، …), line breaks are
kept, and scripts written without spaces (ja, zh, th) get none.
"""

from __future__ import annotations

import hashlib
import random
import re
from functools import lru_cache

DENSITY = {"en": 1.0, "es": 1.1, "pt": 1.1, "it": 1.1, "fr": 1.15, "de": 1.15, "hi": 1.0,
           "mr": 1.0, "ne": 1.0, "bn": 0.95, "te": 0.95, "ta": 1.1, "ar": 0.85, "fa": 0.9,
           "ur": 0.9, "ru": 1.05, "uk": 1.05, "bg": 1.05, "th": 0.9, "ko": 0.45, "ja": 0.4,
           "zh": 0.3}


def _span(first: int, last: int, skip: str = "") -> str:
    return "".join(chr(c) for c in range(first, last + 1) if chr(c) not in skip)


# Units pseudo-words are built from: (leading units, vowel marks or vowels, mode).
# mode "cv": consonant plus an optional vowel (sign); "char": any unit alone.
_SCRIPTS: dict[str, tuple[str, str, str]] = {
    "latin": ("bcdfghklmnprstvz", "aeiou", "cv"),
    "devanagari": (_span(0x915, 0x939), "\u093e\u093f\u0940\u0941\u0942\u0947\u0948\u094b\u094c",
                   "cv"),
    "bengali": ("কখগঘচছজঝটঠডঢণতথদধনপফবভমযরলশষসহ", "\u09be\u09bf\u09c0\u09c1\u09c2\u09c7\u09cb",
                "cv"),
    "telugu": ("కఖగఘచఛజఝటఠడఢణతథదధనపఫబభమయరలవశషసహ",
               "\u0c3e\u0c3f\u0c40\u0c41\u0c42\u0c46\u0c47\u0c48\u0c4a\u0c4b", "cv"),
    "tamil": ("கஙசஞடணதநபமயரலவழளறன", "\u0bbe\u0bbf\u0bc0\u0bc1\u0bc2\u0bc6\u0bc7\u0bc8\u0bca",
              "cv"),
    "arabic": (_span(0x628, 0x63a) + _span(0x641, 0x64a), "\u0627\u0648\u064a", "cv"),
    "cyrillic": ("бвгджзклмнпрстфхцчш", "аеиоуыюя", "cv"),
    "thai": (_span(0xe01, 0xe2e), "\u0e30\u0e32\u0e34\u0e35\u0e38\u0e39", "cv"),
    "hangul": ("".join(chr(0xAC00 + (i * 21 + m) * 28 + f) for i in range(0, 19, 2)
                       for m in (0, 4, 8, 13, 18, 20) for f in (0, 4, 8)), "", "char"),
    "kana": ("日本人年大国会中出社事自生者分時上行同地業方下後前学手見心新主高通作話物現",
             "あいうえおかきくけこさしすせそたちつてとなにのはひふまみむめもやゆよらりるれろわを"
             "んがぎぐげござじずぜぞだでどばびぶべぼテストデータシステム", "kana"),
    "han": ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会"
            "自着去之过家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十"
            "用主行方又如前所本见经头面公同三已老从动两长", "", "char"),
}
_LANG_SCRIPT = {"hi": "devanagari", "mr": "devanagari", "ne": "devanagari", "sa": "devanagari",
                "bn": "bengali", "as": "bengali", "te": "telugu", "ta": "tamil", "ar": "arabic",
                "fa": "arabic", "ur": "arabic", "ru": "cyrillic", "uk": "cyrillic",
                "bg": "cyrillic", "sr": "cyrillic", "kk": "cyrillic", "th": "thai", "ko": "hangul",
                "ja": "kana", "zh": "han"}
_UNSPACED = {"ja", "zh", "th"}
_FULL_STOP = {"ja": "。", "zh": "。", "hi": "।", "mr": "।", "ne": "।", "bn": "।", "th": " "}
_COMMA = {"ja": "、", "zh": "\uff0c", "ar": "،", "fa": "،", "ur": "،", "th": " "}
_QUESTION = {"ja": "\uff1f", "zh": "\uff1f", "ar": "؟", "fa": "؟", "ur": "؟"}
_STOPS = frozenset(".।。!\uff01")
_COMMAS = frozenset(",、\uff0c،")
_QUESTIONS = frozenset("?\uff1f؟")

# A word is a run of anything but whitespace and punctuation (Indic vowel signs
# are not \w, so \w+ would cut Hindi words apart).
_PIECES = re.compile(
    r"""([^\s.,;:!?।。、\uff0c\uff01\uff1f؟،"()\[\]{}<>«»“”\u2014\u2013]+)|(\n)|(\s+)|(.)""")
# (script-detection ranges, language assumed) for a source without source=.
_DETECT = ((re.compile("[\u3040-\u30ff]"), "ja"), (re.compile("[\u4e00-\u9fff]"), "zh"),
           (re.compile("[\uac00-\ud7af]"), "ko"), (re.compile("[\u0900-\u097f]"), "hi"),
           (re.compile("[\u0980-\u09ff]"), "bn"), (re.compile("[\u0c00-\u0c7f]"), "te"),
           (re.compile("[\u0b80-\u0bff]"), "ta"), (re.compile("[\u0600-\u06ff]"), "ar"),
           (re.compile("[\u0400-\u04ff]"), "ru"), (re.compile("[\u0e00-\u0e7f]"), "th"))
_CHUNK = {"ja": 2, "zh": 2, "th": 4}  # unspaced sources: characters per pseudo-"word"


def _lang(code: str | None) -> str:
    return (code or "").lower().replace("_", "-").split("-")[0]


def detect_language(text: str) -> str:
    """The language a text's script suggests (Latin → en): enough to pick length ratios."""
    sample = text[:400]
    for pattern, lang in _DETECT:
        if pattern.search(sample):
            return lang
    return "en"


@lru_cache(maxsize=65536)
def pseudo_word(word: str, target: str, length: int, seed: int) -> str:
    """A made-up word of ``length`` characters in ``target``'s script, fixed by its inputs."""
    script = _LANG_SCRIPT.get(target, "latin")
    leads, vowels, mode = _SCRIPTS[script]
    digest = hashlib.blake2b(f"{seed}|{target}|{word}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(digest, "big"))
    out: list[str] = []
    size = 0
    while size < length:
        if mode == "cv":
            out.append(rng.choice(leads))
            size += 1
            if size < length and rng.random() < 0.7:
                out.append(rng.choice(vowels))
                size += 1
        elif mode == "kana":
            out.append(rng.choice(leads if rng.random() < 0.35 else vowels))
            size += 1
        else:
            out.append(rng.choice(leads))
            size += 1
    return "".join(out)


def _words(text: str, source: str) -> list[tuple[str, str]]:
    """(kind, piece) with kind "w" word, "n" newline, "s" space, "p" punctuation."""
    chunk = _CHUNK.get(source)
    pieces: list[tuple[str, str]] = []
    for m in _PIECES.finditer(text):
        word, newline, space, punct = m.groups()
        if word is not None:
            if chunk:
                pieces.extend(("w", word[i:i + chunk]) for i in range(0, len(word), chunk))
            else:
                pieces.append(("w", word))
        elif newline is not None:
            pieces.append(("n", "\n"))
        elif space is not None:
            pieces.append(("s", " "))
        else:
            pieces.append(("p", punct))
    return pieces


def _punct(p: str, target: str) -> str:
    if p in _STOPS:
        return "!" if p in "!\uff01" else _FULL_STOP.get(target, ".")
    if p in _COMMAS:
        return _COMMA.get(target, ",")
    if p in _QUESTIONS:
        return _QUESTION.get(target, "?")
    return p


_PLACEHOLDER = re.compile(r"(<<[A-Z_]+>>)")


def pseudo_translate(text: str, source: str | None, target: str | None, seed: int) -> str:
    """``text`` as pseudo-words in ``target``'s script, prefixed ``[sim] ``.

    Placeholders such as ``<<CONTEXT>>`` pass through untouched, as the
    translation prompts ask of a real model.
    """
    parts = _PLACEHOLDER.split(text)
    if len(parts) > 1:
        out = [p if i % 2 else _pseudo(p, source, target, seed) if p.strip() else p
               for i, p in enumerate(parts)]
        return "[sim] " + "".join(out).strip()
    return "[sim] " + _pseudo(text, source, target, seed)


def _pseudo(text: str, source: str | None, target: str | None, seed: int) -> str:
    src = _lang(source) or detect_language(text)
    if src not in DENSITY:
        src = detect_language(text)
    tgt = _lang(target) or "en"
    ratio = DENSITY.get(tgt, 1.0) / DENSITY.get(src, 1.0)
    spaced = tgt not in _UNSPACED
    src_spaced = src not in _UNSPACED
    # Spaces count as characters too: a word gains one going to a spaced
    # script and loses one going to an unspaced one.
    bonus = 0 if spaced == src_spaced else (-1 if spaced else 1)
    capitalize = _LANG_SCRIPT.get(tgt, "latin") in ("latin", "cyrillic")
    out: list[str] = []
    sentence_start = True
    prev = "n"
    for kind, piece in _words(text, src):
        if kind == "w":
            if spaced and (prev == "w" or (prev == "p" and not src_spaced)):
                out.append(" ")  # chunks of an unspaced source become separate words
            length = max(1, round((len(piece) + max(bonus, 0)) * ratio) + min(bonus, 0))
            word = pseudo_word(piece.lower(), tgt, length, seed)
            if capitalize and sentence_start:
                word = word[:1].upper() + word[1:]
            out.append(word)
            sentence_start = False
        elif kind == "n":
            out.append("\n")
            sentence_start = True
        elif kind == "s":
            if spaced and prev != "s":
                out.append(" ")
        else:
            mapped = _punct(piece, tgt)
            out.append(mapped)
            if piece in _STOPS or piece in _QUESTIONS:
                sentence_start = True
        prev = kind
    return "".join(out).strip()
