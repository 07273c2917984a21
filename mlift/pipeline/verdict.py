"""Parsing of the judge's verdict: lenient where the meaning is unambiguous, strict otherwise.

The judge is asked for ``{"reason": "...", "score": n}`` (``judge/fit``) or
prose whose last line is ``Score: n`` (``judge/fit_line``). Real models wrap
that in a code fence, put "Sure! Here is my verdict:" before it or an
explanation after it, write ``Score: 4/5`` or ``**Score:** 4``, quote the
score as a string, or use Python's quotes. Those are accepted: there is one
score and it is plain which. Everything else is a ``VerdictError`` with a
reason code, and the stage re-asks (at most twice) before the pair becomes a
reject with that code:

=====================  ======================================================
code                   why
=====================  ======================================================
judge_unparsed         no JSON verdict and no ``Score: N`` line
judge_ambiguous        two verdicts (or score lines) that disagree
judge_out_of_range     a score outside 1..5, a fraction ("4.5"), a word
                       ("five") or another scale ("8/10"): never guessed
judge_refused          the judge declined to judge
=====================  ======================================================

Scores must be whole numbers in 1..5.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

SCORE_MIN, SCORE_MAX = 1, 5

# A score line: "Score: 4", "**Score:** 4/5", "Final score = 4 out of 5.", "Rating: 4".
# The rest of the line may add words ("Score: 4 - a good fit") but no other number.
_SCORE_LINE = re.compile(
    r"^[\W_]*(?:final\s+|overall\s+)?(?:score|rating)[\W_]*?[:=]\s*[*_]*\s*"
    r"(?P<score>[+-]?\d+(?:[.,]\d+)?)\s*(?:(?:/|out\s+of)\s*(?P<scale>\d+))?"
    r"(?P<rest>[^\d]*)$", re.IGNORECASE)
# A score given as a string inside a JSON verdict: "4", "4/5", "4 out of 5".
_SCORE_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*(\d+))?\s*$", re.IGNORECASE)
_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry, but|i apologi[sz]e|as an ai\b|"
    r"i (?:cannot|can't|can not|am unable to|'m unable to|won't) "
    r"(?:help|assist|comply|judge|evaluate|rate|score|provide))", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    score: int
    reason: str


class VerdictError(ValueError):
    """The judge's answer gave no usable verdict; the message says why (fed back on re-ask)."""

    def __init__(self, message: str, code: str = "judge_unparsed") -> None:
        self.code = code
        super().__init__(message)


def parse_verdict(text: str) -> Verdict:
    """The one verdict in ``text``, or ``VerdictError`` with a reason code."""
    body = text.strip()
    if not body:
        raise VerdictError("the answer was empty")
    in_json = _json_verdicts(body)
    found = in_json + _line_verdicts(body)
    if not found:
        if _REFUSAL.match(body):
            raise VerdictError("the answer declined to give a score", "judge_refused")
        raise VerdictError('expected a JSON object {"reason": ..., "score": 1-5} '
                           'or a last line "Score: N"')
    scores = sorted({v.score for v in found})
    if len(scores) > 1:
        raise VerdictError(f"the answer gives several different scores {scores}; "
                           "give exactly one", "judge_ambiguous")
    return in_json[0] if in_json else found[-1]


# -- JSON verdicts ---------------------------------------------------------------


def _json_verdicts(body: str) -> list[Verdict]:
    """Every object in ``body`` that carries a "score" key, checked.

    A verdict may sit inside prose or a code fence. JSON first; failing
    that, Python literal syntax (single quotes), which some models write.
    Objects without a "score" key are not verdicts and are ignored.
    """
    objects = list(_json_objects(body)) or list(_literal_objects(body))
    return [_from_object(o) for o in objects if "score" in o]


def _json_objects(text: str) -> Iterator[dict[object, object]]:
    decoder = json.JSONDecoder()
    pos = text.find("{")
    while pos != -1:
        try:
            data, end = decoder.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(data, dict):
            yield data
        pos = text.find("{", end)


def _literal_objects(text: str) -> Iterator[dict[object, object]]:
    for chunk in _brace_spans(text):
        try:
            data = ast.literal_eval(chunk)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(data, dict):
            yield data


def _brace_spans(text: str) -> Iterator[str]:
    """Outermost ``{...}`` spans, with braces inside quoted strings ignored."""
    depth, start, quote, escaped = 0, 0, "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'" and depth:
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                yield text[start:i + 1]


def _from_object(data: dict[object, object]) -> Verdict:
    score = _score_value(data.get("score"))
    reason = data.get("reason", "")
    # The reason only informs; a list or number there does not hide the score.
    text = reason if isinstance(reason, str) else json.dumps(reason, ensure_ascii=False,
                                                               default=str)
    return Verdict(score, text.strip())


def _score_value(value: object) -> int:
    if isinstance(value, str):
        match = _SCORE_TEXT.match(value)
        if match is None:
            raise VerdictError(f'"score" must be a whole number from {SCORE_MIN} to '
                               f"{SCORE_MAX}, got {value!r}", "judge_out_of_range")
        return _checked(match.group(1), match.group(2))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VerdictError(f'"score" must be a whole number from {SCORE_MIN} to {SCORE_MAX}, '
                           f"got {value!r}", "judge_out_of_range")
    return _checked(repr(value), None)


def _checked(number: str, scale: str | None) -> int:
    """A score from its digits and optional scale, or ``judge_out_of_range``."""
    if scale is not None and int(scale) != SCORE_MAX:
        raise VerdictError(f"the score must be on the {SCORE_MIN}-{SCORE_MAX} scale, "
                           f"got {number}/{scale}", "judge_out_of_range")
    try:
        value = float(number.replace(",", "."))
        whole = int(value)
    except (ValueError, OverflowError):  # nan, inf
        whole, value = SCORE_MIN - 1, 0.5
    if value != whole:
        raise VerdictError(f"the score must be a whole number, got {number}",
                           "judge_out_of_range")
    if not SCORE_MIN <= whole <= SCORE_MAX:
        raise VerdictError(f"the score must be from {SCORE_MIN} to {SCORE_MAX}, got {number}",
                           "judge_out_of_range")
    return whole


# -- "Score: N" lines ------------------------------------------------------------


def _line_verdicts(body: str) -> list[Verdict]:
    """A verdict per score line; the reason is the rest of the prose."""
    hits, prose = [], []
    for line in body.splitlines():
        match = _SCORE_LINE.match(line.strip())
        if match:
            hits.append(match)
        else:
            prose.append(line)
    reason = _unfence("\n".join(prose)).strip()
    return [Verdict(_checked(m.group("score"), m.group("scale")), reason) for m in hits]


def _unfence(text: str) -> str:
    return re.sub(r"^\s*```\w*\s*$", "", text, flags=re.MULTILINE)


def reask_message(error: VerdictError, output: str) -> str:
    """The follow-up user message when a verdict did not parse."""
    if output == "json":
        form = 'only a JSON object: {"reason": "<one or two sentences>", "score": <1-5>}'
    else:
        form = 'your reasoning, then a last line of the form "Score: N" with N from 1 to 5'
    return f"Your answer could not be read: {error}. Reply again with {form}."
