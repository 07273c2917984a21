"""Dataset statistics for ``mlift report``: pure functions over a :class:`FolderView`.

What is measured, and how:

* **Funnel** — input, rejects per stage and reason code (``rejects.jsonl``,
  first record per id), judged pairs, pairs below the threshold and kept rows,
  counted from the files themselves (so a later ``mlift filter`` is reflected);
  ``input`` comes from ``run.json`` when it is there.
* **Scores and yield** — the histogram of ``scored.jsonl`` and, for every
  threshold k in 1..5, how many judged pairs score ≥ k (what ``--min-score k``
  would keep before back-translation).
* **Lengths** — mean ± population s.d. of instruction and response length in
  characters (code points) and in tokens of :data:`TOKEN_MODEL`'s tokenizer
  (``o200k_base``; when it cannot be loaded, mlift's script-aware estimate, and
  the label says ``approx``).
* **Diversity** — distinct-n (Li et al. 2016: distinct n-grams / all n-grams,
  over all instructions) on words: runs of letters, marks and digits between
  whitespace and punctuation, case-folded, with every Han or kana character its
  own token, since Japanese and Chinese do not separate words by spaces. Also
  Shannon entropy (bits) over tasks and prompts, the near-duplicate rate of the
  instructions (the selector's exact and MinHash near-duplicate checks, Jaccard
  ≥ ~0.8 on character shingles), and the most common leading words of the
  English instructions.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from mlift.errors import UnknownNameError
from mlift.langs import get_language
from mlift.pipeline.select import SelectConfig, Selector
from mlift.pipeline.sources import Record
from mlift.report.load import FolderView
from mlift.tokens import count_tokens, tokenizer_name

__all__ = ["TOKEN_MODEL", "DatasetStats", "Funnel", "LengthStats", "Spread", "dataset_stats",
           "distinct_n", "entropy_bits", "leading_word", "mean_sd", "near_duplicates",
           "words", "yields"]

TOKEN_MODEL = "gpt-4o-mini"
"""Whose tokenizer the token lengths use (o200k_base): a common, public yardstick."""

THRESHOLDS = (1, 2, 3, 4, 5)
TOP_VERBS = 10

# Leading words that carry no task: "Please explain…", "Can you list…" count as explain, list.
_FILLERS: tuple[tuple[str, ...], ...] = (
    ("please",), ("kindly",), ("can", "you"), ("could", "you"), ("would", "you"),
    ("will", "you"), ("i", "want", "you", "to"), ("i'd", "like", "you", "to"))
_TAGS = re.compile(r"^\s*(?:\[[^\]]*\]\s*)+")  # leading markers such as the simulator's [sim]
_EN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True, slots=True)
class Spread:
    """Mean and population standard deviation of ``n`` values."""

    mean: float
    sd: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.sd:.1f}" if self.n else "-"


@dataclass(frozen=True, slots=True)
class LengthStats:
    """Lengths of one text field: characters and tokens, with the raw values for plots."""

    chars: Spread
    tokens: Spread
    char_values: tuple[int, ...] = field(repr=False, default=())


@dataclass(frozen=True, slots=True)
class Funnel:
    """Where the input went. ``rejected`` maps stage → reason code → count."""

    input: int
    kept: int
    below_threshold: int
    scored: int
    rejected: dict[str, dict[str, int]]
    judge_parse_failures: int | None = None

    @property
    def rejected_total(self) -> int:
        return sum(sum(codes.values()) for codes in self.rejected.values())

    @property
    def balanced(self) -> bool:
        return self.input == self.kept + self.below_threshold + self.rejected_total


@dataclass(frozen=True, slots=True)
class DatasetStats:
    """Every statistic of one run folder; :meth:`to_json` gives the ``--json`` form."""

    name: str
    path: str
    kind: str
    rows: int
    languages: dict[str, int]
    funnel: Funnel
    min_score: int | None
    score_histogram: dict[int, int] | None
    yields: dict[int, int] | None
    token_model: str
    tokenizer: str
    instruction: LengthStats
    response: LengthStats
    by_lang: dict[str, dict[str, LengthStats]]
    distinct: dict[str, float]
    tasks: dict[str, int]
    prompts: dict[str, int]
    styles: dict[str, int]
    task_entropy: float
    prompt_entropy: float
    near_duplicates: int
    leading_words: list[tuple[str, int]]
    english_instructions: int

    @property
    def near_duplicate_rate(self) -> float:
        return self.near_duplicates / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("instruction", "response"):
            data[key].pop("char_values")
        for per_lang in data["by_lang"].values():
            for value in per_lang.values():
                value.pop("char_values")
        data["funnel"]["rejected_total"] = self.funnel.rejected_total
        data["funnel"]["balanced"] = self.funnel.balanced
        data["near_duplicate_rate"] = self.near_duplicate_rate
        data["leading_words"] = [{"word": w, "count": c} for w, c in self.leading_words]
        return data


def mean_sd(values: Sequence[float]) -> Spread:
    """Mean and population s.d. (zeros for no values)."""
    if not values:
        return Spread(0.0, 0.0, 0)
    return Spread(statistics.fmean(values), statistics.pstdev(values), len(values))


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF
            or 0xF900 <= o <= 0xFAFF or 0xFF66 <= o <= 0xFF9F or 0x20000 <= o <= 0x2FA1F)


@lru_cache(maxsize=65536)
def _char_kind(ch: str) -> int:
    """0: separator (space, punctuation, symbol, control), 1: a CJK token by itself, 2: word."""
    if _is_cjk(ch):
        return 1
    return 0 if unicodedata.category(ch)[0] in "PSZC" else 2


def words(text: str) -> list[str]:
    """Case-folded word tokens, script-aware (see the module docstring).

    Letters with combining marks (Devanagari, Telugu vowel signs) stay in their
    word, which a plain ``\\w+`` would split.
    """
    out: list[str] = []
    current: list[str] = []
    for ch in text.casefold():
        kind = _char_kind(ch)
        if kind == 2:
            current.append(ch)
            continue
        if current:
            out.append("".join(current))
            current = []
        if kind == 1:
            out.append(ch)
    if current:
        out.append("".join(current))
    return out


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Distinct n-grams over all n-grams of all the texts (0.0 when there are none)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for tokens in token_lists:
        grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def entropy_bits(counts: Mapping[str, int]) -> float:
    """Shannon entropy in bits of a distribution given as counts."""
    total = sum(counts.values())
    if not total:
        return 0.0
    h = -sum(c / total * math.log2(c / total) for c in counts.values() if c)
    return h + 0.0  # turns -0.0 into 0.0


def leading_word(instruction_en: str) -> str | None:
    """The first word of an English instruction after dropping polite fillers.

    Lower-cased; leading bracketed tags (``[sim]``) and fillers ("please",
    "can you", "could you", …) are skipped, so "Can you please list…" gives
    ``list``. None when no English word is left.
    """
    tokens = _EN_WORD.findall(_TAGS.sub("", instruction_en.lower())[:200])
    changed = True
    while changed:
        changed = False
        for filler in _FILLERS:
            if tuple(tokens[:len(filler)]) == filler:
                tokens = tokens[len(filler):]
                changed = True
    return tokens[0] if tokens else None


def yields(scores: Iterable[int], thresholds: Iterable[int] = THRESHOLDS) -> dict[int, int]:
    """How many scores are ≥ each threshold."""
    values = list(scores)
    return {k: sum(1 for s in values if s >= k) for k in thresholds}


def near_duplicates(items: Iterable[tuple[str, str | None, str]]) -> int:
    """How many of the ``(id, lang, text)`` items repeat an earlier one, exactly or nearly.

    Uses the selector's exact and MinHash/LSH checks (no length, script or
    language checks); texts in a language mlift does not know are compared as
    if English (5-character shingles).
    """
    selector = Selector(SelectConfig(min_chars=0, max_chars=10**9, script_check=False,
                                     lang_id=False))
    for item_id, lang, text in items:
        selector.select(Record(item_id, _known_lang(lang), text))
    counts = selector.counts()
    return counts["duplicate"] + counts["near_duplicate"]


def _known_lang(lang: str | None) -> str:
    try:
        return get_language(lang).code if lang else "en"
    except UnknownNameError:
        return "en"


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    return value if isinstance(value, str) else ""


def _prompt_of(row: Mapping[str, Any]) -> str:
    """The instruction prompt (or template) a row was made with, without its content hash."""
    prompts = row.get("prompts")
    ref = row.get("template") or (prompts.get("instruct") if isinstance(prompts, dict) else None)
    return str(ref).split("#", 1)[0] if ref else "(none)"


def _lengths(texts: Sequence[str], model: str) -> LengthStats:
    chars = tuple(len(t) for t in texts)
    tokens = [count_tokens(t, model) for t in texts]
    return LengthStats(mean_sd(chars), mean_sd(tokens), chars)


def funnel(folder: FolderView) -> Funnel:
    """The funnel, counted from the folder's files (see the module docstring)."""
    rejected: dict[str, dict[str, int]] = {}
    rejected_ids: set[str] = set()
    for r in folder.rejects:
        rid = str(r.get("id"))
        if rid in rejected_ids:
            continue
        rejected_ids.add(rid)
        codes = rejected.setdefault(str(r.get("stage", "?")), {})
        code = str(r.get("code", "?"))
        codes[code] = codes.get(code, 0) + 1
    kept_ids = {str(r.get("id")) for r in folder.rows}
    scored_ids = {str(r.get("id")) for r in folder.scored}
    below = len(scored_ids - kept_ids - rejected_ids)
    recorded = folder.run.get("funnel", {})
    total = len(kept_ids) + below + len(rejected_ids)
    given = recorded.get("input") if isinstance(recorded, dict) else None
    parse_failures = recorded.get("judge_parse_failures") if isinstance(recorded, dict) else None
    return Funnel(input=given if isinstance(given, int) else total, kept=len(folder.rows),
                  below_threshold=below, scored=len(scored_ids), rejected=rejected,
                  judge_parse_failures=parse_failures if isinstance(parse_failures, int)
                  else None)


def dataset_stats(folder: FolderView, *, token_model: str = TOKEN_MODEL) -> DatasetStats:
    """Every statistic of one run folder (a baseline folder gives no scores or yields)."""
    rows = folder.rows
    instructions = [_text(r, "instruction") for r in rows]
    responses = [_text(r, "response") for r in rows]
    scores = [s for r in folder.scored if isinstance(s := r.get("score"), int)]
    langs = Counter(str(r.get("lang") or "?") for r in rows)
    by_lang: dict[str, dict[str, LengthStats]] = {}
    if len(langs) > 1:
        for lang in sorted(langs):
            picked = [i for i, r in enumerate(rows) if str(r.get("lang") or "?") == lang]
            by_lang[lang] = {
                "instruction": _lengths([instructions[i] for i in picked], token_model),
                "response": _lengths([responses[i] for i in picked], token_model)}
    tokenised = [words(t) for t in instructions]
    english = [_text(r, "instruction_en") for r in rows if _text(r, "instruction_en")]
    verbs = Counter(w for t in english if (w := leading_word(t)) is not None)
    tasks = Counter(str(r.get("task") or "(none)") for r in rows)
    prompts = Counter(_prompt_of(r) for r in rows)
    styles = Counter(str(r["style"]) for r in rows if r.get("style"))
    dups = near_duplicates((str(r.get("id", i)), r.get("lang"), instructions[i])
                           for i, r in enumerate(rows))
    return DatasetStats(
        name=folder.name, path=str(folder.path), kind=folder.kind, rows=len(rows),
        languages=dict(langs.most_common()), funnel=funnel(folder),
        min_score=folder.min_score,
        score_histogram={k: scores.count(k) for k in THRESHOLDS} if scores else None,
        yields=yields(scores) if scores else None,
        token_model=token_model, tokenizer=tokenizer_name(token_model),
        instruction=_lengths(instructions, token_model),
        response=_lengths(responses, token_model), by_lang=by_lang,
        distinct={"distinct_1": distinct_n(tokenised, 1), "distinct_2": distinct_n(tokenised, 2)},
        tasks=dict(tasks.most_common()), prompts=dict(prompts.most_common()),
        styles=dict(styles.most_common()), task_entropy=entropy_bits(tasks),
        prompt_entropy=entropy_bits(prompts), near_duplicates=dups,
        leading_words=verbs.most_common(TOP_VERBS), english_instructions=len(english))
