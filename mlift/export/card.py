"""The dataset card (README.md) written next to every export.

Hugging Face card metadata (YAML front matter: languages, licence, size
category) and a body that says what a user of the data must know: languages
and sizes, the models of each stage, the prompt versions, the judge threshold,
the licences carried from the source records (an unknown licence is said to be
unknown, never guessed), and how the data was built.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from mlift import __version__
from mlift.errors import UnknownNameError
from mlift.langs import get_language
from mlift.report.load import FolderView
from mlift.report.stats import funnel

__all__ = ["CARD_MARK", "UNKNOWN_LICENSE", "dataset_card", "licenses"]

CARD_MARK = "<!-- written by mlift export -->"
UNKNOWN_LICENSE = "(unknown)"
PAPER = ("Indurthi et al. 2024, *Improving Multilingual Instruction Finetuning via "
         "Linguistically Natural and Diverse Datasets*, arXiv:2407.01853")
# Licence ids the Hugging Face Hub accepts as they are (lower-cased SPDX).
_HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-3.0", "cc-by-sa-3.0", "odc-by", "odbl", "pddl",
    "gpl-3.0", "bsd-3-clause", "unlicense", "cdla-permissive-2.0"})
_METHODS = {
    "mlift": ("the reverse-instruction method of " + PAPER + ": natural text in the target "
              "language is the response; an LLM writes an English instruction for its English "
              "translation; a judge scores the pair 1-5; pairs at or above the threshold are "
              "kept and only the instruction is translated back. The response is the original "
              "text, never machine-translated."),
    "translate": ("the translation-based baseline of " + PAPER + ": an English "
                  "instruction-tuning dataset with instruction and response machine-translated "
                  "into the target language."),
    "template": ("the template-based baseline of " + PAPER + ": instruction templates in the "
                 "target language filled with fields of an NLP dataset."),
}


def licenses(folder: FolderView) -> Counter[str]:
    """Rows per licence (``fields.license`` of the source record; missing → unknown)."""
    out: Counter[str] = Counter()
    for row in folder.rows:
        fields = row.get("fields")
        value = fields.get("license") if isinstance(fields, dict) else None
        out[value.strip() if isinstance(value, str) and value.strip() else UNKNOWN_LICENSE] += 1
    return out


def _hub_license(counts: Counter[str]) -> str:
    if UNKNOWN_LICENSE in counts or not counts:
        return "unknown"
    if len(counts) == 1:
        only = next(iter(counts)).lower()
        return only if only in _HUB_LICENSES else "other"
    return "other"


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def _lang_name(code: str) -> str:
    try:
        return get_language(code).name
    except UnknownNameError:
        return code


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return lines


def _front_matter(folder: FolderView, langs: Counter[str], lic: Counter[str],
                  data_files: str | None) -> list[str]:
    lines = ["---", "language:", *[f"- {json.dumps(code)}" for code in langs],
             f"license: {_hub_license(lic)}", "size_categories:",
             f"- {json.dumps(_size_category(len(folder.rows)))}",
             "task_categories:", "- text-generation",
             "tags:", "- instruction-tuning", "- multilingual", "- mlift",
             f"pretty_name: {json.dumps(folder.name)}"]
    if data_files:
        lines += ["configs:", "- config_name: default", "  data_files:",
                  "  - split: train", f"    path: {json.dumps(data_files)}"]
    return [*lines, "---"]


def dataset_card(folder: FolderView, *, fmt: str, files: Sequence[str],
                 data_files: str | None = None, system: str | None = None) -> str:
    """The README.md text for an export of ``folder`` in format ``fmt`` made of ``files``."""
    rows = folder.rows
    langs = Counter(str(r.get("lang") or "?") for r in rows)
    tasks = Counter(str(r.get("task") or "(none)") for r in rows)
    lic = licenses(folder)
    models: Counter[tuple[str, str]] = Counter(
        (stage, str(model)) for r in rows if isinstance(r.get("models"), dict)
        for stage, model in r["models"].items())
    prompts: Counter[tuple[str, str]] = Counter(
        (stage, str(ref)) for r in rows if isinstance(r.get("prompts"), dict)
        for stage, ref in r["prompts"].items())
    f = funnel(folder)
    kind = folder.kind
    built = folder.run.get("mlift_version", "unknown")
    simulated = any(m.startswith("sim:") for _, m in models) or any(
        "[sim]" in str(r.get("instruction_en") or "") for r in rows[:50])

    out = [*_front_matter(folder, langs, lic, data_files), CARD_MARK, "",
           f"# {folder.name}", ""]
    if simulated:
        out += ["> **Built with mlift's simulator** (`sim:` models): the instructions are "
                "placeholders marked `[sim]`, not model output. Do not train on this data.", ""]
    out += [f"A multilingual instruction-tuning dataset of {len(rows)} instruction-response "
            f"pairs, exported as `{fmt}`.", "", "## Files", ""]
    out += [f"- `{name}`" for name in files]
    if system:
        out += ["", f"Every example starts with this system message: {json.dumps(system)}"]
    out += ["", "## Languages and sizes", ""]
    out += _table(["language", "code", "rows"],
                  [(_lang_name(c), c, n) for c, n in langs.most_common()])
    out += ["", "Tasks:", ""]
    out += _table(["task", "rows"], tasks.most_common())
    out += ["", "## Licence", ""]
    out += _table(["licence (from the source records)", "rows"], lic.most_common())
    if UNKNOWN_LICENSE in lic:
        out += ["", f"**{lic[UNKNOWN_LICENSE]} rows carry no licence** in their source record: "
                "their terms are unknown. Check the sources before redistributing."]
    if models:
        out += ["", "Instructions (and, in the translation baseline, responses) were written by "
                "the models below; their providers' terms on the use of outputs may also apply."]
    out += ["", "## How it was built", "",
            f"- Method: {_METHODS.get(kind, _METHODS['mlift'])}",
            f"- Built with mlift {built}; exported with mlift {__version__}.",
            f"- Funnel: {f.input} input records → {f.kept} kept"
            + (f", {f.below_threshold} below the threshold" if f.scored else "")
            + f", {f.rejected_total} rejected (see `rejects.jsonl` of the run folder)."]
    if kind == "mlift":
        threshold = "unknown" if folder.min_score is None else str(folder.min_score)
        out.append(f"- Judge threshold (min score λ): {threshold}"
                   " on a 1-5 scale; the score and the judge's reason are on every row"
                   + (" of the `hf` export." if fmt == "hf" else " of the run's dataset.jsonl."))
    else:
        out.append("- Judge threshold: none (baseline rows are not scored).")
    out += ["", "### Models per stage", ""]
    out += (_table(["stage", "model", "rows"], [(s, m, n) for (s, m), n in sorted(models.items())])
            if models else ["No model calls (rows built without a model)."])
    out += ["", "### Prompt and template versions", ""]
    out += (_table(["stage", "prompt@version#hash", "rows"],
                   [(s, p, n) for (s, p), n in sorted(prompts.items())])
            if prompts else ["None recorded."])
    return "\n".join(out) + "\n"
