"""Seeded draws of instruction prompt, style and length hint (mlift.prompts.draw)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlift.errors import PromptError
from mlift.prompts import PromptLibrary, draw, load_prompts, render

LIB = load_prompts()
LIB_AGAIN = load_prompts()  # a second, independent load: draws must not depend on the instance
STANDALONE = {t.task for t in LIB.pool("instruct") if not t.has_context}
WITH_CONTEXT = {t.task for t in LIB.pool("instruct") if t.has_context}


@settings(max_examples=200)
@given(seed=st.integers(min_value=-(2**63), max_value=2**63), item_id=st.text(max_size=60),
       context=st.booleans())
def test_same_seed_and_id_always_draw_the_same(seed: int, item_id: str, context: bool) -> None:
    first = draw(seed, item_id, LIB, context=context)
    again = draw(seed, item_id, LIB_AGAIN, context=context)
    assert first == again
    assert first.template.has_context == context


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), prefix=st.text(max_size=10))
def test_different_ids_spread_over_every_task_style_and_length(seed: int, prefix: str) -> None:
    draws = [draw(seed, f"{prefix}{i}", LIB) for i in range(400)]
    assert {d.template.task for d in draws} == STANDALONE
    assert {d.style.name for d in draws} == {c.name for c in LIB.styles}
    assert {d.length.name for d in draws} == {c.name for c in LIB.length_hints}


def test_draw_order_does_not_matter() -> None:
    ids = [f"doc-{i}" for i in range(50)]
    forward = {i: draw(7, i, LIB) for i in ids}
    backward = {i: draw(7, i, LIB) for i in reversed(ids)}
    assert forward == backward


def test_style_and_length_frequencies_follow_their_weights() -> None:
    draws = [draw(3, f"item-{i}", LIB) for i in range(8000)]
    for attr, choices in (("style", LIB.styles), ("length", LIB.length_hints)):
        counts = Counter(getattr(d, attr).name for d in draws)
        total = sum(c.weight for c in choices)
        for c in choices:
            assert counts[c.name] / len(draws) == pytest.approx(c.weight / total, abs=0.03)
    tasks = Counter(d.template.task for d in draws)
    assert max(tasks.values()) / min(tasks.values()) < 1.3


def test_another_seed_draws_differently() -> None:
    ids = [f"doc-{i}" for i in range(100)]
    a = [draw(1, i, LIB).template.task for i in ids]
    b = [draw(2, i, LIB).template.task for i in ids]
    assert a != b


def test_context_records_draw_only_context_variants() -> None:
    tasks = {draw(5, f"x{i}", LIB, context=True).template.task for i in range(200)}
    assert tasks == WITH_CONTEXT


def test_task_filter_restricts_the_draw() -> None:
    tasks = {draw(5, f"x{i}", LIB, ["question", "list"]).template.task for i in range(100)}
    assert tasks == {"question", "list"}
    assert draw(5, "x", LIB, ["summary"], context=True).template.task == "summary_context"


def test_no_candidate_is_a_clear_error() -> None:
    with pytest.raises(PromptError, match="no instruct context variants among opinion"):
        draw(5, "x", LIB, ["opinion"], context=True)


def test_draw_variables_fill_the_drawn_template() -> None:
    d = draw(11, "item", LIB, context=True)
    messages = render(d.template, d.variables("answer", context_en="article"))
    assert f"style={d.style.name}" in (messages[0].route or "")
    assert d.style.hint in messages[-1].content and d.length.hint in messages[-1].content
    assert d.styles_ref == LIB.style_data.ref


def test_library_without_style_data_says_so() -> None:
    empty = PromptLibrary(list(LIB), None)
    with pytest.raises(PromptError, match=r"no instruct/styles\.toml"):
        draw(1, "x", empty)
