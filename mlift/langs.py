"""The language table: codes, names, scripts, length bands and confusable siblings.

Every stage that needs to know something about a language asks here:
:func:`get_language` resolves what a user typed (``hi``, ``hin``, ``Hindi``,
``हिन्दी``) to one :class:`Language`; :func:`script_profile` tells which
Unicode scripts a text's letters are written in, which the selector compares
with :attr:`Language.scripts`.

Length bands are in characters (code points after NFC), not bytes or words,
so they depend on how densely a script packs content: the same paragraph is
~0.35x as many characters in Japanese and ~1.15x in Spanish as in English.
Each language's band is the base band (100-4000 characters for English) times
its density factor.

``siblings`` lists the languages a statistical language identifier confuses
with this one on short or ambiguous text (Hindi ↔ Marathi/Nepali, Spanish ↔
Portuguese/Galician); the selector accepts a low-confidence sibling verdict
instead of rejecting (see :mod:`mlift.pipeline.select`). Sibling codes may name
languages outside this table (e.g. ``gom`` Konkani) because identifiers do.
"""

from __future__ import annotations

import bisect
import difflib
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from mlift.errors import UnknownNameError

__all__ = ["BASE_BAND", "LANGUAGES", "Language", "get_language", "script_of", "script_profile"]

BASE_BAND = (100, 4000)
"""Response length band, in characters, for a language of density 1.0 (English)."""


@dataclass(frozen=True, slots=True)
class Language:
    """One language mlift knows. ``code`` is ISO 639-1 where one exists."""

    code: str
    name: str
    native: str
    scripts: tuple[str, ...]
    band: tuple[int, int]
    iso3: str
    siblings: tuple[str, ...] = ()

    def aliases(self) -> tuple[str, ...]:
        """Every spelling :func:`get_language` accepts for this language (lower-cased)."""
        return (self.code, self.iso3, self.name.lower(), self.native.casefold())


def _lang(code: str, iso3: str, name: str, native: str, scripts: str, density: float,
          siblings: str = "") -> Language:
    band = (round(BASE_BAND[0] * density), round(BASE_BAND[1] * density))
    return Language(code, name, native, tuple(scripts.split("+")), band, iso3,
                    tuple(siblings.split()) if siblings else ())


_CJK = "Han+Hiragana+Katakana"
# code, ISO 639-3, English name, native name, script(s), density vs English, siblings.
_TABLE = [
    _lang("af", "afr", "Afrikaans", "Afrikaans", "Latin", 1.05, "nl"),
    _lang("am", "amh", "Amharic", "አማርኛ", "Ethiopic", 0.6),
    _lang("ar", "ara", "Arabic", "العربية", "Arabic", 0.8, "arz ary fa"),
    _lang("as", "asm", "Assamese", "অসমীয়া", "Bengali", 0.95, "bn"),
    _lang("az", "aze", "Azerbaijani", "Azərbaycanca", "Latin", 1.05, "tr"),
    _lang("be", "bel", "Belarusian", "Беларуская", "Cyrillic", 1.05, "ru uk"),
    _lang("bg", "bul", "Bulgarian", "Български", "Cyrillic", 1.05, "mk ru"),
    _lang("bn", "ben", "Bengali", "বাংলা", "Bengali", 0.95, "as"),
    _lang("bs", "bos", "Bosnian", "Bosanski", "Latin+Cyrillic", 1.0, "hr sr"),
    _lang("ca", "cat", "Catalan", "Català", "Latin", 1.1, "es oc"),
    _lang("cs", "ces", "Czech", "Čeština", "Latin", 1.0, "sk"),
    _lang("cy", "cym", "Welsh", "Cymraeg", "Latin", 1.05),
    _lang("da", "dan", "Danish", "Dansk", "Latin", 1.05, "no nn sv"),
    _lang("de", "deu", "German", "Deutsch", "Latin", 1.15, "lb"),
    _lang("el", "ell", "Greek", "Ελληνικά", "Greek", 1.1, "grc"),
    _lang("en", "eng", "English", "English", "Latin", 1.0),
    _lang("es", "spa", "Spanish", "Español", "Latin", 1.15, "pt gl ca ext an ast"),
    _lang("et", "est", "Estonian", "Eesti", "Latin", 1.0, "fi"),
    _lang("eu", "eus", "Basque", "Euskara", "Latin", 1.1),
    _lang("fa", "fas", "Persian", "فارسی", "Arabic", 0.85, "ar ur"),
    _lang("fi", "fin", "Finnish", "Suomi", "Latin", 1.1, "et"),
    _lang("fr", "fra", "French", "Français", "Latin", 1.15, "oc wa"),
    _lang("ga", "gle", "Irish", "Gaeilge", "Latin", 1.1, "gd"),
    _lang("gl", "glg", "Galician", "Galego", "Latin", 1.1, "es pt"),
    _lang("gu", "guj", "Gujarati", "ગુજરાતી", "Gujarati", 0.95),
    _lang("ha", "hau", "Hausa", "Hausa", "Latin", 1.1),
    _lang("he", "heb", "Hebrew", "עברית", "Hebrew", 0.75, "hbo"),
    _lang("hi", "hin", "Hindi", "हिन्दी", "Devanagari", 0.95, "mr ne gom sa mai bho"),
    _lang("hr", "hrv", "Croatian", "Hrvatski", "Latin", 1.0, "bs sr sl"),
    _lang("hu", "hun", "Hungarian", "Magyar", "Latin", 1.1),
    _lang("hy", "hye", "Armenian", "Հայերեն", "Armenian", 1.05),
    _lang("id", "ind", "Indonesian", "Bahasa Indonesia", "Latin", 1.15, "ms jv"),
    _lang("ig", "ibo", "Igbo", "Igbo", "Latin", 1.0),
    _lang("is", "isl", "Icelandic", "Íslenska", "Latin", 1.05, "fo"),
    _lang("it", "ita", "Italian", "Italiano", "Latin", 1.1, "vec lij"),
    _lang("ja", "jpn", "Japanese", "日本語", _CJK, 0.35, "zh"),
    _lang("jv", "jav", "Javanese", "Basa Jawa", "Latin", 1.1, "id ms"),
    _lang("ka", "kat", "Georgian", "ქართული", "Georgian", 1.05),
    _lang("kk", "kaz", "Kazakh", "Қазақша", "Cyrillic", 1.05, "ky"),
    _lang("km", "khm", "Khmer", "ខ្មែរ", "Khmer", 1.0),
    _lang("kn", "kan", "Kannada", "ಕನ್ನಡ", "Kannada", 1.0, "te"),
    _lang("ko", "kor", "Korean", "한국어", "Hangul+Han", 0.45),
    _lang("ky", "kir", "Kyrgyz", "Кыргызча", "Cyrillic", 1.05, "kk"),
    _lang("lo", "lao", "Lao", "ລາວ", "Lao", 0.9, "th"),
    _lang("lt", "lit", "Lithuanian", "Lietuvių", "Latin", 1.05, "ltg lv"),
    _lang("lv", "lav", "Latvian", "Latviešu", "Latin", 1.05, "ltg lt"),
    _lang("mk", "mkd", "Macedonian", "Македонски", "Cyrillic", 1.05, "bg sr"),
    _lang("ml", "mal", "Malayalam", "മലയാളം", "Malayalam", 1.05, "ta"),
    _lang("mn", "mon", "Mongolian", "Монгол", "Cyrillic", 1.05),
    _lang("mr", "mar", "Marathi", "मराठी", "Devanagari", 0.95, "hi ne gom sa"),
    _lang("ms", "msa", "Malay", "Bahasa Melayu", "Latin", 1.15, "id jv"),
    _lang("my", "mya", "Burmese", "မြန်မာ", "Myanmar", 1.0),
    _lang("ne", "nep", "Nepali", "नेपाली", "Devanagari", 0.95, "hi mr sa mai"),
    _lang("nl", "nld", "Dutch", "Nederlands", "Latin", 1.1, "af fy"),
    _lang("no", "nor", "Norwegian", "Norsk", "Latin", 1.05, "nb nn da sv"),
    _lang("or", "ori", "Odia", "ଓଡ଼ିଆ", "Oriya", 0.95),
    _lang("pa", "pan", "Punjabi", "ਪੰਜਾਬੀ", "Gurmukhi", 0.95),
    _lang("pl", "pol", "Polish", "Polski", "Latin", 1.05, "cs sk"),
    _lang("ps", "pus", "Pashto", "پښتو", "Arabic", 0.85, "fa ur"),
    _lang("pt", "por", "Portuguese", "Português", "Latin", 1.15, "gl es"),
    _lang("ro", "ron", "Romanian", "Română", "Latin", 1.1),
    _lang("ru", "rus", "Russian", "Русский", "Cyrillic", 1.05, "uk be bg"),
    _lang("sa", "san", "Sanskrit", "संस्कृतम्", "Devanagari", 0.95, "hi mr ne"),
    _lang("si", "sin", "Sinhala", "සිංහල", "Sinhala", 1.0),
    _lang("sk", "slk", "Slovak", "Slovenčina", "Latin", 1.0, "cs"),
    _lang("sl", "slv", "Slovenian", "Slovenščina", "Latin", 1.0, "hr"),
    _lang("so", "som", "Somali", "Soomaali", "Latin", 1.1),
    _lang("sq", "sqi", "Albanian", "Shqip", "Latin", 1.1),
    _lang("sr", "srp", "Serbian", "Српски", "Cyrillic+Latin", 1.0, "hr bs mk"),
    _lang("sv", "swe", "Swedish", "Svenska", "Latin", 1.05, "da no nn"),
    _lang("sw", "swa", "Swahili", "Kiswahili", "Latin", 1.1),
    _lang("ta", "tam", "Tamil", "தமிழ்", "Tamil", 1.1, "ml"),
    _lang("te", "tel", "Telugu", "తెలుగు", "Telugu", 1.0, "kn"),
    _lang("th", "tha", "Thai", "ไทย", "Thai", 0.9, "lo"),
    _lang("tl", "tgl", "Tagalog", "Tagalog", "Latin", 1.15),
    _lang("tr", "tur", "Turkish", "Türkçe", "Latin", 1.05, "az"),
    _lang("uk", "ukr", "Ukrainian", "Українська", "Cyrillic", 1.05, "ru be"),
    _lang("ur", "urd", "Urdu", "اردو", "Arabic", 0.85, "fa ar"),
    _lang("uz", "uzb", "Uzbek", "Oʻzbekcha", "Latin+Cyrillic", 1.1, "uzs"),
    _lang("vi", "vie", "Vietnamese", "Tiếng Việt", "Latin", 1.1),
    _lang("xh", "xho", "Xhosa", "isiXhosa", "Latin", 1.1, "zu"),
    _lang("yo", "yor", "Yoruba", "Yorùbá", "Latin", 1.0),
    _lang("zh", "zho", "Chinese", "中文", "Han", 0.3, "wuu yue ja"),
    _lang("zu", "zul", "Zulu", "isiZulu", "Latin", 1.1, "xh"),
]

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _TABLE}
"""Every known language by ISO code."""

_ALIASES: dict[str, Language] = {
    alias: lang for lang in _TABLE for alias in lang.aliases()
}
# Common spellings that are neither the code, ISO 639-3 nor the listed name.
_ALIASES.update({
    "fil": LANGUAGES["tl"], "filipino": LANGUAGES["tl"], "nb": LANGUAGES["no"],
    "farsi": LANGUAGES["fa"], "bangla": LANGUAGES["bn"], "oriya": LANGUAGES["or"],
    "panjabi": LANGUAGES["pa"], "castilian": LANGUAGES["es"], "mandarin": LANGUAGES["zh"],
    "chi": LANGUAGES["zh"], "per": LANGUAGES["fa"], "ger": LANGUAGES["de"],
    "fre": LANGUAGES["fr"], "dut": LANGUAGES["nl"], "gre": LANGUAGES["el"],
    "zh-cn": LANGUAGES["zh"], "zh-tw": LANGUAGES["zh"], "zh-hans": LANGUAGES["zh"],
    "zh-hant": LANGUAGES["zh"], "pt-br": LANGUAGES["pt"], "pt-pt": LANGUAGES["pt"],
})


def get_language(code: str) -> Language:
    """Resolve a code (ISO 639-1 or -3), English or native name to a :class:`Language`.

    Case and surrounding space are ignored; a region suffix (``es-MX``,
    ``pt_BR``) falls back to the base language. Unknown names raise
    :class:`~mlift.errors.UnknownNameError` suggesting the nearest code.
    """
    key = code.strip().casefold().replace("_", "-")
    lang = _ALIASES.get(key) or _ALIASES.get(key.split("-", 1)[0])
    if lang is None:
        error = UnknownNameError("language", code, list(LANGUAGES))
        near = difflib.get_close_matches(key, list(_ALIASES), n=1)
        if near and "Did you mean" not in error.args[0]:
            # The codes alone miss suggestions for names ("hindu" → hi): look at every alias.
            hint = f"Did you mean {_ALIASES[near[0]].code!r} ({_ALIASES[near[0]].name})?"
            error.args = (error.args[0].replace(f"{code!r}.", f"{code!r}. {hint}", 1),)
        raise error
    return lang


# Sorted, non-overlapping (first, last, script) code-point ranges for the scripts
# the table uses. A bisect over ~70 ranges classifies a letter in well under a µs;
# letters outside every range fall back to their Unicode character name.
_RANGES: list[tuple[int, int, str]] = sorted([
    (0x0041, 0x005A, "Latin"), (0x0061, 0x007A, "Latin"), (0x00AA, 0x00AA, "Latin"),
    (0x00BA, 0x00BA, "Latin"), (0x00C0, 0x024F, "Latin"), (0x0250, 0x02AF, "Latin"),
    (0x1D00, 0x1D7F, "Latin"), (0x1E00, 0x1EFF, "Latin"), (0x2C60, 0x2C7F, "Latin"),
    (0xA720, 0xA7FF, "Latin"), (0xAB30, 0xAB6F, "Latin"), (0xFB00, 0xFB06, "Latin"),
    (0xFF21, 0xFF3A, "Latin"), (0xFF41, 0xFF5A, "Latin"),
    (0x0370, 0x03FF, "Greek"), (0x1F00, 0x1FFF, "Greek"),
    (0x0400, 0x052F, "Cyrillic"), (0x1C80, 0x1C8F, "Cyrillic"), (0x2DE0, 0x2DFF, "Cyrillic"),
    (0xA640, 0xA69F, "Cyrillic"),
    (0x0530, 0x058F, "Armenian"), (0x0590, 0x05FF, "Hebrew"), (0xFB1D, 0xFB4F, "Hebrew"),
    (0x0600, 0x06FF, "Arabic"), (0x0750, 0x077F, "Arabic"), (0x0870, 0x08FF, "Arabic"),
    (0xFB50, 0xFDFF, "Arabic"), (0xFE70, 0xFEFF, "Arabic"),
    (0x0700, 0x074F, "Syriac"), (0x0780, 0x07BF, "Thaana"),
    (0x0900, 0x097F, "Devanagari"), (0xA8E0, 0xA8FF, "Devanagari"),
    (0x0980, 0x09FF, "Bengali"), (0x0A00, 0x0A7F, "Gurmukhi"), (0x0A80, 0x0AFF, "Gujarati"),
    (0x0B00, 0x0B7F, "Oriya"), (0x0B80, 0x0BFF, "Tamil"), (0x0C00, 0x0C7F, "Telugu"),
    (0x0C80, 0x0CFF, "Kannada"), (0x0D00, 0x0D7F, "Malayalam"), (0x0D80, 0x0DFF, "Sinhala"),
    (0x0E00, 0x0E7F, "Thai"), (0x0E80, 0x0EFF, "Lao"), (0x0F00, 0x0FFF, "Tibetan"),
    (0x1000, 0x109F, "Myanmar"), (0x10A0, 0x10FF, "Georgian"), (0x1C90, 0x1CBF, "Georgian"),
    (0x1100, 0x11FF, "Hangul"), (0x3130, 0x318F, "Hangul"), (0xA960, 0xA97F, "Hangul"),
    (0xAC00, 0xD7FF, "Hangul"), (0xFFA0, 0xFFDC, "Hangul"),
    (0x1200, 0x139F, "Ethiopic"), (0x2D80, 0x2DDF, "Ethiopic"),
    (0x1780, 0x17FF, "Khmer"), (0x19E0, 0x19FF, "Khmer"),
    (0x2E80, 0x2FDF, "Han"), (0x3005, 0x3007, "Han"), (0x3021, 0x3029, "Han"),
    (0x3038, 0x303B, "Han"), (0x3400, 0x4DBF, "Han"), (0x4E00, 0x9FFF, "Han"),
    (0xF900, 0xFAFF, "Han"), (0x20000, 0x323AF, "Han"),
    (0x3041, 0x309F, "Hiragana"), (0x30A0, 0x30FF, "Katakana"), (0x31F0, 0x31FF, "Katakana"),
    (0xFF66, 0xFF9F, "Katakana"),
])
_STARTS = [r[0] for r in _RANGES]


@lru_cache(maxsize=4096)
def _script_by_name(char: str) -> str:
    name = unicodedata.name(char, "")
    if name.startswith("CJK"):
        return "Han"
    return name.split(" ", 1)[0].title() if name else "Unknown"


def script_of(char: str) -> str:
    """The Unicode script of one character (``"Latin"``, ``"Devanagari"``, ``"Han"``, …).

    Covers the scripts of :data:`LANGUAGES` by code-point range and others by
    the first word of the character's Unicode name. Non-letters that belong to
    no script (digits, punctuation, spaces) are ``"Common"``; the prolonged
    sound mark ``ー`` is Katakana.
    """
    cp = ord(char)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and cp <= _RANGES[i][1]:
        return _RANGES[i][2]
    if not char.isalpha():
        return "Common"
    return _script_by_name(char)


def script_profile(text: str) -> dict[str, float]:
    """Fraction of the text's letters in each script, largest first; ``{}`` with no letters.

    Only letters count (``str.isalpha``): digits, punctuation, spaces and
    combining vowel signs are ignored, so a Hindi sentence with a date is
    still 100 % Devanagari.
    """
    # Counting code points runs in C; only the few hundred distinct ones get classified.
    counts: Counter[str] = Counter()
    for ch, n in Counter(text).items():
        if ch.isalpha():
            counts[script_of(ch)] += n
    total = sum(counts.values())
    return {script: n / total for script, n in counts.most_common()} if total else {}
