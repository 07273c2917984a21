"""Checks on model answers: the wrapping real models add, and what makes an answer a reject.

The bad answers quoted here are what SmolLM2-135M-Instruct wrote for mlift's
prompts on llama-server (shortened); the good ones are the bundled samples.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlift.langs import get_language
from mlift.pipeline import validate
from mlift.pipeline.validate import clean_answer, repetitive

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ENGLISH_IFT = [json.loads(line) for line in
               (SAMPLES / "english_ift.jsonl").read_text(encoding="utf-8").splitlines()]
HINDI, SPANISH = get_language("hi"), get_language("es")
# The reason codes in the module's table.
CODES = {line.split()[0] for line in (validate.__doc__ or "").splitlines()
         if re.match(r"^[a-z_]+ {2,}\S", line) and not line.startswith("code ")}
RESPONSE = ("Sunlight contains all colours, but as it passes through the atmosphere it bumps "
            "into gas molecules that scatter short wavelengths far more strongly than long ones.")


def sample_texts() -> list[str]:
    texts = []
    for path in sorted(SAMPLES.glob("**/*.jsonl")):
        if "bad" in path.parts:  # deliberately broken input files
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts += [v for v in record.values() if isinstance(v, str) and len(v) > 40]
    return texts


@pytest.mark.parametrize(("raw", "clean"), [
    ("Sure! Here is the request:\nWrite a poem about rain.", "Write a poem about rain."),
    ("Here's a possible instruction: Write a poem about rain.", "Write a poem about rain."),
    ("Certainly!\n\nWrite a poem about rain.", "Write a poem about rain."),
    ('"Write a poem about rain."', "Write a poem about rain."),
    ("“Write a poem about rain.”", "Write a poem about rain."),
    ("Instruction: Write a poem.", "Write a poem."),
    ("**Request:** Write a poem.", "Write a poem."),
    ("```\nWrite a poem.\n```", "Write a poem."),
    ("```text\nWrite a poem.\n```", "Write a poem."),
    ("<instruction>\nWrite a poem.\n</instruction>", "Write a poem."),
    ("Write a poem.\n\nThis request asks for a short poem about rain.", "Write a poem."),
    ("Write a poem.\n\nNote: I kept it short.", "Write a poem."),
    ("Write a poem.\n\nI hope this helps!", "Write a poem."),
    ('Sure! Here is the request:\n\n"Write a poem."\n\nLet me know if you need more.',
     "Write a poem."),
    ("Here is the translation:\nहमें बताइए", "हमें बताइए"),
    ("Hindi translation: हमें बताइए", "हमें बताइए"),
])
def test_wrapping_with_one_reading_comes_off(raw: str, clean: str) -> None:
    assert clean_answer(raw, labels=("Hindi",)) == clean


@pytest.mark.parametrize("text", [
    "Here is my situation: I lost my keys. What should I do first?",
    "Sure, I can help.",
    "Write about \"rain\" and \"snow\" in one poem.",
    "The request for a refund was denied.\n\nThe request is urgent: how do I appeal?",
    "Title:\nDemonstrate how sunlight scatters.",
    "'Tis the season: suggest three winter recipes.",
])
def test_text_that_could_mean_something_else_is_left_alone(text: str) -> None:
    assert clean_answer(text) == text.strip()


def test_the_samples_instructions_need_no_cleaning_and_pass_every_check() -> None:
    for record in ENGLISH_IFT:
        instruction, response = record["instruction"], record["output"]
        assert clean_answer(instruction) == instruction
        checked = validate.instruction(instruction, "stop", response, has_context=False)
        assert checked == validate.Checked(instruction), record["id"]


def test_no_natural_text_in_the_samples_counts_as_a_loop() -> None:
    texts = sample_texts()
    assert len(texts) > 100
    assert [t[:60] for t in texts if repetitive(t)] == []


@pytest.mark.parametrize(("text", "finish", "code"), [
    ("", "stop", "empty_output"),
    ("La línea de la línea de la línea de la línea de la línea de la línea de la línea de la "
     "línea de la línea de la línea de la", "length", "repetition"),
    ("The answer to the question is:\n\n" * 12, "stop", "repetition"),
    ("Write a detailed guide to the history of the town, its people and its",
     "length", "truncated"),
    ("I'm sorry, but I can't help with this request.", "stop", "refusal"),
    ("<response>\nSunlight contains all colours.\n</response>\nStyle of the request: a "
     "casual message", "stop", "prompt_echo"),
    ("Option 1: Explain why the sky is blue.\nOption 2: Why is the sky blue?", "stop",
     "alternatives"),
    (RESPONSE, "stop", "echo"),
    ("यह बताइए कि दिन में आकाश नीला क्यों दिखता है और शाम को लाल क्यों।", "stop",
     "wrong_language"),
])
def test_an_instruction_that_cannot_be_used_is_a_reject_with_its_code(
        text: str, finish: str, code: str) -> None:
    checked = validate.instruction(text, finish, RESPONSE, has_context=False)
    assert checked.problem is not None and checked.problem[0] == code


def test_an_instruction_identified_as_another_language_is_a_reject() -> None:
    def spanish(_text: str) -> list[tuple[str, float]]:
        return [("es", 0.99), ("pt", 0.01)]

    text = "Explícame por qué el cielo se ve azul durante el día y rojo al atardecer."
    checked = validate.instruction(text, "stop", RESPONSE, has_context=False,
                                   identify=spanish)
    assert checked.problem is not None and checked.problem[0] == "wrong_language"
    unsure = validate.instruction(text, "stop", RESPONSE, has_context=False,
                                  identify=lambda _t: [("es", 0.6), ("en", 0.4)])
    assert unsure.problem is None


def test_a_wrapped_instruction_is_used_without_its_wrapping() -> None:
    raw = 'Sure! Here is the request:\n\n"Why does the sky look blue during the day?"'
    checked = validate.instruction(raw, "stop", RESPONSE, has_context=False)
    assert checked == validate.Checked("Why does the sky look blue during the day?")


@pytest.mark.parametrize(("text", "code"), [
    # SmolLM2 "translating" a Spanish news item by copying it.
    ("La pequeña localidad de San Román del Valle celebrará este fin de semana su "
     "tradicional fiesta de la vendimia, que este año coincide con una de las mejores "
     "cosechas.", "untranslated"),
    ("एक छोटा सा शहर इस सप्ताहांत अपना पारंपरिक उत्सव मनाएगा।", "wrong_language"),
    ("I cannot translate this text.", "refusal"),
])
def test_a_translation_into_english_that_is_not_one_is_a_reject(text: str, code: str) -> None:
    source = ("La pequeña localidad de San Román del Valle celebrará este fin de semana su "
              "tradicional fiesta de la vendimia, que este año coincide con una de las "
              "mejores cosechas de la última década, según la cooperativa local.")
    checked = validate.to_english(text, "stop", source)
    assert checked.problem is not None and checked.problem[0] == code


def test_a_translation_into_english_keeps_names_and_numbers_of_the_source() -> None:
    source = "El equipo femenino del Atlético Ribera logró el domingo el ascenso (2-1)."
    checked = validate.to_english("Translation: Atlético Ribera's women's team won "
                                  "promotion on Sunday (2-1).", "stop", source)
    assert checked == validate.Checked("Atlético Ribera's women's team won promotion on "
                                       "Sunday (2-1).")


@pytest.mark.parametrize(("text", "lang", "code"), [
    ("The sentence is: \"The new employee was very nervous on his first day.\"", HINDI,
     "still_english"),
    ("आपका प्राप्णा " + "आपका " * 40, HINDI, "repetition"),
    ("<text>\n<img src=\"x.png\"> hola", SPANISH, "prompt_echo"),
])
def test_a_back_translation_that_is_not_one_is_a_reject(text: str, lang: object,
                                                        code: str) -> None:
    assert isinstance(lang, type(HINDI))
    checked = validate.back_translation(text, "stop", lang, has_context=False)
    assert checked.problem is not None and checked.problem[0] == code


def test_a_labelled_back_translation_is_used_without_its_label() -> None:
    checked = validate.back_translation("Hindi translation: दिन में आकाश नीला क्यों दिखता है?",
                                        "stop", HINDI, has_context=False)
    assert checked == validate.Checked("दिन में आकाश नीला क्यों दिखता है?")


# -- properties --------------------------------------------------------------------

instructions = st.sampled_from([r["instruction"] for r in ENGLISH_IFT])


def layer(*forms: str) -> st.SearchStrategy[str]:
    return st.sampled_from(["{}", *forms])


# Wrappings in the order models put them on: quotes, then a fence or tags, a
# label, a preamble, a note after it all.
wrappings = st.tuples(
    layer('"{}"', "“{}”", "'{}'"),
    layer("```\n{}\n```", "```text\n{}\n```", "<instruction>{}</instruction>"),
    layer("Instruction: {}", "**Request:** {}", "Prompt:\n{}"),
    layer("Sure! Here is the request:\n{}", "Here's the instruction: {}", "Certainly!\n\n{}"),
    layer("{}\n\nNote: it is short.", "{}\n\nThis request asks for what the text gives.",
          "{}\n\nI hope this helps!"))


@given(instructions, wrappings)
def test_any_wrapping_around_an_instruction_comes_off(instruction: str,
                                                      layers: tuple[str, ...]) -> None:
    text = instruction
    for form in layers:
        text = form.format(text)
    assert clean_answer(text) == instruction


@given(st.text(max_size=300))
def test_cleaning_is_idempotent_and_never_adds_text(text: str) -> None:
    once = clean_answer(text)
    assert clean_answer(once) == once
    assert len(once) <= len(text.strip())


@given(st.text(max_size=300), st.sampled_from(["stop", "length", "other"]), st.booleans())
def test_the_checks_never_raise_on_any_answer(text: str, finish: str, context: bool) -> None:
    for checked in (validate.instruction(text, finish, RESPONSE, has_context=context),
                    validate.to_english(text, finish, RESPONSE),
                    validate.back_translation(text, finish, HINDI, has_context=context),
                    validate.back_translation(text, finish, SPANISH, has_context=context)):
        assert checked.problem is None or checked.problem[0] in CODES


@given(st.text(st.characters(categories=("L",)), min_size=4, max_size=12),
       st.integers(6, 30))
def test_a_phrase_said_over_and_over_is_a_loop(word: str, times: int) -> None:
    phrase = f"the {word} of the town "
    assert repetitive(phrase * times)
