"""The eval metrics against hand-checked values and reference implementations.

ROUGE: XL-Sum's multilingual tokenization (``mlift.eval.rouge``) on Hindi,
Telugu, Japanese, English and Spanish pairs, checked by hand (the arithmetic
is in the comments) and against the values XL-Sum's own scorer gives
(``multilingual-rouge`` 0.0.1, a packaged copy of csebuetnlp/xl-sum's
``multilingual_rouge_scoring``, ``use_stemmer=False``, Japanese through
fugashi + unidic-lite). When that package is importable the comparison also
runs live, on these pairs and on random mixed-script strings.

chrF++ and spBLEU: equal to the ``sacrebleu`` command line on fixed pairs.
spBLEU uses a SentencePiece model trained here on the fixture sentences and
handed to sacrebleu's own ``--tokenize flores200`` through its cache folder
(``$SACREBLEU``), so both sides run the same tokenizer; the real FLORES-200
model is used in addition when one is found (``MLIFT_TEST_FLORES200_SPM`` or
sacrebleu's cache), and that test says why it is skipped otherwise.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlift.errors import ConfigError
from mlift.eval.bootstrap import interval, mean_rows, mean_score, paired_delta
from mlift.eval.choice import parse_choice
from mlift.eval.mt import ChrFpp, SpBleu, find_spm_model, sacrebleu_cache_path
from mlift.eval.rouge import RougeScorer, XlsumTokenizer, split_letters_digits

ROOT = Path(__file__).resolve().parent.parent

# (lang, reference, prediction, [R1, R2, RL] F-measures from XL-Sum's scorer).
REFERENCE_PAIRS = [
    ("hi", "भारत की राजधानी नई दिल्ली है।", "नई दिल्ली भारत की राजधानी है, यह सच है।",
     [0.8, 0.461538, 0.533333]),
    ("hi", "सरकार ने 2024 में ₹500 करोड़ की योजना शुरू की।",
     "सरकार ने ५०० करोड़ रुपये की नई योजना 2024 में शुरू की है।", [0.75, 0.272727, 0.583333]),
    ("te", "హైదరాబాద్ తెలంగాణ రాజధాని.", "తెలంగాణ రాజధాని హైదరాబాద్ నగరం.",
     [0.857143, 0.4, 0.571429]),
    ("te", "వర్షాల కారణంగా రైతులు నష్టపోయారు; ప్రభుత్వం సహాయం ప్రకటించింది.",
     "ప్రభుత్వం రైతులకు సహాయం ప్రకటించింది, వర్షాల వల్ల పంటలు నష్టపోయాయి.",
     [0.533333, 0.153846, 0.4]),
    ("en", "The cat sat on the mat in 2023.", "A cat was sitting on the mat, 2023!",
     [0.625, 0.285714, 0.625]),
    ("en", "Floods hit the north-east; 1,200 people were moved to safety.",
     "About 1200 people moved to safety after floods hit the North-East.",
     [0.75, 0.545455, 0.416667]),
    ("ja", "東京は日本の首都です。", "日本の首都は東京である。", [0.769231, 0.363636, 0.461538]),
    ("ja", "大雨の影響で、九州では3万人が避難しました。", "九州で大雨が降り、約3万人が避難した。",
     [0.714286, 0.461538, 0.642857]),
    ("es", "El gobierno aprobó una nueva ley de educación.",
     "Se aprobó la nueva ley de educación del gobierno.", [0.705882, 0.4, 0.588235]),
]
_XLSUM_LANG = {"hi": "hindi", "te": "telugu", "en": "english", "ja": "japanese", "es": "spanish"}


# ------------------------------------------------------------------ ROUGE

def test_tokenizer_keeps_indic_words_whole_and_drops_punctuation() -> None:
    assert XlsumTokenizer("hi").tokenize("भारत की राजधानी नई दिल्ली है।") == [
        "भारत", "की", "राजधानी", "नई", "दिल्ली", "है"]
    # The danda, commas and the zero-width joiner are not words; vowel signs stay.
    assert XlsumTokenizer("te").tokenize("హైదరాబాద్, తెలంగాణ\u200c రాజధాని.") == [
        "హైదరాబాద్", "తెలంగాణ", "రాజధాని"]
    # Numbers apart from letters and currency signs; Devanagari digits are digits.
    assert XlsumTokenizer("hi").tokenize("₹500 करोड़ ५००रुपये") == [
        "₹", "500", "करोड़", "५००", "रुपये"]
    assert XlsumTokenizer("en").tokenize("North-East: 1,200 people!") == [
        "north", "east", "1", "200", "people"]


def test_japanese_is_segmented_into_words_and_chinese_into_ideographs() -> None:
    assert XlsumTokenizer("ja").tokenize("東京は日本の首都です。") == [
        "東京", "は", "日本", "の", "首都", "です"]
    # Without a segmenter (Chinese here), each ideograph is a token.
    assert XlsumTokenizer("zh").tokenize("北京是首都。") == ["北", "京", "是", "首", "都"]


def test_letters_digits_and_marks_split_as_the_aggressive_pretokenizer_does() -> None:
    assert split_letters_digits("abc123def") == ["abc", "123", "def"]
    assert split_letters_digits("x²³") == ["x", "²³"]
    assert split_letters_digits("😀😀ok") == ["😀", "😀", "ok"]
    assert split_letters_digits("€\u0301₹") == ["€\u0301", "₹"]  # a mark stays with its base


def test_rouge_of_hand_checked_pairs() -> None:
    # Hindi: ref 6 tokens, prediction 9 (है twice). Unigrams: 6 clipped matches,
    # P 6/9, R 6/6 → F 0.8. Bigrams: नई-दिल्ली, भारत-की, की-राजधानी of 5 and 8 → F 6/13.
    # LCS भारत की राजधानी है = 4: P 4/9, R 4/6 → F 8/15.
    got = RougeScorer("hi").score(*REFERENCE_PAIRS[0][1:3]).scores
    assert got == pytest.approx({"rouge1": 0.8, "rouge2": 6 / 13, "rougeL": 8 / 15})
    # Telugu: 3 vs 4 tokens, all 3 match → F 6/7; bigram తెలంగాణ-రాజధాని of 2 and 3
    # → F 0.4; LCS తెలంగాణ రాజధాని = 2 → F 4/7.
    got = RougeScorer("te").score(*REFERENCE_PAIRS[2][1:3]).scores
    assert got == pytest.approx({"rouge1": 6 / 7, "rouge2": 0.4, "rougeL": 4 / 7})
    # English: 8 vs 8 tokens, cat/on/the/mat/2023 match → 5/8; on-the, the-mat of 7
    # and 7 → 2/7; LCS cat on the mat 2023 → 5/8.
    got = RougeScorer("en").score(*REFERENCE_PAIRS[4][1:3]).scores
    assert got == pytest.approx({"rouge1": 5 / 8, "rouge2": 2 / 7, "rougeL": 5 / 8})
    # Japanese: 東京/は/日本/の/首都/です vs 日本/の/首都/は/東京/で/ある: 5 matches,
    # P 5/7, R 5/6 → F 10/13; 日本の, の首都 of 5 and 6 → F 4/11; LCS 日本 の 首都
    # → F 6/13.
    got = RougeScorer("ja").score(*REFERENCE_PAIRS[6][1:3]).scores
    assert got == pytest.approx({"rouge1": 10 / 13, "rouge2": 4 / 11, "rougeL": 6 / 13})


@pytest.mark.parametrize(("lang", "reference", "prediction", "expected"), REFERENCE_PAIRS)
def test_rouge_equals_xlsum_scorer(lang: str, reference: str, prediction: str,
                                   expected: list[float]) -> None:
    got = RougeScorer(lang).score(reference, prediction).scores
    assert [round(got[k], 6) for k in ("rouge1", "rouge2", "rougeL")] == expected


def test_rouge_equals_xlsum_scorer_live_on_random_mixed_script_text() -> None:
    mr = pytest.importorskip(
        "multilingual_rouge.rouge_scorer",
        reason="XL-Sum's scorer (pip install multilingual-rouge unidic-lite) is not installed; "
               "its values are pinned in test_rouge_equals_xlsum_scorer")
    from multilingual_rouge import tokenization_wrapper

    for lang, ref, pred, expected in REFERENCE_PAIRS:
        ref_scores = mr.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False,
                                    lang=_XLSUM_LANG[lang]).score(ref, pred)
        assert [round(ref_scores[k].fmeasure, 6) for k in ("rouge1", "rouge2", "rougeL")] == \
            expected
    alphabet = list("abcXYZ019 हिंदीभारत१२३తెలుగు౧東京日本語のはテスト１２ñé€₹😀²½.,;:!?()-।、。")
    rng = random.Random(7)
    for lang in ("hi", "te", "en", "ja"):
        theirs = mr.MultiTokenizer(_XLSUM_LANG[lang])
        for _ in range(500):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            # Their pretokenizer glues a word-initial combining mark to an escaped
            # space ("％0020ि"); ours keeps the mark alone (see split_letters_digits).
            expected = [t.replace("％0020", "")
                        for t in tokenization_wrapper.tokenize(text, None, theirs)]
            assert XlsumTokenizer(lang).tokenize(text) == expected


def test_empty_prediction_scores_zero() -> None:
    assert RougeScorer("hi").score("भारत की राजधानी", "").scores == {
        "rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


# ------------------------------------------------------------ chrF++, spBLEU

HYPS = ["The cat is on the mat.", "There is a dog in the garden today.",
        "नई दिल्ली भारत की राजधानी है।", "東京は日本の首都である。", "Hola, ¿cómo estás?"]
REFS = ["The cat sat on the mat.", "A dog is in the garden.",
        "भारत की राजधानी नई दिल्ली है।", "日本の首都は東京です。", "Hola, ¿qué tal estás?"]


def _sacrebleu_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> float:
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("\n".join(HYPS) + "\n", encoding="utf-8")
    ref.write_text("\n".join(REFS) + "\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), "-b",
                          *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return float(out.stdout.strip())


@pytest.fixture(scope="module")
def toy_spm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small SentencePiece model trained here, offline, on the fixture sentences."""
    sentencepiece = pytest.importorskip("sentencepiece")
    folder = tmp_path_factory.mktemp("spm")
    corpus = folder / "corpus.txt"
    flores = [json.loads(line) for line in
              (ROOT / "samples" / "eval" / "flores.jsonl").read_text("utf-8").splitlines()]
    lines = [v for row in flores for k, v in row.items() if k.startswith("sentence_")]
    corpus.write_text("\n".join(lines + HYPS + REFS) + "\n", encoding="utf-8")
    sentencepiece.SentencePieceTrainer.Train(
        input=str(corpus), model_prefix=str(folder / "toy"), vocab_size=200, hard_vocab_limit=False,
        character_coverage=1.0, model_type="unigram", minloglevel=2)
    return folder / "toy.model"


def test_chrf_plus_plus_equals_sacrebleu(tmp_path: Path) -> None:
    expected = _sacrebleu_cli(tmp_path, "-m", "chrf", "--chrf-word-order", "2")
    metric = ChrFpp()
    assert metric.corpus(HYPS, REFS) == pytest.approx(expected, abs=0.05)  # CLI rounds to 0.1
    # From summed per-sentence statistics (what the bootstrap resamples): the same score.
    assert metric.score(metric.statistics(HYPS, REFS).sum(axis=0)) == pytest.approx(
        metric.corpus(HYPS, REFS))
    assert "nw:2" in metric.signature and "nc:6" in metric.signature


def test_spbleu_equals_sacrebleu_flores200_with_the_same_model(tmp_path: Path,
                                                               toy_spm: Path) -> None:
    home = tmp_path / "sacrebleu"
    (home / "models").mkdir(parents=True)
    (home / "models" / "flores200sacrebleuspm").write_bytes(toy_spm.read_bytes())
    expected = _sacrebleu_cli(tmp_path, "-m", "bleu", "--tokenize", "flores200",
                              env={"SACREBLEU": str(home)})
    metric = SpBleu(toy_spm)
    assert metric.corpus(HYPS, REFS) == pytest.approx(expected, abs=0.05)
    assert metric.score(metric.statistics(HYPS, REFS).sum(axis=0)) == pytest.approx(
        metric.corpus(HYPS, REFS))
    assert "tok:flores200" in metric.signature


def test_spbleu_with_the_real_flores200_model(tmp_path: Path) -> None:
    given = os.environ.get("MLIFT_TEST_FLORES200_SPM")
    model = Path(given) if given else find_spm_model(None)
    if model is None or not model.is_file():
        pytest.skip("the FLORES-200 SentencePiece model is not on this machine (no package "
                    "ships it and tests never download): set MLIFT_TEST_FLORES200_SPM=FILE "
                    f"or put it at {sacrebleu_cache_path()}; spBLEU's code path is tested "
                    "with a locally trained model above")
    home = tmp_path / "sacrebleu"
    (home / "models").mkdir(parents=True)
    (home / "models" / "flores200sacrebleuspm").write_bytes(model.read_bytes())
    expected = _sacrebleu_cli(tmp_path, "-m", "bleu", "--tokenize", "flores200",
                              env={"SACREBLEU": str(home)})
    assert SpBleu(model).corpus(HYPS, REFS) == pytest.approx(expected, abs=0.05)


def test_missing_or_broken_spm_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--spm-model .*no such file.*--metrics chrf"):
        find_spm_model(tmp_path / "nope.model")
    bad = tmp_path / "bad.model"
    bad.write_text("not a model", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a SentencePiece model"):
        SpBleu(bad)


# -------------------------------------------------------------- bootstrap

def test_bootstrap_interval_is_seeded_and_contains_the_mean() -> None:
    rows = mean_rows([float(i % 2) for i in range(200)])
    a = interval(rows, mean_score, seed=3)
    assert a == interval(rows, mean_score, seed=3)
    assert a != interval(rows, mean_score, seed=4)
    assert a.value == pytest.approx(50.0) and a.low < 50.0 < a.high
    # Binomial standard error at n=200, p=0.5 is 3.5 points: a 95 % interval ~ ±6.9.
    assert 5.0 < (a.high - a.low) / 2 < 9.0


def test_paired_interval_is_tighter_than_separate_ones_and_has_the_right_sign() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.random(300)
    a = (difficulty + 0.05 > 0.5).astype(float)  # model A solves a few more items
    b = (difficulty > 0.5).astype(float)
    delta = paired_delta(mean_rows(list(a)), mean_rows(list(b)), mean_score, seed=1)
    assert delta.value == pytest.approx(100 * (a.mean() - b.mean()))
    assert 0 < delta.low <= delta.value <= delta.high
    assert delta.p_value is not None and delta.p_value < 0.05
    sep_a, sep_b = interval(mean_rows(list(a)), mean_score), interval(mean_rows(list(b)),
                                                                        mean_score)
    assert delta.high - delta.low < (sep_a.high - sep_a.low) / 2 + (sep_b.high - sep_b.low) / 2
    same = paired_delta(mean_rows(list(a)), mean_rows(list(a)), mean_score)
    assert (same.value, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_bootstrap_of_corpus_bleu_resamples_statistics_not_sentence_scores(toy_spm: Path
                                                                           ) -> None:
    metric = SpBleu(toy_spm)
    stats = metric.statistics(HYPS, REFS)
    got = interval(stats, metric.score, resamples=200)
    assert got.value == pytest.approx(metric.corpus(HYPS, REFS))
    assert got.low <= got.value <= got.high


# ------------------------------------------------------------ MMLU answers

OPTIONS = ["Paris", "Londres", "Madrid", "Roma"]


@pytest.mark.parametrize(("reply", "letter"), [
    ("B", "B"), (" (B) ", "B"), ("B.", "B"), ("**B**", "B"), ("Answer: B", "B"),
    ("The answer is B", "B"), ("The correct answer is: (C)", "C"), ("b", "B"),
    ("Ｂ", "B"), ('{"answer": "D"}', "D"), ("```json\n{\"answer\": \"A\"}\n```", "A"),
    ("B) Londres", "B"), ("C. madrid", "C"), ("**Answer: B**", "B"),
    # What SmolLM2-135M wrote through llama.cpp: a clean first line, then more.
    ("C. Madrid\n\nThe correct answer is C", "C"), ("B\nBecause London is the capital.", "B"),
    ("B\nthe answer is a guess", "B"),
])
def test_clean_answers_parse(reply: str, letter: str) -> None:
    assert parse_choice(reply, OPTIONS) == letter


@pytest.mark.parametrize("reply", [
    "", "B or C", "I think it is probably B because of the capital.", "A good question!",
    "B) Madrid", "E", '{"answer": "maybe"}', '{"answer": 2}', "The answer is B, then C",
    "Answer:", "BC", "C. 56\n\nThe answer is D. 64", "B\n\nThe answer is C.", "B\nA",
    "C. Roma\nmore", "I think B\nmaybe",
])
def test_unclean_answers_do_not_parse(reply: str) -> None:
    assert parse_choice(reply, OPTIONS) is None
