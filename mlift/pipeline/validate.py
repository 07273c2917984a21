"""Checks on what the models wrote; each failure is a reject with a reason code.

=====================  ======================================================
code                   why
=====================  ======================================================
empty_output           the model answered nothing (or only whitespace)
truncated              ``max_tokens`` cut the answer (finish_reason length)
echo                   the "instruction" is the response (or nearly all of it)
leaks_response         the instruction contains a long run of the response
too_long               the instruction is longer than the response allows
still_english          the back-translated instruction is still in English
wrong_script           the back-translation is not in the language's script
placeholder_lost       a context instruction lost its ``<<CONTEXT>>`` marker
=====================  ======================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from mlift.langs import Language, script_profile

CONTEXT_PLACEHOLDER = "<<CONTEXT>>"
SIM_PREFIX = "[sim] "

# Run of the response's words that may not appear in the instruction.
_LEAK_WORDS = 12
# An instruction this much longer than the response (in chars) is not one.
_MAX_INSTRUCTION_RATIO = 3.0
_MAX_INSTRUCTION_CHARS = 2000
_WORD = re.compile(r"\w+", re.UNICODE)

Problem = tuple[str, str] | None
Identify = Callable[[str], Sequence[tuple[str, float]]]


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def check_output(text: str, finish_reason: str) -> Problem:
    if not text.strip():
        return ("empty_output", "the model returned no text")
    if finish_reason == "length":
        return ("truncated", "max_tokens cut the answer")
    return None


def check_instruction(instruction: str, response: str, *, has_context: bool) -> Problem:
    """An English instruction against the English response it was written for."""
    body = instruction.replace(CONTEXT_PLACEHOLDER, " ").strip()
    if not body:
        return ("empty_output", "the instruction is empty")
    words, reply = _words(body), _words(response)
    if words and reply and (words == reply or _overlap(words, reply) > 0.8 * len(reply)):
        return ("echo", "the instruction repeats the response")
    if len(reply) >= _LEAK_WORDS and _shares_run(words, reply, _LEAK_WORDS):
        return ("leaks_response", f"it copies a run of {_LEAK_WORDS}+ words of the response")
    limit = max(_MAX_INSTRUCTION_CHARS, _MAX_INSTRUCTION_RATIO * len(response))
    if len(body) > limit:
        return ("too_long", f"{len(body)} characters, more than {limit:.0f}")
    if has_context and instruction.count(CONTEXT_PLACEHOLDER) != 1:
        return ("placeholder_lost", f"expected {CONTEXT_PLACEHOLDER} exactly once")
    return None


def check_back_translation(text: str, lang: Language, *, has_context: bool,
                           identify: Identify | None = None) -> Problem:
    """The instruction translated back into ``lang``."""
    body = text.replace(CONTEXT_PLACEHOLDER, " ")
    if body.startswith(SIM_PREFIX):
        body = body[len(SIM_PREFIX):]
    if not body.strip():
        return ("empty_output", "the back-translation is empty")
    if has_context and text.count(CONTEXT_PLACEHOLDER) != 1:
        return ("placeholder_lost", f"expected {CONTEXT_PLACEHOLDER} exactly once")
    profile = script_profile(body)
    in_script = sum(profile.get(s, 0.0) for s in lang.scripts)
    if "Latin" not in lang.scripts:
        if in_script < 0.5:
            if profile.get("Latin", 0.0) >= 0.5:
                return ("still_english", "mostly Latin letters, not " + "/".join(lang.scripts))
            top = max(profile, key=lambda s: profile[s]) if profile else "no letters"
            return ("wrong_script", f"mostly {top}, expected {'/'.join(lang.scripts)}")
        return None
    if lang.code != "en" and identify is not None and len(_words(body)) >= 4:
        ranked = identify(body)
        if ranked and ranked[0][0] == "en" and ranked[0][1] >= 0.9:
            return ("still_english", f"identified as English ({ranked[0][1]:.2f})")
    return None


def contains_original(instruction: str, response: str) -> Problem:
    """The final instruction must not contain the original response."""
    if len(response) >= 40 and response.strip() in instruction:
        return ("leaks_response", "the final instruction contains the response")
    return None


def _overlap(a: list[str], b: list[str]) -> int:
    seen = set(a)
    return sum(1 for w in b if w in seen)


def _shares_run(a: list[str], b: list[str], n: int) -> bool:
    grams = {tuple(b[i:i + n]) for i in range(len(b) - n + 1)}
    return any(tuple(a[i:i + n]) in grams for i in range(len(a) - n + 1))
