"""The language table and script detection used by selection."""

from __future__ import annotations

import pytest

from mlift.errors import UnknownNameError
from mlift.langs import LANGUAGES, get_language, script_of, script_profile

REQUIRED = ["hi", "te", "ja", "es", "en", "bn", "ta", "mr", "ur", "ar", "zh", "ko", "fr", "de",
            "pt", "ru", "th", "vi", "id", "sw", "gu", "kn", "ml", "pa", "ne", "fa", "tr", "it",
            "nl", "pl", "uk", "he", "el"]


def test_the_table_covers_the_required_languages_with_sane_bands() -> None:
    assert len(LANGUAGES) >= 40
    for code in REQUIRED:
        lang = LANGUAGES[code]
        assert lang.code == code and lang.scripts and lang.name and lang.native
        assert 0 < lang.band[0] < lang.band[1]
    assert LANGUAGES["ja"].band[1] < LANGUAGES["en"].band[1] < LANGUAGES["es"].band[1]


@pytest.mark.parametrize(("spelling", "code"), [
    ("hi", "hi"), ("HIN", "hi"), ("Hindi", "hi"), ("हिन्दी", "hi"), (" te ", "te"),
    ("jpn", "ja"), ("Japanese", "ja"), ("es-MX", "es"), ("pt_BR", "pt"), ("fil", "tl"),
    ("zh-Hant", "zh"), ("Español", "es"),
])
def test_get_language_accepts_codes_iso3_and_names(spelling: str, code: str) -> None:
    assert get_language(spelling).code == code


@pytest.mark.parametrize(("typo", "suggestion"), [("hindu", "'hi'"), ("japanse", "'ja'"),
                                                   ("telgu", "'te'")])
def test_unknown_language_suggests_the_nearest(typo: str, suggestion: str) -> None:
    with pytest.raises(UnknownNameError, match=f"Did you mean {suggestion}") as info:
        get_language(typo)
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize(("char", "script"), [
    ("a", "Latin"), ("é", "Latin"), ("ж", "Cyrillic"), ("क", "Devanagari"), ("తె", "Telugu"),
    ("あ", "Hiragana"), ("ア", "Katakana"), ("ー", "Katakana"), ("漢", "Han"), ("한", "Hangul"),
    ("ع", "Arabic"), ("ש", "Hebrew"), ("ก", "Thai"), ("ব", "Bengali"), ("5", "Common"),
    (",", "Common"), ("ߊ", "Nko"),
])
def test_script_of(char: str, script: str) -> None:
    assert script_of(char[0]) == script


def test_script_profile_counts_letters_only() -> None:
    assert script_profile("") == {}
    assert script_profile("2024, !!") == {}
    assert script_profile("नमस्ते 2024!") == {"Devanagari": 1.0}
    profile = script_profile("私はコーヒーが好き")
    assert set(profile) == {"Han", "Hiragana", "Katakana"}
    assert abs(sum(profile.values()) - 1.0) < 1e-9
    assert list(script_profile("abc дд")) == ["Latin", "Cyrillic"]
