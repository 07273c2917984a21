"""FLORES-200: translate sentences en→L and L→en, scored by chrF++ and spBLEU.

Two public layouts are read, row by row:

* **wide**, as ``facebook/flores`` pair configs: one row per sentence with a
  field per language, ``{"id": 1, "sentence_eng_Latn": "...",
  "sentence_hin_Deva": "..."}``;
* **long**, as ``openlanguagedata/flores_plus``: one row per sentence and
  language, ``{"id": 1, "iso_639_3": "hin", "iso_15924": "Deva", "text":
  "..."}``, joined on ``id``.

Languages are named by FLORES codes (``hin_Deva``): mlift's ISO 639-3 code
and the language's script, with the few FLORES exceptions in
:data:`FLORES_CODES`. Each sentence is two items, one per direction; corpus
chrF++ and spBLEU are computed per direction (:mod:`mlift.eval.mt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError, InputError
from mlift.eval.base import EvalItem, Loaded, Metric, text_field
from mlift.eval.data import Rows
from mlift.eval.mt import ChrFpp, SpBleu, file_sha256, find_spm_model, missing_spm_message
from mlift.langs import get_language

PROMPT = "eval/flores"
METRICS = ("chrf++", "spbleu")
_SCRIPTS = {"Latin": "Latn", "Devanagari": "Deva", "Telugu": "Telu", "Bengali": "Beng",
            "Tamil": "Taml", "Kannada": "Knda", "Malayalam": "Mlym", "Gujarati": "Gujr",
            "Gurmukhi": "Guru", "Oriya": "Orya", "Sinhala": "Sinh", "Arabic": "Arab",
            "Cyrillic": "Cyrl", "Greek": "Grek", "Hebrew": "Hebr", "Thai": "Thai",
            "Lao": "Laoo", "Myanmar": "Mymr", "Khmer": "Khmr", "Georgian": "Geor",
            "Armenian": "Armn", "Ethiopic": "Ethi", "Tibetan": "Tibt", "Hangul": "Hang"}
FLORES_CODES = {"ja": "jpn_Jpan", "zh": "zho_Hans", "ko": "kor_Hang", "ar": "arb_Arab",
                "fa": "pes_Arab", "sw": "swh_Latn", "ms": "zsm_Latn", "ne": "npi_Deva",
                "or": "ory_Orya", "et": "est_Latn", "lv": "lvs_Latn", "uz": "uzn_Latn",
                "mn": "khk_Cyrl", "ps": "pbt_Arab", "az": "azj_Latn", "sq": "als_Latn"}
"""Where FLORES-200's code is not ISO 639-3 + the first script (macrolanguages)."""


def flores_code(lang: str) -> str:
    language = get_language(lang)
    if language.code in FLORES_CODES:
        return FLORES_CODES[language.code]
    script = _SCRIPTS.get(language.scripts[0])
    if script is None:
        raise ConfigError(f"no FLORES-200 code known for {language.name}; name its column "
                          f"sentence_<code> and pass --lang with a language mlift can map")
    return f"{language.iso3}_{script}"


class FloresTask:
    name = "flores"
    hub_dataset = "openlanguagedata/flores_plus"
    hub_split = "devtest"

    def __init__(self, *, spm_model: Path | None = None, metrics: Sequence[str] = METRICS,
                 directions: str = "both") -> None:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise ConfigError(f"--metrics: unknown {', '.join(unknown)} for flores "
                              f"(known: {', '.join(METRICS)})")
        if directions not in ("both", "to", "from"):
            raise ConfigError("--direction must be both, to (en→L) or from (L→en)")
        self.metric_names = tuple(m for m in METRICS if m in metrics)
        self.directions = directions
        self._chrf = ChrFpp()
        self._spbleu: SpBleu | None = None
        if "spbleu" in self.metric_names:
            path = find_spm_model(spm_model)
            if path is None:
                raise ConfigError(missing_spm_message())
            self._spbleu = SpBleu(path)

    def hub_configs(self, langs: Sequence[str]) -> list[tuple[str | None, str | None]]:
        return [(flores_code(lang), None) for lang in dict.fromkeys([*langs, "en"])]

    def load(self, sources: Sequence[Rows], langs: Sequence[str]) -> Loaded:
        if "en" in langs:
            raise ConfigError("flores pairs each language with English: --lang en has no pair; "
                              "list the other languages")
        out = Loaded(sources=[s.provenance for s in sources])
        codes = {lang: flores_code(lang) for lang in [*langs, "en"]}
        sentences: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        for rows in sources:
            for line, row in rows.rows:
                self._collect(rows, line, row, set(codes.values()), sentences, out.invalid)
        en = codes["en"]
        for item_id, texts in sentences.items():
            for lang in langs:
                code = codes[lang]
                if lang == "en" or en not in texts or code not in texts:
                    continue
                pairs = []
                if self.directions in ("both", "to"):
                    pairs.append(("en", lang))
                if self.directions in ("both", "from"):
                    pairs.append((lang, "en"))
                for src, tgt in pairs:
                    text, where = texts[codes[src]]
                    ref, _ = texts[codes[tgt]]
                    s, t = get_language(src), get_language(tgt)
                    out.items.append(EvalItem(
                        lang=lang, id=item_id, direction=f"{src}-{tgt}", reference=ref,
                        prompt=PROMPT, source=where, budget_source=text,
                        variables={"text": text, "source_lang": s.code, "target_lang": t.code,
                                   "source_name": s.name, "target_name": t.name}))
        return out

    @staticmethod
    def _collect(rows: Rows, line: int, row: dict[str, Any], codes: set[str],
                 sentences: dict[str, dict[str, tuple[str, dict[str, Any]]]],
                 invalid: list[InputError]) -> None:
        where = {"file": rows.provenance.get("path") or rows.provenance.get("dataset"),
                 "line": line}
        item_id = text_field(row, "id", rows.where, line)
        if not isinstance(item_id, str):
            invalid.append(item_id or InputError("missing", file=rows.where, line=line,
                                                 field="id", code="missing_field"))
            return
        if "text" in row and "iso_639_3" in row:  # the long layout
            code = f"{row.get('iso_639_3')}_{row.get('iso_15924')}"
            if code not in codes:
                return
            text = text_field(row, "text", rows.where, line)
            if isinstance(text, InputError) or text is None:
                invalid.append(text or InputError("missing", file=rows.where, line=line,
                                                  field="text", code="missing_field"))
                return
            sentences.setdefault(item_id, {})[code] = (text, where)
            return
        found = False
        for code in codes:
            name = f"sentence_{code}"
            if name not in row:
                continue
            found = True
            text = text_field(row, name, rows.where, line)
            if isinstance(text, InputError):
                invalid.append(text)
            elif text is not None:
                sentences.setdefault(item_id, {})[code] = (text, where)
        if not found:
            invalid.append(InputError(
                f"no sentence_<code> field for {', '.join(sorted(codes))} and not the "
                "long layout (iso_639_3, iso_15924, text)", file=rows.where, line=line,
                code="missing_field"))

    def score_item(self, item: EvalItem, output: str) -> dict[str, Any]:
        return {"chrf++": round(self._chrf.sentence(output, item.reference), 4)}

    def group_metrics(self, items: Sequence[EvalItem], outputs: Sequence[str]) -> list[Metric]:
        refs = [i.reference for i in items]
        metrics = [Metric("chrf++", self._chrf.statistics(outputs, refs), self._chrf.score)]
        if self._spbleu is not None:
            metrics.append(Metric("spbleu", self._spbleu.statistics(outputs, refs),
                                  self._spbleu.score))
        return metrics

    def signatures(self) -> dict[str, str]:
        out = {"chrf++": self._chrf.signature}
        if self._spbleu is not None:
            out["spbleu"] = self._spbleu.signature
            out["spm_model"] = (f"{self._spbleu.model_path} sha256:"
                                f"{file_sha256(self._spbleu.model_path)} "
                                f"pieces:{self._spbleu.vocab_size}")
        return out
