"""Multilingual MMLU: four-option questions in L, accuracy zero- or few-shot.

Two public schemas are read, row by row:

* **Global-MMLU** (``CohereLabs/Global-MMLU``, one config per language code,
  splits ``test`` and ``dev``): ``sample_id``, ``subject``, ``question``,
  ``option_a`` … ``option_d``, ``answer`` (a letter, or 0–3 in early revisions);
* **MMMLU** (``openai/MMMLU``): ``Question``, ``A`` … ``D``, ``Answer``,
  ``Subject``; rows have no id, so the row number is one.

``lang`` is read when present (else ``--data hi=FILE`` / the hub config).
The reply is parsed strictly (:mod:`mlift.eval.choice`); an unparsed reply
counts as wrong, and its rate is reported as a metric of its own. Where the
endpoint enforces JSON Schemas (OpenAI, Anthropic, a profile with
``structured_outputs = true``) the question goes out as ``eval/mmlu_json``,
whose schema admits only ``{"answer": "A"|"B"|"C"|"D"}``; elsewhere as
``eval/mmlu``, which asks for the letter alone.

Few-shot (``shots`` > 0): each question is preceded by ``shots`` solved
examples in the same language, from the same subject first — taken from the
dev rows (``--shots-data``, or the hub's ``dev`` split) when given, else from
the other test questions (never the question itself), chosen deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlift.errors import ConfigError, InputError
from mlift.eval.base import EvalItem, Loaded, Metric, row_lang, text_field
from mlift.eval.bootstrap import mean_rows, mean_score
from mlift.eval.choice import LETTERS, parse_choice
from mlift.eval.data import Rows

PROMPT = "eval/mmlu"
_GLOBAL = ("question", ("option_a", "option_b", "option_c", "option_d"), "answer", "subject")
_MMMLU = ("Question", ("A", "B", "C", "D"), "Answer", "Subject")


class _Question:
    __slots__ = ("answer", "id", "lang", "options", "question", "source", "subject")

    def __init__(self, lang: str, id: str, subject: str, question: str,
                 options: tuple[str, ...], answer: str, source: dict[str, Any]) -> None:
        self.lang, self.id, self.subject, self.question = lang, id, subject, question
        self.options, self.answer, self.source = options, answer, source


def _answer_letter(value: Any, where: str, line: int, name: str) -> str | InputError:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 4:
        return LETTERS[value]
    if isinstance(value, str) and value.strip().upper() in LETTERS[:4]:
        return value.strip().upper()
    return InputError(f"expected A, B, C or D (or 0-3), got {value!r}", file=where, line=line,
                      field=name, code="bad_answer")


def _question(rows: Rows, line: int, row: Mapping[str, Any]) -> _Question | InputError:
    layout = _GLOBAL if "question" in row else _MMMLU
    q_field, option_fields, answer_field, subject_field = layout
    lang = row_lang(rows, row, line)
    if isinstance(lang, InputError):
        return lang
    values = [text_field(row, f, rows.where, line) for f in (q_field, *option_fields)]
    bad = next((v for v in values if not isinstance(v, str)), None)
    if bad is not None:
        return bad
    if answer_field not in row:
        return InputError("missing", file=rows.where, line=line, field=answer_field,
                          code="missing_field")
    answer = _answer_letter(row[answer_field], rows.where, line, answer_field)
    if isinstance(answer, InputError):
        return answer
    raw_id = row.get("sample_id", row.get("id"))
    item_id = str(raw_id).strip() if raw_id is not None and str(raw_id).strip() else str(line)
    subject = row.get(subject_field)
    return _Question(lang, item_id, str(subject).strip() if subject else "general",
                     str(values[0]), tuple(str(v) for v in values[1:]), answer,
                     {"file": rows.provenance.get("path") or rows.provenance.get("dataset"),
                      "line": line})


def format_choices(options: Sequence[str]) -> str:
    return "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))


def _example(q: _Question) -> str:
    return f"Question: {q.question}\n{format_choices(q.options)}\nAnswer: {q.answer}"


class MmluTask:
    name = "mmlu"
    metric_names: tuple[str, ...] = ("accuracy", "unparsed")
    hub_dataset = "CohereLabs/Global-MMLU"
    hub_split = "test"

    def __init__(self, *, shots: int = 0, shot_rows: Sequence[Rows] = ()) -> None:
        if not 0 <= shots <= 10:
            raise ConfigError(f"--shots must be between 0 and 10, got {shots}")
        self.shots = shots
        self._shot_rows = shot_rows

    def hub_configs(self, langs: Sequence[str]) -> list[tuple[str | None, str | None]]:
        return [(lang, lang) for lang in langs]

    def _questions(self, sources: Sequence[Rows], wanted: set[str], out: Loaded
                   ) -> list[_Question]:
        found = []
        for rows in sources:
            for line, row in rows.rows:
                q = _question(rows, line, row)
                if isinstance(q, InputError):
                    out.invalid.append(q)
                elif q.lang in wanted:
                    found.append(q)
        return found

    def load(self, sources: Sequence[Rows], langs: Sequence[str]) -> Loaded:
        out = Loaded(sources=[s.provenance for s in sources])
        wanted = set(langs)
        questions = self._questions(sources, wanted, out)
        pool = questions
        if self.shots and self._shot_rows:
            pool = self._questions(self._shot_rows, wanted, Loaded())
            out.sources += [{"role": "shots", **s.provenance} for s in self._shot_rows]
        elif self.shots:
            out.notes.append("few-shot examples are other test questions (no --shots-data)")
        by_lang: dict[str, list[_Question]] = {}
        for q in sorted(pool, key=lambda q: (q.lang, q.subject, q.id)):
            by_lang.setdefault(q.lang, []).append(q)
        for q in questions:
            examples = self._examples(q, by_lang.get(q.lang, [])) if self.shots else []
            if len(examples) < self.shots:
                raise ConfigError(f"mmlu: only {len(examples)} example questions for "
                                  f"{q.lang}, --shots {self.shots} needs more")
            variables = {"subject": q.subject.replace("_", " "), "question": q.question,
                         "choices": format_choices(q.options),
                         "examples": "".join(_example(e) + "\n\n" for e in examples)}
            out.items.append(EvalItem(lang=q.lang, id=q.id, variables=variables,
                                      reference=q.answer, options=q.options, prompt=PROMPT,
                                      source=q.source))
        return out

    def _examples(self, q: _Question, pool: list[_Question]) -> list[_Question]:
        others = [e for e in pool if (e.id, e.question) != (q.id, q.question)]
        same = [e for e in others if e.subject == q.subject]
        rest = [e for e in others if e.subject != q.subject]
        return (same + rest)[:self.shots]

    def score_item(self, item: EvalItem, output: str) -> dict[str, Any]:
        letter = parse_choice(output, item.options)
        return {"answer": letter, "correct": letter == item.reference,
                "unparsed": letter is None}

    def group_metrics(self, items: Sequence[EvalItem], outputs: Sequence[str]) -> list[Metric]:
        letters = [parse_choice(o, i.options) for i, o in zip(items, outputs, strict=True)]
        correct = [float(x == i.reference) for x, i in zip(letters, items, strict=True)]
        unparsed = [float(x is None) for x in letters]
        return [Metric("accuracy", mean_rows(correct), mean_score),
                Metric("unparsed", mean_rows(unparsed), mean_score)]

    def signatures(self) -> dict[str, str]:
        return {"accuracy": f"strict letter parse|shots:{self.shots}|unparsed counts wrong|"
                            "JSON schema where the endpoint enforces one"}
