"""Deterministic, clearly fake answers, chosen by the route mlift sends beside the prompt.

mlift's providers send every rendered prompt's route in the ``X-Mlift-Prompt``
request header (never in the messages, so real endpoints receive exactly the
prompt file's text)::

    X-Mlift-Prompt: translate/to_en@v1 translate source=hi target=en
    X-Mlift-Prompt: instruct/summary@v1 instruct task=summary style=chat context=no
    X-Mlift-Prompt: judge/fit@v2 judge format=json
    X-Mlift-Prompt: eval/mmlu@v1 eval task=mmlu

and the prompts wrap inputs in tags in the user message (``<text>``,
``<response>``, ``<context>``, ``<instruction>``). The simulator reads only
the route and the tags, never the prompt wording, so prompt files can change
freely; a request without a route (another client, a hand-written body) gets
a generic answer. Every answer starts with ``[sim]`` so nobody mistakes it
for a model's. Answers depend only on the seed and the request, never on
timing.

A request that asks for a JSON Schema (OpenAI ``response_format``, an
Anthropic forced tool) gets a JSON object matching it: a judge's verdict
always parses then (schema-constrained decoding cannot produce prose), and
any other schema is filled with simulated values.

Judge scores come from (seed, instruction, response) alone, spread about
5/10/20/35/30 % over 1..5. Whether a verdict is unparseable (prose without a
score, at ``bad_verdict_rate``) is drawn from the whole conversation, so a
client that re-asks (adding turns) gets a fresh draw.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

from mlift.sim.translate import pseudo_translate

_PAIR = re.compile(r"(\w+)=(\S+)")
_WORD = re.compile(r"[^\W\d_]{4,}")
_SCORE_CDF = ((0.05, 1), (0.15, 2), (0.35, 3), (0.70, 4), (1.0, 5))
_STOPWORDS = frozenset(re.findall(r"\w+", """
    that this with from have were what when which their there they them then than been
    into your about would could should also only some such more most other these those
    will just like very over after before while where because sim"""))


def digest(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by ``parts`` (stable across processes)."""
    raw = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big") / 2.0**64


def parse_route(route: str | None) -> tuple[str, dict[str, str]] | None:
    """(kind, options) of a route ``[id@vN] KIND k=v …`` (None: no route, or an empty one)."""
    parts = (route or "").split()
    if parts and "@" in parts[0]:
        parts = parts[1:]  # the prompt's id@vN: which file, not what to answer
    if not parts:
        return None
    return parts[0], dict(_PAIR.findall(" ".join(parts[1:])))


def tag(text: str, name: str) -> str | None:
    """The content of the last ``<name>…</name>`` in ``text`` (stripped), or None."""
    start = text.rfind(f"<{name}>")
    if start < 0:
        return None
    start += len(name) + 2
    end = text.find(f"</{name}>", start)
    return (text[start:end] if end >= 0 else text[start:]).strip()


def content_words(text: str, n: int, seed: int) -> list[str]:
    """Up to ``n`` distinct content words of ``text``, picked deterministically."""
    words: list[str] = []
    seen: set[str] = set()
    for w in _WORD.findall(text.replace("[sim]", " ")):
        low = w.lower()
        if low not in seen and low not in _STOPWORDS:
            seen.add(low)
            words.append(low)
    if len(words) <= n:
        return words
    picked: list[str] = []
    for i in range(n):
        pool = [w for w in words if w not in picked]
        picked.append(pool[int(digest(seed, text, i) * len(pool))])
    return picked


_INSTRUCT: dict[str, dict[str, str]] = {
    "summary": {"formal": "Summarize the following text about {a} and {b} in a few sentences.",
                "chat": "can you give me a quick summary of this piece on {a} and {b}?",
                "query": "{a} {b} summary"},
    "question": {"formal": "What is known about {a}, and how does it relate to {b}?",
                 "chat": "hey, what's the deal with {a}? does it have anything to do with {b}?",
                 "query": "{a} {b} explained"},
    "explain": {"formal": "Explain to a newcomer how {a} works and why {b} matters.",
                "chat": "i never understood {a}, could you explain it simply, and {b} too?",
                "query": "how does {a} work {b}"},
    "article": {"formal": "Write a short article about {a}, covering {b}.",
                "chat": "write me a short blog post about {a}, mention {b} somewhere",
                "query": "article about {a} and {b}"},
    "rewrite": {"formal": "Rewrite the following text about {a} in a plain, clear style, "
                          "keeping the point about {b}.",
                "chat": "can you redo this text on {a} so it reads nicer? keep the {b} bit",
                "query": "rewrite text {a} {b}"},
    "opinion": {"formal": "What is your view on {a}, especially with regard to {b}?",
                "chat": "honestly, what do you think about {a}? and {b}?",
                "query": "opinions on {a} {b}"},
    "list": {"formal": "List the main facts about {a}, including those about {b}.",
             "chat": "give me the key points about {a} as a list, {b} included",
             "query": "{a} {b} key points list"},
    "continue": {"formal": "Continue the following story about {a}, bringing in {b}.",
                 "chat": "keep this story about {a} going, and work {b} into it",
                 "query": "continue story {a} {b}"},
    "generic": {"formal": "Write a text about {a} that also discusses {b}.",
                "chat": "could you write something about {a} and {b}?",
                "query": "{a} {b}"},
}
_REASONS = {
    1: "The instruction does not match the response at all; the response cannot answer it.",
    2: "The response touches the topic, but it answers a different request than the one asked.",
    3: "The response partly answers the instruction; the instruction is vague or asks for more.",
    4: "The response answers the instruction well; the instruction is natural and clear.",
    5: "The response is an excellent answer to a clear, self-contained, natural instruction.",
}


def translate_answer(options: dict[str, str], user: str, seed: int) -> str:
    text = tag(user, "text")
    return pseudo_translate(user if text is None else text, options.get("source"),
                            options.get("target"), seed)


def instruct_answer(options: dict[str, str], user: str, seed: int) -> str:
    response = tag(user, "response") or user
    context = tag(user, "context")
    task = options.get("task", "generic")
    style = options.get("style", "formal")
    # "summary_context" and the like: the task's family decides the wording.
    templates = _INSTRUCT.get(task) or _INSTRUCT.get(task.split("_")[0], _INSTRUCT["generic"])
    template = templates.get(style, templates["formal"])
    words = [*content_words(response, 2, seed), "this topic", "its details"]
    text = template.format(a=words[0], b=words[1])
    core = response.replace("[sim]", "").strip()
    if core and core.lower() in text.lower():  # a one-word response must not be echoed whole
        text = template.format(a="this topic", b="its details")
    if context is not None or options.get("context") == "yes":
        # Context prompts ask for the document's place to be marked, and real
        # models put it on a line of its own after a lead-in sentence.
        text += "\n\n<<CONTEXT>>"
    return "[sim] " + text


def judge_answer(options: dict[str, str], user: str, conversation: str, seed: int,
                 bad_verdict_rate: float, schema: dict[str, Any] | None = None) -> str:
    instruction = tag(user, "instruction") or ""
    response = tag(user, "response") or user
    if schema is None and digest(seed, "verdict", conversation) < bad_verdict_rate:
        return ("[sim] I find this pair hard to assess: the instruction and the response are "
                "related, but I would need more context before rating them.")
    u = digest(seed, "score", instruction, response)
    score = next(s for bound, s in _SCORE_CDF if u < bound)
    reason = "[sim] " + _REASONS[score]
    if schema is not None:
        return json.dumps(instance(schema, seed, user, {"reason": reason, "score": score}),
                          ensure_ascii=False)
    if options.get("format", "json") == "line":
        return f"{reason}\nScore: {score}"
    return json.dumps({"reason": reason, "score": score}, ensure_ascii=False)


def instance(schema: Any, seed: int, text: str, known: dict[str, Any] | None = None,
             where: str = "") -> Any:
    """A value matching ``schema`` (the subset mlift's prompts use), fixed by seed and text.

    ``known`` fills properties of the top-level object by name (a verdict's
    reason and score); everything else is simulated.
    """
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        options = schema["enum"]
        return options[int(digest(seed, text, where, "enum") * len(options))]
    if isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
        return instance(schema["anyOf"][0], seed, text, known, where)
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return {name: (known[name] if known and name in known
                       else instance(sub, seed, text, None, f"{where}.{name}"))
                for name, sub in props.items()}
    if kind == "array":
        return [instance(schema.get("items"), seed, text, None, f"{where}[0]")]
    if kind == "integer":
        return int(digest(seed, text, where) * 10)
    if kind == "number":
        return round(digest(seed, text, where), 3)
    if kind == "boolean":
        return digest(seed, text, where) < 0.5
    if kind == "null":
        return None
    words = content_words(text, 2, seed) or ["simulated", "value"]
    return f"[sim] {' '.join(words)}"


_SENTENCE_END = re.compile(r"(?<=[.!?।。！？])\s*")
_OPTION_LINE = re.compile(r"^([A-J])\. ", re.MULTILINE)


def eval_answer(options: dict[str, str], user: str, seed: int, model: str,
                bad_answer_rate: float, schema: Any = None) -> str:
    """A benchmark answer (``mlift eval``) that differs between model names.

    mmlu: a letter drawn per (model, question) among the options shown, or,
    at ``bad_answer_rate``, prose without a letter; the letter is the whole
    answer (no ``[sim]`` prefix), as the prompt demands; asked for a schema, the
    JSON object ``{"answer": letter}`` (schema-constrained decoding cannot
    produce prose). xlsum: the article's
    first one or two sentences (the count drawn per model and article). flores: a
    pseudo-translation of the ``<text>`` whose pseudo-words depend on the model.
    """
    task = options.get("task", "")
    if task == "mmlu":
        question = user.rpartition("Question:")[2]
        letters = _OPTION_LINE.findall(question) or ["A", "B", "C", "D"]
        letter = str(letters[int(digest(seed, model, "letter", question) * len(letters))])
        if schema is not None:
            return json.dumps({"answer": letter})
        if digest(seed, model, "unsure", question) < bad_answer_rate:
            return "[sim] I am not sure; several of these options look plausible to me."
        return letter
    if task == "xlsum":
        article = tag(user, "article") or user
        sentences = [x for x in _SENTENCE_END.split(article.strip()) if x]
        keep = 1 + int(digest(seed, model, "length", article) * 2)
        return "[sim] " + " ".join(sentences[:keep])
    if task == "flores":
        text = tag(user, "text")
        return pseudo_translate(user if text is None else text, options.get("source"),
                                options.get("target"), seed + int(digest(model) * 1000))
    return generic_answer(user, seed)


def generic_answer(user: str, seed: int) -> str:
    words = content_words(user, 3, seed)
    about = ", ".join(words) if words else "nothing in particular"
    filler = pseudo_translate(" ".join(words * 4) or "simulated answer text", "en", "en", seed)
    return (f"[sim] This is a simulated answer from the mlift simulator, not a model. "
            f"Your message mentions: {about}. {filler.removeprefix('[sim] ')}.")


def answer(messages: Sequence[tuple[str, str]], seed: int, bad_verdict_rate: float,
           verbosity: float = 1.0, *, route: str | None = None,
           schema: str | None = None, model: str = "") -> str:
    """The simulated answer to a chat's (role, content) messages.

    ``route`` is the ``X-Mlift-Prompt`` header (see the module docstring);
    ``schema`` the JSON Schema (as JSON text) the answer must match, if any.
    ``verbosity`` stretches free-text answers (not JSON) to that many times
    their length: a provider that writes more, for checking estimates.
    """
    user = next((c for r, c in reversed(messages) if r == "user"), "")
    kind, options = parse_route(route) or ("generic", {})
    wanted = json.loads(schema) if schema is not None else None
    if kind == "judge":
        conversation = "\x1e".join(f"{r}:{c}" for r, c in messages)
        return judge_answer(options, user, conversation, seed, bad_verdict_rate, wanted)
    if kind == "eval":
        return eval_answer(options, user, seed, model, bad_verdict_rate, wanted)
    if wanted is not None:
        return json.dumps(instance(wanted, seed, user), ensure_ascii=False)
    if kind == "translate":
        text = translate_answer(options, user, seed)
    elif kind == "instruct":
        text = instruct_answer(options, user, seed)
    else:
        text = generic_answer(user, seed)
    return stretch(text, verbosity)


def stretch(text: str, factor: float) -> str:
    """``text`` made ``factor`` times as long by repeating its words (placeholders kept once)."""
    if factor == 1.0 or not text:
        return text
    body, placeholder = text, ""
    if "<<CONTEXT>>" in text:
        body, _, tail = text.partition("<<CONTEXT>>")
        placeholder = "<<CONTEXT>>" + tail
    words = body.split(" ")
    target = max(1, round(len(words) * factor))
    out = (words * (target // len(words) + 1))[:target]
    return " ".join(out).rstrip() + (" " + placeholder if placeholder else "")
