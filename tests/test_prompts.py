"""Rendering and lookup of the bundled prompts (mlift.prompts)."""

from __future__ import annotations

import re

import pytest

from mlift.errors import MissingVariablesError, PromptError, UnknownNameError
from mlift.prompts import (
    PromptLibrary,
    check_variables,
    load_prompts,
    render,
    route,
)

ROUTE = re.compile(r"([a-z_]+/[a-z_]+@v[0-9]+) (translate|instruct|judge|eval)"
                   r"( [a-z_]+=[\w.:/@+-]+)*")


@pytest.fixture(scope="module")
def lib() -> PromptLibrary:
    return load_prompts()


def instruct_values(**extra: str) -> dict[str, str]:
    return {"response_en": "The river rose two metres overnight.", "style": "chat",
            "style_hint": "a casual message", "length_hint": "do not mention length", **extra}


def test_bundled_library_has_all_stages_and_a_pool_of_at_least_eight_tasks(
        lib: PromptLibrary) -> None:
    ids = {t.id for t in lib}
    assert {"translate/to_en", "translate/back", "judge/fit", "judge/fit_line"} <= ids
    standalone = [t for t in lib.pool("instruct") if not t.has_context]
    assert len(standalone) >= 8
    assert {"summary", "question", "explain", "article", "rewrite", "opinion", "list",
            "continue"} <= {t.task for t in standalone}
    assert {"summary_context", "question_context"} <= {t.task for t in lib.pool("instruct")}


def test_render_carries_the_route_as_metadata_of_the_system_message(
        lib: PromptLibrary) -> None:
    t = lib.get("translate/to_en")
    messages = render(t, {"text": "नमस्ते", "source_lang": "hi", "source_name": "Hindi"})
    assert [m.role for m in messages] == ["system", "user"]
    assert messages[0].route == "translate/to_en@v1 translate source=hi target=en"
    assert route(t, {"text": "x", "source_lang": "hi"}) == messages[0].route
    assert messages[1].route is None


def test_rendered_messages_are_exactly_the_prompt_file_text_with_no_marker(
        lib: PromptLibrary) -> None:
    # Nothing only the simulator needs may reach what a real endpoint receives.
    for t in lib:
        values = {v: f"value-of-{v}" for v in t.variables}
        messages = render(t, values)
        for rendered, source in zip(messages, t.messages, strict=True):
            assert "mlift" not in rendered.content.lower(), t.name
            assert "<!--" not in rendered.content, t.name
            expected = source.content
            for name, value in values.items():
                expected = expected.replace("{" + name + "}", value)
            assert rendered.content == expected.replace("{{", "{").replace("}}", "}"), t.name


def test_every_bundled_prompt_renders_a_well_formed_route_of_its_stage(
        lib: PromptLibrary) -> None:
    for t in lib:
        values = {v: f"value-of-{v}" for v in t.variables}
        line = render(t, values)[0].route or ""
        match = ROUTE.fullmatch(line)
        assert match is not None, (t.name, line)
        assert (match.group(1), match.group(2)) == (t.name, t.stage)
        assert line.isascii()  # it travels as an HTTP header


@pytest.mark.parametrize(("name", "values", "tags"), [
    ("translate/to_en", {"text": "T", "source_lang": "te", "source_name": "Telugu"},
     ["<text>\nT\n</text>"]),
    ("translate/back", {"text": "T", "target_lang": "ja", "target_name": "Japanese"},
     ["<text>\nT\n</text>"]),
    ("instruct/summary", instruct_values(response_en="R"), ["<response>\nR\n</response>"]),
    ("instruct/summary_context", instruct_values(response_en="R", context_en="C"),
     ["<context>\nC\n</context>", "<response>\nR\n</response>"]),
    ("judge/fit", {"instruction": "I", "response": "R"},
     ["<instruction>\nI\n</instruction>", "<response>\nR\n</response>"]),
    ("judge/fit_line", {"instruction": "I", "response": "R"},
     ["<instruction>\nI\n</instruction>", "<response>\nR\n</response>"]),
])
def test_inputs_go_inside_their_tags_in_the_user_message(
        lib: PromptLibrary, name: str, values: dict[str, str], tags: list[str]) -> None:
    user = render(lib.get(name), values)[-1]
    assert user.role == "user"
    for tag in tags:
        assert tag in user.content


def test_missing_variables_are_all_listed_at_once(lib: PromptLibrary) -> None:
    with pytest.raises(MissingVariablesError) as err:
        render(lib.get("instruct/summary_context"), {"style": "chat"})
    assert err.value.missing == ["context_en", "length_hint", "response_en", "style_hint"]
    assert "context_en, length_hint, response_en, style_hint" in str(err.value)


def test_check_variables_validates_names_before_any_request(lib: PromptLibrary) -> None:
    t = lib.get("judge/fit")
    check_variables(t, ["instruction", "response", "unused"])
    with pytest.raises(MissingVariablesError, match="response"):
        check_variables(t, ["instruction"])


def test_extra_variables_are_ignored(lib: PromptLibrary) -> None:
    t = lib.get("judge/fit")
    plain = render(t, {"instruction": "I", "response": "R"})
    assert render(t, {"instruction": "I", "response": "R", "extra": "x"}) == plain


def test_braces_in_values_are_inserted_verbatim_and_escaped_braces_render_single(
        lib: PromptLibrary) -> None:
    messages = render(lib.get("judge/fit"), {"instruction": "use {response} and {{x}}",
                                             "response": "{'a': 1}"})
    assert "use {response} and {{x}}" in messages[-1].content
    assert "{'a': 1}" in messages[-1].content
    # The JSON example in the judge prompt is written with {{ }} in the file.
    assert '{"reason": "<one or two sentences' in messages[0].content


def test_route_values_stay_single_header_safe_tokens(lib: PromptLibrary) -> None:
    messages = render(lib.get("translate/back"),
                      {"text": "x", "target_lang": "pt BR\r\nX: ü", "target_name": "Portuguese"})
    assert messages[0].route == "translate/back@v1 translate source=en target=pt_BR__X:__"


def test_non_string_variable_is_rejected_with_its_name(lib: PromptLibrary) -> None:
    values: dict[str, object] = {"instruction": "I", "response": 5}
    with pytest.raises(PromptError, match="'response' must be a string"):
        render(lib.get("judge/fit"), values)  # type: ignore[arg-type]


def test_ref_names_id_version_and_hash_prefix(lib: PromptLibrary) -> None:
    t = lib.get("judge/fit", 1)
    assert t.ref == f"judge/fit@v1#{t.content_hash[:12]}"
    assert re.fullmatch(r"[0-9a-f]{64}", t.content_hash)


def test_get_accepts_id_at_version_and_suggests_near_names(lib: PromptLibrary) -> None:
    assert lib.get("judge/fit@v1") is lib.get("judge/fit", 1)
    assert lib.get("judge/fit@v1#abc").version == 1
    with pytest.raises(UnknownNameError, match="Did you mean 'judge/fit'"):
        lib.get("judge/fitt")
    with pytest.raises(UnknownNameError, match="judge/fit@v9"):
        lib.get("judge/fit@v9")


def test_pool_task_names_select_the_task_and_its_context_variant(lib: PromptLibrary) -> None:
    assert [t.task for t in lib.pool("instruct", ["summary"])] == ["summary", "summary_context"]
    assert [t.task for t in lib.pool("judge")] == ["fit", "fit_line", "fit_score_first"]
    with pytest.raises(UnknownNameError, match="Did you mean 'summary'"):
        lib.pool("instruct", ["sumary"])


def test_context_variants_ask_for_the_context_placeholder(lib: PromptLibrary) -> None:
    for t in lib.pool("instruct"):
        system = t.messages[0].content
        assert ("<<CONTEXT>>" in system) == t.has_context, t.name
        assert "{style_hint}" in t.messages[-1].content
        assert "{length_hint}" in t.messages[-1].content


def test_style_data_weights_and_hints_are_loaded(lib: PromptLibrary) -> None:
    assert {c.name for c in lib.styles} >= {"formal", "chat", "query"}
    assert "none" in {c.name for c in lib.length_hints}
    assert all(c.weight > 0 and c.hint for c in (*lib.styles, *lib.length_hints))
    assert lib.style_data.ref.startswith("instruct/styles@v1#")
