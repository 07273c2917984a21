"""mlift.tokens: tokenizer choice, the script-aware approximation, chat overhead, cutting."""

from __future__ import annotations

import pytest

from mlift.tokens import (
    approx_tokens,
    count_chat_tokens,
    count_tokens,
    tokenizer_name,
    truncate_tokens,
)
from mlift.types import Message

SAMPLES = {
    "en": "The monsoon arrived early this year, and farmers across the region began planting "
          "rice a week ahead of schedule. Local markets were crowded with people buying seeds.",
    "hi": "इस साल मानसून जल्दी आ गया, और पूरे क्षेत्र के किसानों ने तय समय से एक सप्ताह पहले धान "
          "की रोपाई शुरू कर दी। स्थानीय बाज़ार बीज और औज़ार खरीदने वाले लोगों से भरे हुए थे।",
    "te": "ఈ సంవత్సరం వర్షాకాలం త్వరగా వచ్చింది, ప్రాంతంలోని రైతులు షెడ్యూల్ కంటే ఒక వారం ముందే "
          "వరి నాట్లు ప్రారంభించారు.",
    "ja": "今年は梅雨が早く訪れ、地域の農家は予定より一週間早く田植えを始めた。"
          "地元の市場は種や道具を買う人々で賑わっていた。",
}
needs_o200k = pytest.mark.skipif(tokenizer_name("gpt-4o") != "o200k_base",
                                 reason="o200k_base not available offline (TIKTOKEN_CACHE_DIR)")


def test_tokenizer_is_chosen_by_model_family() -> None:
    assert tokenizer_name("claude-3-5-haiku-latest") == "approx"
    assert tokenizer_name("default") == "approx"
    assert tokenizer_name("gpt-4o-mini") in ("o200k_base", "approx")
    assert tokenizer_name("o3-mini") == tokenizer_name("gpt-4.1")
    assert tokenizer_name("gpt-3.5-turbo") in ("cl100k_base", "approx")


def test_approximation_charges_scripts_differently() -> None:
    # Same meaning, very different characters per token.
    per_char = {k: approx_tokens(v) / len(v) for k, v in SAMPLES.items()}
    assert per_char["en"] < per_char["hi"] < per_char["ja"]
    assert per_char["te"] > per_char["en"]
    assert approx_tokens("") == 0 and approx_tokens("a") == 1


@needs_o200k
@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_approximation_is_close_to_o200k(lang: str) -> None:
    exact = count_tokens(SAMPLES[lang], "gpt-4o")
    assert 0.8 <= approx_tokens(SAMPLES[lang]) / exact <= 1.3


def test_chat_overhead_is_three_per_message_plus_three() -> None:
    model = "claude-x"  # approx: role names are one token each
    pairs = [("system", "be brief"), ("user", "hello there")]
    expected = 3 + sum(3 + 1 + approx_tokens(text) for _, text in pairs)
    assert count_chat_tokens(pairs, model) == expected
    assert count_chat_tokens([Message("system", "be brief"), Message("user", "hello there")],
                             model) == expected


@pytest.mark.parametrize("model", ["gpt-4o", "claude-x"])
def test_truncate_cuts_to_the_token_budget(model: str) -> None:
    text = SAMPLES["hi"]
    cut, was_cut = truncate_tokens(text, 7, model)
    assert was_cut and text.startswith(cut)
    assert count_tokens(cut, model) <= 7
    assert truncate_tokens(text, 10_000, model) == (text, False)
