"""Property: the selector never loses a record, whatever the text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mlift.pipeline.select import REASONS, Reject, SelectConfig, Selector
from mlift.pipeline.sources import Record

SEEDS = ["भारत एक विशाल देश है जहाँ कई भाषाएँ बोली जाती हैं।", "東京は日本の首都です。",
         "España es un país con una gran diversidad cultural.", "London is a large city."]

texts = st.one_of(
    st.text(max_size=300),
    st.builds(lambda seed, n, tail: seed * n + tail, st.sampled_from(SEEDS),
              st.integers(1, 12), st.text(max_size=20)),
)
items = st.lists(st.tuples(st.sampled_from(["hi", "ja", "es", "en", "te", "xx", ""]), texts),
                 max_size=25)


@settings(deadline=None, max_examples=40)
@given(items=items, min_chars=st.integers(0, 120))
def test_each_record_comes_out_exactly_once_as_kept_or_rejected(
        items: list[tuple[str, str]], min_chars: int) -> None:
    selector = Selector(SelectConfig(min_chars=min_chars))
    inputs = [Record(str(i), lang or None, text) for i, (lang, text) in enumerate(items)]
    outs = list(selector.select_all(inputs))
    assert len(outs) == len(inputs)
    for record, out in zip(inputs, outs, strict=True):
        if isinstance(out, Reject):
            assert out.record is record
            assert out.code in REASONS
            assert out.detail
        else:
            assert isinstance(out, Record)
            assert out.id == record.id
            assert out.text and len(out.text) >= min_chars
    counts = selector.counts()
    kept = sum(isinstance(o, Record) for o in outs)
    assert counts["seen"] == len(inputs)
    assert counts["kept"] == kept
    assert counts["kept"] + sum(counts[c] for c in REASONS) == len(inputs)


@settings(deadline=None, max_examples=60)
@given(st.text(max_size=200))
def test_normalised_kept_text_is_stable_when_selected_again(text: str) -> None:
    first = Selector(SelectConfig(lang_id=False, min_chars=0)).select(Record("a", "en", text))
    if isinstance(first, Record):
        again = Selector(SelectConfig(lang_id=False, min_chars=0)).select(first)
        assert isinstance(again, Record)
        assert again.text == first.text
