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
from typing import Any

from mlift.records import DatasetRow, RecordBase, Reject, ScoredPair
from mlift.runfolder import RunFolder

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


def _get(record: RecordBase | None, name: str) -> Any:
    return getattr(record, name, None) if record is not None else None


def _pair(status: str, *records: RecordBase | None, reject: Reject | None = None) -> Pair:
    """The pair from the first of ``records`` that has each field."""

    def first(name: str) -> Any:
        return next((v for r in records if (v := _get(r, name)) not in (None, "", {})), None)

    models = first("models")
    lead = next(r for r in records if r is not None)
    return Pair(
        id=str(_get(lead, "id")), lang=first("lang"), status=status,
        instruction=first("instruction"), instruction_en=first("instruction_en"),
        response=first("response"), response_en=first("response_en"),
        context=first("context"), score=first("score"), reason=first("reason"),
        task=first("task"), style=first("style"), length_hint=first("length_hint"),
        template=first("template"),
        judge=models.get("judge") if isinstance(models, dict) else None,
        source=first("source"),
        reject=None if reject is None else {
            "stage": reject.stage, "code": reject.code, "detail": reject.detail})


def load_pairs(folder: RunFolder) -> list[Pair]:
    """Every item of ``folder`` once: kept rows, then judged pairs below λ, then rejects."""
    kept: dict[str, DatasetRow] = {}
    for row in folder.records(DatasetRow):
        kept.setdefault(row.id, row)
    scored: dict[str, ScoredPair] = {}
    for pair in folder.records(ScoredPair):
        scored.setdefault(pair.id, pair)
    rejects: dict[str, Reject] = {}
    for reject in folder.records(Reject):
        rejects.setdefault(reject.id, reject)
    pairs = [_pair("kept", row, scored.get(pid)) for pid, row in kept.items()]
    pairs += [_pair("below", pair) for pid, pair in scored.items()
              if pid not in kept and pid not in rejects]
    for pid, reject in rejects.items():
        if pid in kept:
            continue  # an earlier failure the next run retried and kept
        # A pair judged and then rejected (e.g. at back-translation) keeps what it had.
        pairs.append(_pair("rejected", scored.get(pid), reject, reject=reject))
    return pairs
