"""``mlift filter RUN_DIR --min-score K``: re-derive a run's dataset at another threshold.

Every judged pair is in ``scored.jsonl``, so sweeping the threshold needs no
new judge calls: pairs now below ``K`` leave the dataset, pairs newly at or
above it are back-translated (only those: the rest of the dataset is kept as
it is) and added. The rows that leave are dropped first, in one atomic
rewrite; the new ones are then appended as they finish, so an interrupted
filter is finished by running it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlift.engine.core import Engine
from mlift.errors import RunFolderError
from mlift.langs import get_language
from mlift.pipeline.runner import stage_reject
from mlift.pipeline.stages import Models, StageReject, Stages, Trace
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER, contains_original
from mlift.prompts import PromptLibrary
from mlift.records import DatasetRow, RecordBase, Reject, ScoredPair, rewrite
from mlift.runfolder import Finished, Run, RunFolder


@dataclass(slots=True)
class FilterReport:
    kept: int = 0
    removed: int = 0
    added: int = 0
    rejected: int = 0
    below: int = 0
    stopped: str | None = None
    cost_usd: float = 0.0
    run_cost_usd: float = 0.0


def models_of(folder: RunFolder) -> Models:
    """The models a pipeline run folder was made with."""
    models = folder.identity.get("models") or folder.manifest.get(
        "legacy_config", {}).get("models")
    if not isinstance(models, dict) or not {"translator", "generator", "judge"} <= set(models):
        raise RunFolderError(f"{folder.path}: the folder does not say which models made it "
                             f"(no models in its {folder.path / 'manifest.json'} or run.json)")
    return Models(translator=models["translator"], generator=models["generator"],
                  judge=models["judge"])


def _row(pair: ScoredPair, instruction: str, trace: Trace) -> DatasetRow:
    return DatasetRow(
        id=pair.id, lang=pair.lang, instruction=instruction, response=pair.response,
        instruction_en=pair.instruction_en, response_en=pair.response_en, task=pair.task,
        style=pair.style, length_hint=pair.length_hint, score=pair.score, reason=pair.reason,
        prompts={**pair.prompts, **trace.prompts}, models=pair.models, source=pair.source,
        fields=pair.fields, usage={**pair.usage, **trace.usage})


@dataclass(slots=True)
class _Plan:
    folder: RunFolder
    models: Models
    finished: Finished
    keep: list[RecordBase]
    todo: list[ScoredPair]
    previous: dict[str, Any]
    report: FilterReport


def _plan(run_dir: Path, min_score: int) -> _Plan:
    """Read the folder, sort its pairs, drop the rows now below (blocking: all on disk)."""
    folder = RunFolder.load(run_dir, expect="run")
    models = models_of(folder)  # a folder that doesn't say is refused before any rewrite
    report = FilterReport()
    finished = folder.scan(repair=True)
    old_rows = {r.id: r for r in folder.records(DatasetRow)}
    pairs = [p for p in folder.records(ScoredPair)
             if p.id not in finished.rejected or p.id in old_rows]
    keep: list[RecordBase] = []
    todo: list[ScoredPair] = []
    for pair in pairs:
        if pair.score < min_score:
            report.below += 1
            report.removed += pair.id in old_rows
        elif pair.id in old_rows:
            keep.append(old_rows[pair.id])
        else:
            todo.append(pair)
    if report.removed:
        rewrite(folder.file(DatasetRow), keep)  # before anything new is appended
    return _Plan(folder, models, finished, keep, todo, folder.summary(), report)


async def refilter(run_dir: Path, min_score: int, engine: Engine, library: PromptLibrary,
                   *, workers: int = 64) -> FilterReport:
    plan = await asyncio.to_thread(_plan, run_dir, min_score)
    folder, report, keep = plan.folder, plan.report, plan.keep
    stages = Stages(engine, library, plan.models)
    await engine.prepare(plan.models.translator)  # the only model a filter calls

    async def back(pair: ScoredPair) -> tuple[RecordBase, ...]:
        lang, trace = get_language(pair.lang or ""), Trace()
        context = pair.context_text
        try:
            instruction = await stages.back(pair.id, pair.instruction_en, lang,
                                            context is not None, trace)
            if context is not None:
                instruction = instruction.replace(CONTEXT_PLACEHOLDER, context)
            problem = contains_original(instruction, pair.response)
            if problem:
                raise StageReject("emit", *problem, raw=instruction)
        except StageReject as r:
            report.rejected += 1
            return (stage_reject(r, item_id=pair.id, lang=pair.lang, response=pair.response,
                                 source=pair.source, trace=trace),)
        report.added += 1
        return (_row(pair, instruction, trace),)

    async with Run(folder, engine, files=(DatasetRow, Reject), finished=plan.finished,
                   command="filter") as run:
        try:
            await run.each(plan.todo, back, workers=workers)
        finally:
            report.stopped = run.stopped
            report.kept = len(keep) + report.added
            report.cost_usd, report.run_cost_usd = run.cost()
            await run.summary(**_updated(plan.previous, min_score, report))
    return report


def _updated(previous: dict[str, Any], min_score: int, report: FilterReport) -> dict[str, Any]:
    """The run's ``run.json`` parts with the new threshold, funnel and filter history."""
    keep = {k: v for k, v in previous.items() if k in ("config", "funnel", "prompts",
                                                        "filters", "estimate_vs_actual")}
    config = dict(keep.get("config", {}))
    config["min_score"] = min_score
    funnel = dict(keep.get("funnel", {}))
    funnel.update({"kept": report.kept, "below_threshold": report.below})
    if isinstance(funnel.get("rejected"), int):
        funnel["rejected"] += report.rejected
    filters = [*keep.get("filters", []), {
        "min_score": min_score, "kept": report.kept, "added": report.added,
        "removed": report.removed, "rejected": report.rejected,
        "stopped_early": report.stopped}]
    return {**keep, "config": config, "funnel": funnel, "filters": filters}
