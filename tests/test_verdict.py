"""The judge's verdict parser: what real models write, and properties over any text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlift.pipeline.verdict import Verdict, VerdictError, parse_verdict, reask_message

# Prose that cannot itself look like a verdict (no braces, digits, ':' or '=') or a
# fence line (no backticks).
prose = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Nd", "No", "Nl"),
                              exclude_characters="{}:=`\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                max_size=80)
scores = st.integers(1, 5)


@pytest.mark.parametrize(("text", "score", "reason"), [
    ('{"reason": "Fits well.", "score": 4}', 4, "Fits well."),
    ('```json\n{"reason": "ok", "score": 5}\n```', 5, "ok"),
    ('Sure! Here is my verdict:\n{"reason": "fine", "score": 3}\nI hope this helps.', 3, "fine"),
    ('{"score": "4", "reason": "as text"}', 4, "as text"),
    ('{"score": "4/5", "reason": "with its scale"}', 4, "with its scale"),
    ('{"score": 4.0, "reason": "a float"}', 4, "a float"),
    ("{'reason': 'Python quotes', 'score': 2}", 2, "Python quotes"),
    ('{"score": 4}', 4, ""),
    ('{"reason": ["a", "list"], "score": 4}', 4, '["a", "list"]'),
    ('{"reason": "a {brace} inside", "score": 1}', 1, "a {brace} inside"),
    ('Use {curly} words. {"score": 2, "reason": "r"}', 2, "r"),
    ("Good fit.\nScore: 4", 4, "Good fit."),
    ("Good fit.\nScore: 4/5", 4, "Good fit."),
    ("Good fit.\n**Score:** 5", 5, "Good fit."),
    ("Good fit.\nFinal score = 3 out of 5.", 3, "Good fit."),
    ("Rating: 2 (a poor fit)", 2, ""),
    ("Score: 4\n\nThe instruction asks for exactly what the text gives.", 4,
     "The instruction asks for exactly what the text gives."),
    ("It fits.\nScore: 4\nScore: 4", 4, "It fits."),
    ("```\nIt fits.\nScore: 4\n```", 4, "It fits."),
    # A schema-shaped verdict, score first, cut by max_tokens inside its reason
    # (SmolLM2 on llama-server): the score was written whole.
    ('{\n  "score": 2,\n  "reason": "The sentence is too long. The sentence is too', 2,
     '{\n  "reason": "The sentence is too long. The sentence is too'),
])
def test_a_verdict_whose_meaning_is_plain_is_read(text: str, score: int, reason: str) -> None:
    assert parse_verdict(text) == Verdict(score, reason)


@pytest.mark.parametrize(("text", "code"), [
    ("", "judge_unparsed"),
    ("   \n ", "judge_unparsed"),
    # What SmolLM2-135M answered to judge/fit on llama-server: no score anywhere.
    ("The library is closing for renovation from March to June, but returns will continue.",
     "judge_unparsed"),
    ("The answer to the question is:\n\nThe answer to the question is:", "judge_unparsed"),
    ("<instruction>\nBake a cake with a twist.\n\n<response>\nBake a cake.", "judge_unparsed"),
    ("Score: <integer 1-5>", "judge_unparsed"),
    ('{"reason": "no score here"}', "judge_unparsed"),
    ('{"score": 7}', "judge_out_of_range"),
    ('{"score": 0, "reason": "x"}', "judge_out_of_range"),
    ('{"score": 4.5}', "judge_out_of_range"),
    ('{"score": "five"}', "judge_out_of_range"),
    ('{"score": true}', "judge_out_of_range"),
    ('{"score": null}', "judge_out_of_range"),
    ('{"score": NaN}', "judge_out_of_range"),
    ('{"score": "8/10"}', "judge_out_of_range"),
    ("Score: 8/10", "judge_out_of_range"),
    ("Score: 4.5", "judge_out_of_range"),
    ("Score: 6", "judge_out_of_range"),
    ("Score: 3\nScore: 4", "judge_ambiguous"),
    ('{"score": 2, "reason": "a"}\n{"score": 5, "reason": "b"}', "judge_ambiguous"),
    ('{"score": 2, "reason": "a"}\nScore: 5', "judge_ambiguous"),
    ("Score: 4 or 5", "judge_unparsed"),
    ("I'm sorry, but I can't evaluate this pair.", "judge_refused"),
    ("As an AI, I cannot judge the quality of texts.", "judge_refused"),
])
def test_an_answer_without_one_plain_verdict_fails_with_a_reason_code(text: str,
                                                                      code: str) -> None:
    with pytest.raises(VerdictError) as caught:
        parse_verdict(text)
    assert caught.value.code == code
    assert str(caught.value)  # the message is fed back to the judge on a re-ask


def test_the_reask_names_the_error_and_the_form_wanted() -> None:
    error = VerdictError("the score must be from 1 to 5, got 7", "judge_out_of_range")
    assert "got 7" in reask_message(error, "json") and '"score"' in reask_message(error, "json")
    assert "Score: N" in reask_message(error, "line")


@given(st.text(max_size=400))
def test_any_text_gives_a_score_in_range_or_a_verdict_error(text: str) -> None:
    try:
        verdict = parse_verdict(text)
    except VerdictError as exc:
        assert exc.code in {"judge_unparsed", "judge_ambiguous", "judge_out_of_range",
                            "judge_refused"}
    else:
        assert 1 <= verdict.score <= 5


@given(scores, st.text(max_size=120), prose, prose, st.booleans())
def test_a_json_verdict_inside_any_wrapping_is_read_exactly(score: int, reason: str,
                                                            before: str, after: str,
                                                            fence: bool) -> None:
    body = json.dumps({"reason": reason, "score": score}, ensure_ascii=False)
    if fence:
        body = f"```json\n{body}\n```"
    assert parse_verdict(f"{before}\n{body}\n{after}") == Verdict(score, reason.strip())


@given(scores, st.lists(prose, max_size=4), st.sampled_from(
    ["Score: {}", "score: {}/5", "**Score:** {}", "Score = {} out of 5", "Rating: {}"]))
def test_a_score_line_after_any_prose_is_read(score: int, lines: list[str],
                                              form: str) -> None:
    verdict = parse_verdict("\n".join([*lines, form.format(score)]))
    assert verdict.score == score
    assert verdict.reason == "\n".join(lines).strip()


@given(st.integers().filter(lambda n: not 1 <= n <= 5), st.booleans())
def test_a_score_outside_the_scale_is_never_clamped(score: int, as_line: bool) -> None:
    text = f"Fine.\nScore: {score}" if as_line else json.dumps({"reason": "x", "score": score})
    with pytest.raises(VerdictError) as caught:
        parse_verdict(text)
    assert caught.value.code == "judge_out_of_range"


@given(st.lists(scores, min_size=2, max_size=4).filter(lambda s: len(set(s)) > 1))
def test_disagreeing_verdicts_are_ambiguous_whatever_their_order(values: list[int]) -> None:
    text = "\n".join(json.dumps({"reason": "r", "score": s}) for s in values)
    with pytest.raises(VerdictError) as caught:
        parse_verdict(text)
    assert caught.value.code == "judge_ambiguous"
