"""Response selection: normalisation, length bands, dedup, script and language checks."""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence

import pytest

from mlift.errors import ConfigError
from mlift.langs import get_language
from mlift.pipeline import select as select_module
from mlift.pipeline.select import REASONS, Reject, SelectConfig, Selector, normalize_text
from mlift.pipeline.sources import Record

# Hand-written paragraphs, four sentences each, in the languages the method targets.
PARA = {
    "hi": "भारत एक विशाल देश है जहाँ कई भाषाएँ बोली जाती हैं। कल रात बहुत तेज़ बारिश हुई और "
          "सड़कों पर पानी भर गया। मेरी दादी हर सुबह मंदिर जाती हैं और फूल चढ़ाती हैं। सरकार ने "
          "किसानों के लिए नई योजना की घोषणा की है।",
    "te": "తెలుగు భాష చాలా మధురమైన భాష అని అందరూ అంటారు. నిన్న రాత్రి హైదరాబాద్‌లో భారీ వర్షం "
          "కురిసింది. మా అమ్మ ప్రతిరోజు ఉదయాన్నే లేచి వంట చేస్తుంది. ప్రభుత్వం రైతుల కోసం కొత్త "
          "పథకాన్ని ప్రకటించింది.",
    "ja": "東京は日本の首都で、世界でも有数の大都市です。昨日の夜は雨がとても強く降りました。"
          "私は毎朝コーヒーを飲みながら新聞を読みます。政府は新しい経済対策を発表しました。",
    "es": "España es un país con una gran diversidad cultural y lingüística. Ayer por la noche "
          "llovió muchísimo y las calles se inundaron. Mi abuela prepara una tortilla de patatas "
          "deliciosa todos los domingos. El gobierno anunció nuevas medidas para apoyar a los "
          "agricultores.",
    "en": "London is one of the most visited cities in the world. It rained heavily last night "
          "and several roads were flooded. My grandmother bakes bread every Sunday morning. The "
          "government announced new support for small farmers.",
    "mr": "महाराष्ट्रात पावसाळ्यात खूप पाऊस पडतो आणि सगळीकडे हिरवळ दिसते. माझी आई रोज सकाळी "
          "लवकर उठते आणि घरातील सर्व कामे करते. आम्ही उद्या पुण्याला जाणार आहोत, तिथे माझे काका "
          "राहतात. शाळेतील मुलांनी स्वातंत्र्यदिनानिमित्त सुंदर कार्यक्रम सादर केला.",
    "zh": "北京是中国的首都，也是一座历史悠久的城市。昨天晚上下了很大的雨，街道上都是水。"
          "我每天早上一边喝咖啡一边看报纸。政府宣布了新的经济政策。",
}


def rec(lang: str | None, text: str, rid: str = "r") -> Record:
    return Record(rid, lang, text)


class FakeIdentifier:
    """A fixed verdict, to test the acceptance rule apart from any model."""

    def __init__(self, verdict: Sequence[tuple[str, float]],
                 labels: frozenset[str] = frozenset({"hi", "mr", "ne", "en", "es", "pt"})):
        self.verdict, self.labels = list(verdict), labels

    def rank(self, text: str) -> Sequence[tuple[str, float]]:
        return self.verdict


def no_lid(**kw: object) -> Selector:
    return Selector(SelectConfig(lang_id=False, **kw))  # type: ignore[arg-type]


def test_normalisation_composes_nfc_and_cleans_whitespace_but_keeps_zwnj() -> None:
    decomposed = unicodedata.normalize("NFD", "Canción  \t de\u00a0cuna\x07\r\n\r\n\r\n\r\nfin ")
    assert normalize_text(decomposed) == "Canción de cuna\n\nfin"
    assert normalize_text("హైదరాబాద్\u200cలో") == "హైదరాబాద్\u200cలో"
    assert normalize_text("字下げ\u3000\u3000です  ね") == "字下げ\u3000\u3000です ね"


def test_kept_record_is_normalised_and_its_context_too() -> None:
    text = unicodedata.normalize("NFD", PARA["es"]) + "   \n\n\n\n"
    record = Record("s1", "spa", text, context={"article": "Un  artículo\x00."})
    out = no_lid(near_dup=False).select(record)
    assert isinstance(out, Record)
    assert out.text == PARA["es"]
    assert out.lang == "es"
    assert out.context == {"article": "Un artículo."}


@pytest.mark.parametrize(("lang", "length", "code"), [
    ("en", 99, "too_short"), ("en", 100, None), ("en", 4000, None), ("en", 4001, "too_long"),
    ("ja", 34, "too_short"), ("ja", 35, None), ("ja", 1401, "too_long"),
])
def test_length_band_depends_on_the_language(lang: str, length: int, code: str | None) -> None:
    letter = {"en": "a", "ja": "あ"}[lang]
    out = no_lid(near_dup=False).select(rec(lang, letter * length))
    assert (out.code if isinstance(out, Reject) else None) == code
    if isinstance(out, Reject):
        assert str(length) in out.detail


def test_length_band_overrides_per_language_and_globally() -> None:
    text = "a" * 150
    assert isinstance(no_lid(bands={"en": (10, 160)}).select(rec("en", text[:50])), Record)
    out = no_lid(max_chars=120).select(rec("en", text))
    assert isinstance(out, Reject)
    assert out.code == "too_long"
    assert isinstance(no_lid(min_chars=0).select(rec("en", "short")), Record)


def test_exact_duplicate_after_normalisation_names_the_kept_id() -> None:
    selector = no_lid(near_dup=False)
    assert isinstance(selector.select(rec("es", PARA["es"], "first")), Record)
    out = selector.select(rec("es", PARA["es"].replace(" ", "  ") + "\n", "second"))
    assert isinstance(out, Reject)
    assert (out.code, out.detail) == ("duplicate", "same text as first")


@pytest.mark.parametrize(("lang", "edit"), [
    ("es", ("gran diversidad", "enorme diversidad")),
    ("en", ("heavily", "very heavily")),
    ("ja", ("東京", "大阪")),
    ("ja", ("とても強く", "強く")),
    ("hi", ("विशाल", "बड़ा")),
])
def test_near_duplicate_with_a_small_edit_names_the_kept_id(lang: str,
                                                           edit: tuple[str, str]) -> None:
    selector = no_lid()
    assert isinstance(selector.select(rec(lang, PARA[lang], "orig")), Record)
    out = selector.select(rec(lang, PARA[lang].replace(*edit, 1), "edited"))
    assert isinstance(out, Reject)
    assert (out.code, out.detail) == ("near_duplicate", "near duplicate of orig")


def test_different_texts_in_one_script_are_not_near_duplicates() -> None:
    selector = no_lid()
    outs = [selector.select(rec(lang, PARA[lang], lang)) for lang in ("hi", "mr", "ja", "zh")]
    assert all(isinstance(o, Record) for o in outs)


def test_near_dup_can_be_turned_off() -> None:
    selector = no_lid(near_dup=False)
    selector.select(rec("es", PARA["es"], "orig"))
    assert isinstance(selector.select(rec("es", PARA["es"] + " Fin.", "x")), Record)


@pytest.mark.parametrize("lang", ["hi", "te", "ja", "es", "en", "mr", "zh"])
def test_language_check_accepts_right_language_text(lang: str) -> None:
    assert isinstance(Selector().select(rec(lang, PARA[lang])), Record)


@pytest.mark.parametrize(("label", "text_lang", "code"), [
    ("en", "hi", "wrong_script"),     # Hindi text labelled English
    ("hi", "te", "wrong_script"),     # Telugu script labelled Hindi
    ("hi", "en", "wrong_script"),
    ("ja", "zh", "wrong_language"),   # all Han: the script passes, the identifier does not
    ("es", "en", "wrong_language"),
    ("hi", "mr", "wrong_language"),   # a sibling, but the identifier is sure
])
def test_language_check_rejects_mislabelled_text(label: str, text_lang: str, code: str) -> None:
    out = Selector().select(rec(label, PARA[text_lang]))
    assert isinstance(out, Reject)
    assert out.code == code
    if code == "wrong_language":
        assert f"detected {text_lang}" in out.detail


@pytest.mark.parametrize(("lang", "fragment"), [
    ("hi", "भारत एक विशाल"),            # py3langid: gom 0.29
    ("mr", "माझी आई रोज"),              # hi 0.41
    ("es", "España es un"),             # ext (Extremaduran) 0.69
])
def test_low_confidence_sibling_verdicts_on_short_text_are_accepted(lang: str,
                                                                    fragment: str) -> None:
    assert isinstance(Selector(SelectConfig(min_chars=0)).select(rec(lang, fragment)), Record)


@pytest.mark.parametrize(("verdict", "kept"), [
    ([("mr", 0.60)], True),     # a listed sibling, unsure: accepted
    ([("ne", 0.89)], True),
    ([("mr", 0.97)], False),    # a sibling, but sure
    ([("en", 0.55)], False),    # not a sibling
    ([("hi", 0.30)], True),     # right, however unsure
    ([], True),                 # no verdict
])
def test_sibling_rule(verdict: list[tuple[str, float]], kept: bool) -> None:
    selector = Selector(SelectConfig(near_dup=False), identify=FakeIdentifier(verdict))
    assert isinstance(selector.select(rec("hi", PARA["hi"])), Record) is kept


def test_a_language_the_identifier_does_not_know_gets_the_script_check_only() -> None:
    selector = Selector(identify=FakeIdentifier([("en", 1.0)], labels=frozenset({"en"})))
    assert isinstance(selector.select(rec("te", PARA["te"])), Record)
    out = selector.select(rec("te", PARA["hi"]))
    assert isinstance(out, Reject)
    assert out.code == "wrong_script"
    assert "Devanagari" in out.detail


def test_missing_language_library_is_a_config_error_naming_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    select_module.default_identifier.cache_clear()
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    try:
        with pytest.raises(ConfigError, match="pip install py3langid"):
            Selector()
        assert isinstance(no_lid().select(rec("en", PARA["en"])), Record)
    finally:
        select_module.default_identifier.cache_clear()


def test_context_too_long_uses_the_given_token_counter() -> None:
    config = SelectConfig(lang_id=False, max_context_tokens=100)
    selector = Selector(config, count_tokens=len)
    ok = Record("a", "en", PARA["en"], context={"article": "x" * 100})
    long = Record("b", "en", PARA["en"] + " More.", context={"article": "x" * 60,
                                                              "question": "y" * 41})
    assert isinstance(selector.select(ok), Record)
    out = selector.select(long)
    assert isinstance(out, Reject)
    assert (out.code, out.detail) == ("context_too_long", "context ~101 tokens, budget 100")


def test_context_budget_defaults_to_the_approximate_token_count() -> None:
    selector = Selector(SelectConfig(lang_id=False, max_context_tokens=50))
    out = selector.select(Record("a", "en", PARA["en"], context={"article": PARA["en"] * 3}))
    assert isinstance(out, Reject)
    assert out.code == "context_too_long"


def test_records_without_a_known_language_are_rejected_not_dropped() -> None:
    selector = no_lid()
    codes = [o.code for o in map(selector.select, [rec(None, "x"), rec("xx", "x")])
             if isinstance(o, Reject)]
    assert codes == ["missing_lang", "unknown_language"]


def test_counts_form_a_funnel_that_adds_up() -> None:
    selector = Selector()
    inputs = [rec("es", PARA["es"], "1"), rec("es", PARA["es"], "2"), rec("es", "corto", "3"),
              rec("ja", PARA["ja"], "4"), rec("en", PARA["hi"], "5"), rec("es", " \n ", "6")]
    list(selector.select_all(inputs))
    counts = selector.counts()
    assert list(counts) == ["seen", "kept", *REASONS]
    assert counts["seen"] == 6
    assert counts["kept"] == 2
    assert (counts["duplicate"], counts["too_short"], counts["wrong_script"],
            counts["empty_text"]) == (1, 1, 1, 1)
    assert counts["seen"] == counts["kept"] + sum(counts[c] for c in REASONS)


@pytest.mark.parametrize("bad", [
    {"near_dup_threshold": 0.0}, {"min_script_fraction": 1.5}, {"max_chars": 0},
    {"bands": {"hi": (10, 5)}}, {"num_perm": 4},
])
def test_invalid_config_fails_early(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="selection config"):
        SelectConfig(**bad)  # type: ignore[arg-type]


def test_script_fraction_threshold_tolerates_some_latin() -> None:
    mixed = PARA["hi"] + " Delhi Metro"
    assert isinstance(no_lid().select(rec("hi", mixed)), Record)
    assert get_language("hi").scripts == ("Devanagari",)
