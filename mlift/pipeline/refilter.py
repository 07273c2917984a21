"""``mlift filter RUN_DIR --min-score K``: re-derive a run's dataset at another threshold.

Every judged pair is in ``scored.jsonl``, so sweeping the threshold needs no
new judge calls: pairs now below ``K`` leave the dataset, pairs newly at or
above it are back-translated (only those: the rest of the dataset is kept as
it is) and added. The dataset is rewritten atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlift.engine.core import Engine
from mlift.engine.scheduler import Scheduler
from mlift.errors import ConfigError
from mlift.langs import get_language
from mlift.pipeline.outputs import DATASET, REJECTS, RUN, SCORED, read_jsonl
from mlift.pipeline.stages import Models, StageReject, Stages, Trace
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER, contains_original
from mlift.prompts import PromptLibrary


@dataclass(slots=True)
class FilterReport:
    kept: int = 0
    removed: int = 0
    added: int = 0
    rejected: int = 0
    below: int = 0


def load_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a finished mlift run folder (no {RUN})")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def models_of(run: dict[str, Any]) -> Models:
    m = run["config"]["models"]
    return Models(translator=m["translator"], generator=m["generator"], judge=m["judge"])


async def refilter(run_dir: Path, min_score: int, engine: Engine, library: PromptLibrary,
                   *, workers: int = 64) -> FilterReport:
    run = load_run(run_dir)
    stages = Stages(engine, library, models_of(run))
    report = FilterReport()
    rejected = {r["id"] for r in read_jsonl(run_dir / REJECTS)}
    old_rows = {r["id"]: r for r in read_jsonl(run_dir / DATASET)}
    scored = [s for s in read_jsonl(run_dir / SCORED)
              if s["id"] not in rejected or s["id"] in old_rows]
    rows: list[dict[str, Any]] = []
    new_rejects: list[dict[str, Any]] = []
    todo = []
    for pair in scored:
        if pair["score"] < min_score:
            report.below += 1
            report.removed += pair["id"] in old_rows
        elif pair["id"] in old_rows:
            rows.append(old_rows[pair["id"]])
        else:
            todo.append(pair)

    async def back(pair: dict[str, Any]) -> dict[str, Any]:
        lang, trace = get_language(pair["lang"]), Trace()
        context = pair.get("context")
        context_text = "\n\n".join(v for v in context.values() if v) if context else None
        try:
            instruction = await stages.back(pair["id"], pair["instruction_en"], lang,
                                            context_text is not None, trace)
            if context_text is not None:
                instruction = instruction.replace(CONTEXT_PLACEHOLDER, context_text)
            problem = contains_original(instruction, pair["response"])
            if problem:
                raise StageReject("emit", *problem)
        except StageReject as r:
            return {"reject": {"id": pair["id"], "lang": pair["lang"], "stage": r.stage,
                               "code": r.code, "detail": r.detail, "response": pair["response"],
                               "source": pair.get("source"), "usage": trace.usage}}
        usage = {**pair.get("usage", {}), **trace.usage}
        prompts = {**pair.get("prompts", {}), **trace.prompts}
        keys = ("id", "lang")
        row = {**{k: pair[k] for k in keys}, "instruction": instruction,
               "response": pair["response"], "instruction_en": pair["instruction_en"],
               "response_en": pair["response_en"], "task": pair["task"],
               "style": pair.get("style"), "length_hint": pair.get("length_hint"),
               "score": pair["score"], "reason": pair["reason"], "prompts": prompts,
               "models": pair.get("models"), "source": pair.get("source"),
               "fields": pair.get("fields", {}), "usage": usage}
        return {"kept": row}

    def emit(_i: int, _pair: object, outcome: dict[str, Any]) -> None:
        if "kept" in outcome:
            rows.append(outcome["kept"])
            report.added += 1
        else:
            new_rejects.append(outcome["reject"])
            report.rejected += 1

    await Scheduler(back, emit, workers=workers).run(todo)
    report.kept = len(rows)
    _rewrite(run_dir / DATASET, rows)
    with (run_dir / REJECTS).open("a", encoding="utf-8") as fh:
        for r in new_rejects:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    run["config"]["min_score"] = min_score
    run.setdefault("filters", []).append({"min_score": min_score, "kept": report.kept,
                                          "added": report.added, "removed": report.removed,
                                          "rejected": report.rejected})
    run["funnel"].update({"kept": report.kept, "below_threshold": report.below})
    tmp = run_dir / (RUN + ".tmp")
    tmp.write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / RUN)
    return report


def _rewrite(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
