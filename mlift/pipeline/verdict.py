"""Strict parsing of the judge's verdict.

The judge answers ``{"reason": "...", "score": n}`` (optionally in a code
fence) or prose whose last line is ``Score: n``. Anything else is a parse
failure: the stage re-asks (at most twice) and, failing that, the pair is a
reject with a reason, never a silent drop. Scores must be whole numbers in
1..5; "4.5", "five" or 7 are failures, not guesses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

SCORE_MIN, SCORE_MAX = 1, 5

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_SCORE_LINE = re.compile(r"^\**\s*score\s*\**\s*[:=]\s*\**\s*(\d+)\s*\**\s*(?:/\s*5)?\s*\.?$",
                         re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    score: int
    reason: str


class VerdictError(ValueError):
    """The judge's answer could not be parsed; the message says why (fed back on re-ask)."""


def parse_verdict(text: str) -> Verdict:
    body = text.strip()
    if not body:
        raise VerdictError("the answer was empty")
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if body.startswith("{"):
        return _from_json(body)
    last = body.splitlines()[-1].strip()
    match = _SCORE_LINE.match(last)
    if match:
        reason = "\n".join(body.splitlines()[:-1]).strip()
        return Verdict(_check_range(int(match.group(1))), reason)
    raise VerdictError('expected a JSON object {"reason": ..., "score": 1-5} '
                       'or a last line "Score: N"')


def _from_json(body: str) -> Verdict:
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise VerdictError(f"the JSON did not parse ({exc.msg})") from None
    if not isinstance(data, dict):
        raise VerdictError("the JSON must be an object")
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or score != int(score):
        raise VerdictError(f'"score" must be a whole number from {SCORE_MIN} to {SCORE_MAX}, '
                           f"got {score!r}")
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise VerdictError('"reason" must be a string')
    return Verdict(_check_range(int(score)), reason.strip())


def _check_range(score: int) -> int:
    if not SCORE_MIN <= score <= SCORE_MAX:
        raise VerdictError(f"the score must be from {SCORE_MIN} to {SCORE_MAX}, got {score}")
    return score


def reask_message(error: VerdictError, output: str) -> str:
    """The follow-up user message when a verdict did not parse."""
    if output == "json":
        form = 'only a JSON object: {"reason": "<one or two sentences>", "score": <1-5>}'
    else:
        form = 'your reasoning, then a last line of the form "Score: N" with N from 1 to 5'
    return f"Your answer could not be read: {error}. Reply again with {form}."
