"""The side-by-side comparison: one row per statistic, one column per dataset.

:func:`summary_rows` gives the cells (shared by the terminal and the HTML
page); :func:`render_text` lays them out for a terminal, like the paper's
Table 2 comparing instruction and response lengths across datasets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlift.report.stats import DatasetStats, LengthStats

__all__ = ["reject_pairs", "render_text", "summary_rows"]

MAX_CELL = 34


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def _top(counts: Mapping[str, int] | Sequence[tuple[str, int]], k: int = 3) -> str:
    items = list(counts.items()) if isinstance(counts, Mapping) else list(counts)
    return ", ".join(f"{name} {n}" for name, n in items[:k]) or "-"


def _length_cells(stats: Sequence[DatasetStats], lang: str | None) -> list[tuple[str, list[str]]]:
    def pick(s: DatasetStats, field: str) -> LengthStats | None:
        if lang is None:
            return s.instruction if field == "instruction" else s.response
        per = s.by_lang.get(lang)
        if per is None and len(s.languages) == 1 and lang in s.languages:
            return s.instruction if field == "instruction" else s.response
        return per[field] if per else None

    suffix = f" [{lang}]" if lang else ""
    tok = "tokens" if not stats or stats[0].tokenizer != "approx" else "tokens~"
    rows = []
    for field in ("instruction", "response"):
        for unit in ("chars", tok):
            cells = []
            for s in stats:
                got = pick(s, field)
                spread = (got.chars if unit == "chars" else got.tokens) if got else None
                cells.append(str(spread) if spread and spread.n else "-")
            rows.append((f"{field} {unit}{suffix}", cells))
    return rows


def summary_rows(stats: Sequence[DatasetStats]) -> list[tuple[str, list[str]]]:
    """``(label, one cell per dataset)`` for every compared statistic."""
    rows: list[tuple[str, list[str]]] = [
        ("kind", [s.kind for s in stats]),
        ("rows (kept)", [str(s.rows) for s in stats]),
        ("languages", [_top(s.languages, 6) for s in stats]),
        ("input", [str(s.funnel.input) for s in stats]),
        ("rejected", [f"{s.funnel.rejected_total} ({_pct(s.funnel.rejected_total, s.funnel.input)})"
                      for s in stats]),
        ("judged", [str(s.funnel.scored) if s.funnel.scored else "-" for s in stats]),
        ("below threshold", [str(s.funnel.below_threshold) if s.funnel.scored else "-"
                             for s in stats]),
        ("min score (λ)", [str(s.min_score) if s.min_score is not None else "-" for s in stats]),
        ("scores 1/2/3/4/5", ["/".join(str(v) for v in s.score_histogram.values())
                              if s.score_histogram else "-" for s in stats]),
    ]
    rows += [(f"yield at ≥{k}", [
        f"{s.yields[k]} ({_pct(s.yields[k], s.funnel.scored)})" if s.yields else "-"
        for s in stats]) for k in range(1, 6)]
    rows += _length_cells(stats, None)
    langs = sorted({lang for s in stats for lang in s.by_lang})
    for lang in langs:
        rows += _length_cells(stats, lang)
    rows += [
        ("distinct-1 (instructions)", [f"{s.distinct['distinct_1']:.3f}" for s in stats]),
        ("distinct-2 (instructions)", [f"{s.distinct['distinct_2']:.3f}" for s in stats]),
        ("near-duplicate instructions", [f"{s.near_duplicates} ({s.near_duplicate_rate:.1%})"
                                         for s in stats]),
        ("task entropy (bits)", [f"{s.task_entropy:.2f} ({len(s.tasks)} tasks)" for s in stats]),
        ("prompt entropy (bits)", [f"{s.prompt_entropy:.2f} ({len(s.prompts)} prompts)"
                                   for s in stats]),
        ("top tasks", [_top(s.tasks) for s in stats]),
        ("top leading words (en)", [_top(s.leading_words) if s.leading_words else "-"
                                    for s in stats]),
    ]
    return rows


def reject_pairs(s: DatasetStats) -> list[tuple[str, str, int]]:
    """``(stage, reason code, count)`` of a dataset's rejects, most frequent first."""
    pairs = [(stage, code, n) for stage, codes in s.funnel.rejected.items()
             for code, n in codes.items()]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def render_text(stats: Sequence[DatasetStats]) -> str:
    """The comparison table and each dataset's rejects, as plain text."""
    rows = summary_rows(stats)
    header = ("", [s.name for s in stats])
    table = [header, *rows]
    label_w = max(len(label) for label, _ in table)
    widths = [max(len(_clip(cells[i])) for _, cells in table) for i in range(len(stats))]
    lines = []
    for n, (label, cells) in enumerate(table):
        line = label.ljust(label_w) + "  " + "  ".join(
            _clip(c).ljust(w) for c, w in zip(cells, widths, strict=True))
        lines.append(line.rstrip())
        if n == 0:
            lines.append("-" * len(line.rstrip()))
    if stats:
        lines.append("")
        lines.append(f"Token lengths: {stats[0].tokenizer} tokens ({stats[0].token_model})"
                     + ("; approx = mlift's script-aware estimate, the tokenizer was unavailable"
                        if stats[0].tokenizer == "approx" else "")
                     + ". Lengths are mean ± s.d.; yields count judged pairs scoring ≥ k.")
    for s in stats:
        rejects = reject_pairs(s)
        if rejects:
            lines.append("")
            lines.append(f"Rejects of {s.name} (stage:reason):")
            lines += [f"  {stage}:{code}  {n}" for stage, code, n in rejects]
    return "\n".join(lines) + "\n"
