"""One view of every pair in a run folder, whatever command wrote it.

``mlift run`` writes kept pairs (``dataset.jsonl``), every judged pair
(``scored.jsonl``) and the rejects; the baselines write kept rows and rejects
with fewer fields (no score, and for templates no English side). A
:class:`Pair` is what the review page shows for one item of either: its
status is *kept* (in the dataset), *below* (judged under the threshold) or
*rejected* (left the pipeline, possibly after it was judged), and the fields
a folder lacks are ``None``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlift.review.store import DATASET, REJECTS, SCORED, read_raw

STATUSES = ("kept", "below", "rejected")


@dataclass(frozen=True, slots=True)
class Pair:
    id: str
    lang: str | None
    status: str
    instruction: str | None = None
    instruction_en: str | None = None
    response: str | None = None
    response_en: str | None = None
    context: dict[str, str] | None = None
    score: int | None = None
    reason: str | None = None
    task: str | None = None
    style: str | None = None
    length_hint: str | None = None
    template: str | None = None
    judge: str | None = None
    source: dict[str, Any] | None = None
    reject: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """Everything a full-text search looks in, case-folded."""
        parts = [self.id, self.instruction, self.instruction_en, self.response,
                 self.response_en, self.reason, self.task, self.style,
                 *(self.context or {}).values(),
                 *((self.reject or {}).values())]
        return "\n".join(p for p in parts if isinstance(p, str)).casefold()


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _score(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _context(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict) or not value:
        return None
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _pair(record: dict[str, Any], status: str, reject: dict[str, Any] | None = None) -> Pair:
    models = record.get("models")
    source = record.get("source")
    return Pair(
        id=str(record["id"]), lang=_str(record.get("lang")), status=status,
        instruction=_str(record.get("instruction")),
        instruction_en=_str(record.get("instruction_en")),
        response=_str(record.get("response")), response_en=_str(record.get("response_en")),
        context=_context(record.get("context")), score=_score(record.get("score")),
        reason=_str(record.get("reason")), task=_str(record.get("task")),
        style=_str(record.get("style")), length_hint=_str(record.get("length_hint")),
        template=_str(record.get("template")),
        judge=_str(models.get("judge")) if isinstance(models, dict) else None,
        source=source if isinstance(source, dict) else None,
        reject=None if reject is None else {
            k: str(reject.get(k) or "") for k in ("stage", "code", "detail")})


def load_pairs(folder: Path) -> list[Pair]:
    """Every item of ``folder`` once: kept rows, then judged pairs below λ, then rejects."""
    kept: dict[str, dict[str, Any]] = {}
    for row in read_raw(folder / DATASET):
        kept.setdefault(str(row["id"]), row)
    scored: dict[str, dict[str, Any]] = {}
    for row in read_raw(folder / SCORED):
        scored.setdefault(str(row["id"]), row)
    rejects: dict[str, dict[str, Any]] = {}
    for row in read_raw(folder / REJECTS):
        rejects.setdefault(str(row["id"]), row)
    pairs = [_pair(row, "kept") for row in kept.values()]
    pairs += [_pair(row, "below") for pid, row in scored.items()
              if pid not in kept and pid not in rejects]
    for pid, reject in rejects.items():
        if pid in kept:
            continue  # an earlier failure the next run retried and kept
        # A pair judged and then rejected (e.g. at back-translation) keeps what it had.
        pairs.append(_pair({**reject, **scored.get(pid, {})}, "rejected", reject))
    return pairs
