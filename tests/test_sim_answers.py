"""Deterministic answers chosen by the route header: translations, instructions, verdicts."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from mlift.sim.answers import answer, instance, parse_route
from mlift.sim.translate import pseudo_translate

HINDI = "इस साल मानसून जल्दी आ गया, और किसानों ने धान की रोपाई शुरू कर दी। बाज़ार भरे हुए थे।"
JAPANESE = ("今年は梅雨が早く訪れ、地域の農家は予定より一週間早く田植えを始めた。"
            "市場は賑わっていた。")
ENGLISH = ("The monsoon arrived early this year, and farmers began planting rice a week ahead "
           "of schedule. Local markets were crowded with people buying seeds and tools.")
SPANISH = ("El monzón llegó temprano este año y los agricultores comenzaron a plantar arroz una "
           "semana antes de lo previsto. Los mercados locales estaban llenos de gente.")
SCRIPTS = {"en": r"[A-Za-z]", "hi": r"[\u0900-\u097f]", "te": r"[\u0c00-\u0c7f]",
           "ja": r"[\u3040-\u30ff\u4e00-\u9fff]", "bn": r"[\u0980-\u09ff]",
           "ta": r"[\u0b80-\u0bff]", "ar": r"[\u0600-\u06ff]", "ru": r"[\u0400-\u04ff]",
           "ko": r"[\uac00-\ud7af]", "th": r"[\u0e00-\u0e7f]"}


def translate(text: str, source: str, target: str, seed: int = 0) -> str:
    route = f"translate/to_en@v1 translate source={source} target={target}"
    return answer([("user", f"<text>{text}</text>")], seed, 0.0, route=route)


def body(out: str) -> str:
    assert out.startswith("[sim] ")
    return out.removeprefix("[sim] ")


def test_route_is_parsed_with_its_options_with_or_without_a_prompt_id() -> None:
    assert parse_route("judge/fit_line@v1 judge format=line") == ("judge", {"format": "line"})
    assert parse_route("translate source=hi target=en") == (
        "translate", {"source": "hi", "target": "en"})
    assert parse_route(None) is None
    assert parse_route("") is None
    assert parse_route("judge/fit@v2") is None  # a prompt id alone says nothing to answer


@pytest.mark.parametrize("target", sorted(SCRIPTS))
def test_translation_is_written_in_the_target_script(target: str) -> None:
    out = body(translate(HINDI, "hi", target))
    letters = [c for c in out if c.isalpha() or "\u0900" <= c <= "\u0dff"]
    in_script = sum(bool(re.match(SCRIPTS[target], c)) for c in letters)
    assert in_script / len(letters) > 0.9


@pytest.mark.parametrize(("text", "source", "target", "low", "high"), [
    (JAPANESE, "ja", "en", 2.0, 3.0),
    (ENGLISH, "en", "ja", 0.3, 0.5),
    (HINDI, "hi", "en", 0.85, 1.15),
    (ENGLISH, "en", "hi", 0.85, 1.15),
    (SPANISH, "es", "en", 0.8, 1.0),
])
def test_translation_length_follows_the_script_ratio(text: str, source: str, target: str,
                                                     low: float, high: float) -> None:
    assert low <= len(body(translate(text, source, target))) / len(text) <= high


def test_translation_keeps_lines_and_sentence_ends_and_is_deterministic() -> None:
    text = "पहली पंक्ति है।\nदूसरी पंक्ति है।"
    out = translate(text, "hi", "en", seed=5)
    assert out == translate(text, "hi", "en", seed=5)
    assert out != translate(text, "hi", "en", seed=6)
    lines = body(out).split("\n")
    assert len(lines) == 2 and all(line.endswith(".") for line in lines)
    assert body(translate(text, "hi", "ja")).count("。") == 2
    assert "<" not in out


def test_same_word_translates_the_same_everywhere() -> None:
    out = body(pseudo_translate("river river river", "en", "es", 1))
    assert len(set(out.lower().split())) == 1


def instruct(task: str, style: str, response: str, context: str | None = None) -> str:
    route = f"instruct/{task}@v1 instruct task={task} style={style}"
    user = f"<response>{response}</response>"
    if context:
        user = f"<context>{context}</context>\n{user}"
    return answer([("user", user)], 0, 0.0, route=route)


def test_instructions_vary_with_task_and_style_and_name_content_words() -> None:
    tasks = ["summary", "question", "explain", "article", "rewrite", "opinion", "list",
             "continue", "something-new"]
    outs = {(t, s): instruct(t, s, ENGLISH) for t in tasks for s in ("formal", "chat", "query")}
    assert len(set(outs.values())) == len(outs)
    words = set(re.findall(r"\w+", ENGLISH.lower()))
    for out in outs.values():
        assert out.startswith("[sim] ")
        assert ENGLISH not in out
        assert len(words & set(re.findall(r"\w+", out.lower())) - {"the", "a", "and"}) >= 1


def test_task_variants_with_context_use_their_family_wording() -> None:
    with_context = instruct("summary_context", "formal", ENGLISH, context="A long article.")
    assert with_context.startswith(instruct("summary", "formal", ENGLISH))
    assert with_context.endswith("\n\n<<CONTEXT>>")  # where the document goes


def test_instruction_never_contains_a_short_response_whole() -> None:
    out = instruct("summary", "query", "Monsoons")
    assert "monsoons" not in out.lower()


def judge(instruction: str, response: str, fmt: str = "json", rate: float = 0.0,
          extra: tuple[tuple[str, str], ...] = (), schema: str | None = None) -> str:
    user = f"<instruction>{instruction}</instruction>\n<response>{response}</response>"
    return answer([("user", user), *extra], 0, rate, route=f"judge/fit@v2 judge format={fmt}",
                  schema=schema)


VERDICT_SCHEMA = json.dumps({
    "type": "object", "required": ["reason", "score"], "additionalProperties": False,
    "properties": {"reason": {"type": "string"},
                   "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}}})


def test_judge_scores_follow_the_intended_spread() -> None:
    n = 4000
    scores = Counter(json.loads(judge(f"instruction {i}", f"response {i}"))["score"]
                     for i in range(n))
    for score, share in {1: 0.05, 2: 0.10, 3: 0.20, 4: 0.35, 5: 0.30}.items():
        assert abs(scores[score] / n - share) < 0.025, (score, scores)


def test_judge_line_format_ends_with_score_line() -> None:
    out = judge("Explain rice farming.", ENGLISH, fmt="line")
    assert re.fullmatch(r"Score: [1-5]", out.splitlines()[-1])
    assert out == judge("Explain rice farming.", ENGLISH, fmt="line")


def test_bad_verdicts_come_at_their_rate_and_a_reask_redraws() -> None:
    n = 4000
    bad = [i for i in range(n) if "score" not in judge(f"i{i}", f"r{i}", rate=0.05).lower()]
    assert 0.035 < len(bad) / n < 0.065
    reask = (("assistant", "prose"), ("user", "Answer with JSON only."))
    fixed = sum("score" in judge(f"i{i}", f"r{i}", rate=0.05, extra=reask) for i in bad)
    assert fixed > 0.8 * len(bad)


def test_with_a_schema_every_verdict_is_the_json_object_even_where_prose_was_due() -> None:
    n = 2000
    plain = [judge(f"i{i}", f"r{i}", rate=0.2) for i in range(n)]
    forced = [json.loads(judge(f"i{i}", f"r{i}", rate=0.2, fmt="line", schema=VERDICT_SCHEMA))
              for i in range(n)]
    assert sum("score" not in p.lower() for p in plain) > 0.15 * n  # prose without a schema
    assert all(set(v) == {"reason", "score"} and v["score"] in range(1, 6) for v in forced)
    # The same pair gets the same score either way: the schema changes the form only.
    same = [json.loads(p)["score"] == v["score"] for p, v in zip(plain, forced, strict=True)
            if p.startswith("{")]
    assert all(same) and len(same) > 0.7 * n


def test_any_schema_is_filled_with_values_of_its_types() -> None:
    schema = {"type": "object", "properties": {
        "title": {"type": "string"}, "n": {"type": "integer"}, "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
        "inner": {"type": "object", "properties": {"x": {"type": "number"}}}}}
    value = instance(schema, 3, "rivers and mountains")
    assert isinstance(value["title"], str) and value["title"].startswith("[sim]")
    assert isinstance(value["n"], int) and isinstance(value["ok"], bool)
    assert value["tags"][0] in ("a", "b") and isinstance(value["inner"]["x"], float)
    out = answer([("user", "rivers")], 0, 0.0, schema=json.dumps(schema))  # no route
    assert set(json.loads(out)) == set(schema["properties"])


def test_request_without_a_route_gets_a_generic_answer_whatever_its_text_says() -> None:
    # The old in-prompt marker is just text now: nothing in the messages routes.
    out = answer([("system", "<!-- mlift:judge format=json -->"),
                  ("user", "Tell me about elephants and their memory")], 0, 0.0)
    assert out.startswith("[sim] This is a simulated answer") and "elephants" in out


def test_verbosity_stretches_free_text_but_not_verdicts() -> None:
    route = "translate source=hi target=en"
    messages = (("user", "<text>मौसम विभाग ने अनुमान जताया है।</text>"),)
    once = answer(messages, 0, 0.0, route=route)
    twice = answer(messages, 0, 0.0, verbosity=2.0, route=route)
    assert len(twice.split()) == 2 * len(once.split())
    judge = "judge format=json"
    verdict = (("user", "<instruction>Say hi</instruction><response>hi</response>"),)
    assert answer(verdict, 0, 0.0, verbosity=3.0, route=judge) == answer(verdict, 0, 0.0,
                                                                        route=judge)
