"""Checks on what the models wrote; each failure is a reject with a reason code.

Real models wrap a usable answer in things nobody asked for: "Sure! Here is
the request:", a label ("Instruction:", "Translation:"), quotation marks, a
code fence or the prompt's own ``<text>`` tags, a note after it. Where what
is meant is unambiguous, ``clean_answer`` takes those off and the answer is
used. What cannot be read one way only is a reject:

=====================  ======================================================
code                   why
=====================  ======================================================
empty_output           the model answered nothing (or only whitespace)
repetition             the answer loops (the same words over and over)
truncated              ``max_tokens`` cut the answer (finish_reason length)
refusal                the model declined ("I'm sorry, but I can't …")
prompt_echo            the answer repeats the prompt's markup (``<response>``)
alternatives           several candidate answers where one was asked for
wrong_language         the answer is not in the language asked for
untranslated           the "translation" is the source text
echo                   the "instruction" is the response (or nearly all of it)
leaks_response         the instruction contains a long run of the response
too_long               the instruction is longer than the response allows
still_english          the back-translated instruction is still in English
wrong_script           the back-translation is not in the language's script
placeholder_lost       a context instruction lost its ``<<CONTEXT>>`` marker
=====================  ======================================================

``instruction``, ``to_english`` and ``back_translation`` are what the stages
call: each cleans the answer, runs the checks for its role and returns a
``Checked`` (the cleaned text, or the problem).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlift.langs import Language, script_profile

CONTEXT_PLACEHOLDER = "<<CONTEXT>>"
SIM_PREFIX = "[sim] "

# Run of the response's words that may not appear in the instruction.
_LEAK_WORDS = 12
# An instruction this much longer than the response (in chars) is not one.
_MAX_INSTRUCTION_RATIO = 3.0
_MAX_INSTRUCTION_CHARS = 2000
_WORD = re.compile(r"\w+", re.UNICODE)

# Repetition: the share of distinct 16-character windows of an answer's words.
# Natural text in the bundled samples (every language) stays above 0.95;
# looping answers of a small real model fall to 0.02-0.6.
_LOOP_WINDOW, _LOOP_RATIO, _LOOP_MIN_CHARS = 16, 0.7, 80

Problem = tuple[str, str] | None
Identify = Callable[[str], Sequence[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class Checked:
    """A model's answer after ``clean_answer``, and what is wrong with it (None: usable)."""

    text: str
    problem: Problem = None


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


# -- taking off the wrapping -----------------------------------------------------

_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n(.*?)\n?```$", re.DOTALL)
_TAGS = ("text", "instruction", "request", "translation", "answer", "output", "query",
         "prompt")
_WRAPPER = re.compile(r"^<(" + "|".join(_TAGS) + r")>\s*(.*?)\s*</\1>$",
                      re.DOTALL | re.IGNORECASE)
_NOUNS = (r"(?:request|instruction|prompt|query|question|translation|translated\s+\w+|"
          r"rewritten\s+\w+|version|rewrite|one|it)")
# "Sure! Here is the request:" / "Here's a possible instruction:" / "Certainly."
_PREAMBLE = re.compile(
    r"^(?:(?:sure|certainly|of course|okay|ok|absolutely|great)\b[!.,]*\s*)?"
    r"(?:here(?:'s| is| are)\s+(?:the|a|an|my|your|one)?\s*(?:\w+\s+){0,3}?" + _NOUNS +
    r"(?:\s+in\s+\w+)?\s*(?:[:.!]|$)|(?:sure|certainly|of course|okay|absolutely)\b[!.,]*$)",
    re.IGNORECASE)
_LABELS = ("instruction", "request", "prompt", "query", "question", "task", "user",
           "translation", "english", "english translation")
_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "«": "»", "„": "“", "「": "」",
          "『": "』", "`": "`"}
# A paragraph after the answer that talks about it.
_EXPLANATION = re.compile(
    r"^[(*_\s]*(?:note|notes|explanation|translation notes?|translator'?s? notes?)\s*[:*]|"
    r"^[(*_\s]*(?:this|the above|my) (?:request|instruction|prompt|query|question|"
    r"translation|version|rewrite) (?:above )?(?:asks|should|fits|matches|captures|reflects|"
    r"keeps|uses|would|is (?:designed|written|phrased|tailored|meant))\b|"
    r"^[(\s]*(?:i hope|let me know|feel free|hope this)", re.IGNORECASE)


def clean_answer(text: str, labels: Sequence[str] = ()) -> str:
    """``text`` without the wrapping a model put around the answer (see the module doc).

    ``labels`` are extra label words (the target language's name for a
    translation: "Hindi:", "Hindi translation:"). Pure and idempotent; it
    takes off only what leaves exactly one reading, so an answer it cannot
    make sense of comes back as it was, for the checks to reject.
    """
    words = "|".join(re.escape(w) for w in (*_LABELS, *labels))
    label = re.compile(r"^[*_#\s]*(?:" + words + r")(?:\s+translation)?[*_\s]*:[*_]*\s*",
                       re.IGNORECASE)
    # One layer per pass until none is left; every pass shortens the text, so it ends.
    current, previous = text.strip(), None
    while current != previous:
        previous, current = current, _unwrap(current, label)
    return current


def _unwrap(text: str, label: re.Pattern[str]) -> str:
    for pattern, group in ((_FENCE, 1), (_WRAPPER, 2)):
        match = pattern.match(text)
        if match and match.group(group).strip():
            return match.group(group).strip()
    first, _, rest = text.partition("\n")
    if rest.strip() and _PREAMBLE.fullmatch(first.strip()):
        return rest.strip()
    inline = re.match(r"^(.{0,80}?[:!.])\s+(\S.*)$", first)
    if inline and _PREAMBLE.fullmatch(inline.group(1).strip()):
        return f"{inline.group(2)}\n{rest}".strip()
    match = label.match(text)
    if match and text[match.end():].strip():
        return text[match.end():].strip()
    closing = _PAIRS.get(text[:1])
    if closing and len(text) >= 3 and text.endswith(closing):
        inner = text[1:-1]
        if closing not in inner and text[0] not in inner and inner.strip():
            return inner.strip()
    paragraphs = re.split(r"\n\s*\n", text)
    for i, paragraph in enumerate(paragraphs[1:], start=1):
        if _EXPLANATION.match(paragraph):
            return "\n\n".join(paragraphs[:i]).strip()
    return text


# -- problems any answer can have ------------------------------------------------

_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry, but|i apologi[sz]e|as an ai\b|as a language model|"
    r"i (?:cannot|can't|can not|am unable to|'m unable to|won't) "
    r"(?:help|assist|comply|fulfil|fulfill|provide|translate|write|create|generate) "
    r"(?:with )?(?:this|that|your|such|the|a|an)\b)", re.IGNORECASE)
_PROMPT_TAGS = re.compile(r"</?(?:response|instruction|text|context)>", re.IGNORECASE)
_ALTERNATIVES = re.compile(
    r"^[*_#\s]*(?:option|alternative|version|variant|request|instruction)\s*(?:\d+|[a-c])\b"
    r"[*_]*\s*[:.)]", re.IGNORECASE | re.MULTILINE)


def repetitive(text: str) -> bool:
    """True when ``text`` loops: few distinct windows of its words (see ``_LOOP_RATIO``).

    Words are whitespace-separated tokens with a letter or digit in them, so
    table rules and other punctuation runs do not count as repetition.
    """
    flat = " ".join(t for t in text.split() if any(c.isalnum() for c in t))
    if len(flat) < _LOOP_MIN_CHARS:
        return False
    n = len(flat) - _LOOP_WINDOW + 1
    distinct = len({flat[i:i + _LOOP_WINDOW] for i in range(n)})
    return distinct / n < _LOOP_RATIO


def check_output(text: str, finish_reason: str) -> Problem:
    """What any answer can get wrong before its content is looked at."""
    if not text.strip():
        return ("empty_output", "the model returned no text")
    if repetitive(text):
        cut = " (and max_tokens cut it)" if finish_reason == "length" else ""
        return ("repetition", f"the answer repeats itself{cut}")
    if finish_reason == "length":
        return ("truncated", "max_tokens cut the answer")
    return None


def _refusal(text: str) -> Problem:
    if _REFUSAL.match(text):
        return ("refusal", "the model declined to do it")
    return None


def _english(text: str, identify: Identify | None) -> Problem:
    """Is ``text`` English? Latin letters, and not identified as another language."""
    profile = script_profile(text)
    if profile and profile.get("Latin", 0.0) < 0.5:
        top = max(profile, key=lambda s: profile[s])
        return ("wrong_language", f"mostly {top} letters, expected English")
    if identify is not None and len(_words(text)) >= 6:
        ranked = identify(text)
        if ranked and ranked[0][0] != "en" and ranked[0][1] >= 0.95:
            return ("wrong_language", f"identified as {ranked[0][0]} ({ranked[0][1]:.2f}), "
                                      "expected English")
    return None


# -- the roles -------------------------------------------------------------------


def instruction(text: str, finish_reason: str, response: str, *, has_context: bool,
                identify: Identify | None = None) -> Checked:
    """An instruction the generator wrote for the English ``response``."""
    cleaned = clean_answer(text)
    problem = check_output(text, finish_reason) or check_instruction(
        cleaned, response, has_context=has_context, identify=identify)
    return Checked(cleaned, problem)


def to_english(text: str, finish_reason: str, source: str) -> Checked:
    """A translation into English of ``source``.

    A copy of the source is caught by its words (a real translation shares
    names and numbers with it, never a run of twelve words); a translation
    into another script by its letters. Language ID is not asked: on a
    short or name-heavy English text it is not sure enough to reject.
    """
    cleaned = clean_answer(text, labels=("english",))
    problem = check_output(text, finish_reason) or _refusal(cleaned)
    words, original = _words(cleaned), _words(source)
    if problem is None and words and (words == original or (
            len(original) >= _LEAK_WORDS and _shares_run(words, original, _LEAK_WORDS))):
        problem = ("untranslated", "the answer copies the source text")
    return Checked(cleaned, problem or _english(cleaned, None))


def back_translation(text: str, finish_reason: str, lang: Language, *, has_context: bool,
                     identify: Identify | None = None) -> Checked:
    """The English instruction translated back into ``lang``."""
    cleaned = clean_answer(text, labels=(lang.name,))
    problem = check_output(text, finish_reason) or _refusal(cleaned) or \
        check_back_translation(cleaned, lang, has_context=has_context, identify=identify)
    return Checked(cleaned, problem)


def check_instruction(instruction: str, response: str, *, has_context: bool,
                      identify: Identify | None = None) -> Problem:
    """An English instruction against the English response it was written for."""
    body = instruction.replace(CONTEXT_PLACEHOLDER, " ").strip()
    if not body:
        return ("empty_output", "the instruction is empty")
    problem = _refusal(body)
    if problem:
        return problem
    tag = _PROMPT_TAGS.search(body)
    if tag:
        return ("prompt_echo", f"it repeats the prompt's {tag.group(0)} markup")
    if len(_ALTERNATIVES.findall(body)) >= 2:
        return ("alternatives", "several candidate instructions where one was asked for")
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
    # English only when the response is: it was translated into English for the generator.
    return _english(body, identify) if not _english(response, None) else None


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
    tag = _PROMPT_TAGS.search(body)
    if tag:
        return ("prompt_echo", f"it repeats the prompt's {tag.group(0)} markup")
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
