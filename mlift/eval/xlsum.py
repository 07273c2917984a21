"""XL-Sum: summarise a BBC article in its own language, scored by ROUGE-1/2/L.

Schema (``csebuetnlp/xlsum``'s fields; one config per language, split ``test``)::

    {"id": "...", "url": "...", "title": "...", "summary": "...", "text": "..."}

``id``, ``summary`` and ``text`` are required; ``lang`` (a code or name) is
read when present, else the language given with the file (``--data
hi=FILE``) or the hub config. The model sees the article and writes the
summary; the reference is ``summary``. Scores are F-measures ×100, averaged
over items, with XL-Sum's multilingual tokenization (:mod:`mlift.eval.rouge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlift.eval.base import EvalItem, Loaded, Metric, row_lang, text_field
from mlift.eval.bootstrap import mean_rows, mean_score
from mlift.eval.data import Rows
from mlift.eval.rouge import ROUGE_TYPES, RougeScorer
from mlift.langs import get_language

PROMPT = "eval/xlsum"


class XlsumTask:
    name = "xlsum"
    metric_names: tuple[str, ...] = ROUGE_TYPES
    hub_dataset = "csebuetnlp/xlsum"
    hub_split = "test"

    def __init__(self) -> None:
        self._scorers: dict[str, RougeScorer] = {}

    def hub_configs(self, langs: Sequence[str]) -> list[tuple[str | None, str | None]]:
        # The dataset's configs are language names: "hindi", "telugu", …
        return [(get_language(lang).name.lower(), lang) for lang in langs]

    def scorer(self, lang: str) -> RougeScorer:
        if lang not in self._scorers:
            self._scorers[lang] = RougeScorer(lang)
        return self._scorers[lang]

    def load(self, sources: Sequence[Rows], langs: Sequence[str]) -> Loaded:
        out = Loaded(sources=[s.provenance for s in sources])
        wanted = set(langs)
        for rows in sources:
            for line, row in rows.rows:
                lang = row_lang(rows, row, line)
                fields = [lang] + [text_field(row, f, rows.where, line)
                                   for f in ("id", "text", "summary")]
                bad = next((f for f in fields if not isinstance(f, str)), None)
                if bad is not None:
                    if lang in wanted or not isinstance(lang, str):
                        out.invalid.append(bad)
                    continue
                lang, item_id, text, summary = (str(f) for f in fields)
                if lang not in wanted:
                    continue
                language = get_language(lang)
                out.items.append(EvalItem(
                    lang=lang, id=item_id, reference=summary, prompt=PROMPT,
                    variables={"article": text, "lang_name": language.name},
                    source={**_where(rows, line), "title": row.get("title")}))
        for lang in langs:
            note = self.scorer(lang).note
            if note:
                out.notes.append(note)
        return out

    def score_item(self, item: EvalItem, output: str) -> dict[str, Any]:
        got = self.scorer(item.lang).score(item.reference, output)
        return {k: round(100 * v, 4) for k, v in got.scores.items()}

    def group_metrics(self, items: Sequence[EvalItem], outputs: Sequence[str]) -> list[Metric]:
        scored = [self.scorer(i.lang).score(i.reference, o).scores
                  for i, o in zip(items, outputs, strict=True)]
        return [Metric(k, mean_rows([s[k] for s in scored]), mean_score) for k in ROUGE_TYPES]

    def signatures(self) -> dict[str, str]:
        return {f"rouge[{lang}]": s.signature for lang, s in sorted(self._scorers.items())}


def _where(rows: Rows, line: int) -> dict[str, Any]:
    return {"file": rows.provenance.get("path") or rows.provenance.get("dataset"), "line": line}
