"""The answer letter of a multiple-choice reply, extracted strictly.

A reply counts only if it *is* an answer, not if it merely contains a letter:
"B", "(B)", "B.", "**B**", "Answer: B", "The answer is B", "B) <the text of
option B>", a JSON object ``{"answer": "B"}`` (what a schema-constrained
endpoint returns), full-width ``Ｂ`` (NFKC) and a lower-case lone letter all
parse; "B or C", "I think it is probably B because …", a letter with some
other option's text, a letter beyond the question's options, or an empty
reply do not. A clean first line followed by an explanation counts when the
explanation states no other letter ("C. Tokyo\n\nThe correct answer is C");
"C. 56\n\nThe answer is D. 64" contradicts itself and does not. Scanning
prose for the first capital letter would credit a model for the "A" of "A
good question"; an unparsed reply is scored wrong and
its rate is reported next to the accuracy, so format failures are visible
instead of being silently guessed into right or wrong answers.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJ"
_LABEL = re.compile(r"^(?:the\s+)?(?:correct\s+|final\s+|best\s+)?(?:answer|option|choice)"
                    r"(?:\s+is)?\s*[:：]?\s*", re.IGNORECASE)
_WRAP = re.compile(r"^(?:\*\*|__|[`\"'“”‘’«»])+|(?:\*\*|__|[`\"'“”‘’«»])+$")
_LETTER = re.compile(r"^[(\[]?([A-Ja-j])[)\]]?[.。:：]?$")
_LETTER_THEN_TEXT = re.compile(r"^[(\[]?([A-J])(?:[)\].:：]|\s-)\s*(.+)$", re.DOTALL)
# "the answer is D", "Answer: (D)", "option D" anywhere in a trailing explanation.
_STATED = re.compile(r"(?i:answer|option|choice)(?:\s+is)?\s*[:：]?\s*[(\[]?([A-J])\b")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).rstrip(".。 ")


def _from_json(text: str) -> str | None:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    answer = data.get("answer") if isinstance(data, dict) else None
    if isinstance(answer, str):
        return answer.strip()
    return None


def parse_choice(reply: str, options: Sequence[str]) -> str | None:
    """The letter (``A``…) ``reply`` answers with, or None if it is not a clean answer.

    The whole reply is tried first; failing that, its first line, provided
    nothing after it states another letter ("C. Tokyo\n\nThe answer is C" is
    C; "C. 56\n\nThe answer is D. 64" is unparsed).
    """
    whole = _parse(reply, options)
    if whole is not None:
        return whole
    first, _, rest = unicodedata.normalize("NFKC", reply).strip().partition("\n")
    letter = _parse(first, options) if rest.strip() else None
    if letter is None:
        return None
    stated = set(_STATED.findall(rest))
    stated |= {x for line in rest.splitlines() if (x := _parse(line, options)) is not None}
    return letter if stated <= {letter} else None


def _parse(reply: str, options: Sequence[str]) -> str | None:
    text = unicodedata.normalize("NFKC", reply).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if text.startswith("{"):
        inner = _from_json(text)
        if inner is None:
            return None
        text = inner
    valid = LETTERS[:len(options)]
    for _ in range(2):  # "**Answer: B**" and "Answer: **B**" alike
        text = _WRAP.sub("", _LABEL.sub("", text.strip(), count=1)).strip()
    m = _LETTER.match(text)
    if m:
        letter = m.group(1).upper()
        return letter if letter in valid else None
    m = _LETTER_THEN_TEXT.match(text)
    if m and m.group(1) in valid:
        option = options[valid.index(m.group(1))]
        if _norm(m.group(2)) == _norm(option):
            return m.group(1)
    return None
