"""``mlift judge``: another judge re-scores a seeded sample of a run's judged pairs.

The sample is drawn from ``scored.jsonl`` (every judged pair, kept or not) by
ranking ids on a hash of (seed, id), so it does not depend on file order and
a larger ``--sample`` keeps every pair of a smaller one. Each pair is judged
exactly as the run judged it — :meth:`Stages.judge` with the run's judge
prompt, on the English instruction with the English context put back where
the run put it — only by another model, through the same engine (cached,
rate-limited, under ``--max-cost``). The English context is not in
``scored.jsonl``; it is translated again with the run's translator, which the
response cache makes free when the run's cache is at hand.

Verdicts go to ``judge_scores.jsonl`` as :class:`~mlift.review.store.JudgeScore`
records; a pair this judge (with this prompt) has scored is not judged
again, and one it failed on is tried again.

:func:`estimate_judging` runs the same :func:`judge_pair` on the estimator's
dry-run engine (:mod:`mlift.estimate.dryrun`), so ``mlift judge`` prints what
it will cost before it sends anything.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlift.engine.cache import ResponseCache
from mlift.engine.core import Engine
from mlift.errors import ConfigError
from mlift.estimate.dryrun import DryRunEngine, Resolver
from mlift.estimate.model import Range, sample, stage_figures
from mlift.estimate.priors import prior_factors
from mlift.langs import get_language
from mlift.pipeline.refilter import models_of
from mlift.pipeline.sources import Record
from mlift.pipeline.stages import Models, StageReject, Stages, Trace
from mlift.pipeline.validate import CONTEXT_PLACEHOLDER
from mlift.prompts import PromptLibrary
from mlift.records import RecordBase, ScoredPair, repair_torn_tail
from mlift.review import store
from mlift.review.store import JudgeScore
from mlift.runfolder import Run, RunFolder


@dataclass(frozen=True, slots=True)
class JudgeOptions:
    run_dir: Path
    judge: str
    sample: int | None = None  # None: every judged pair
    seed: int = 0
    judge_prompt: str | None = None  # None: the run's
    workers: int = 64


@dataclass(slots=True)
class JudgeReport:
    sampled: int = 0
    already: int = 0
    scored: int = 0
    failed: int = 0
    stopped: str | None = None
    failures: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    total_cost_usd: float = 0.0


def _rank(seed: int, pair_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{pair_id}".encode()).hexdigest()


def draw_sample(ids: Sequence[str], n: int | None, seed: int) -> list[str]:
    """``n`` of ``ids`` (all when None), the same ones for the same seed whatever their order."""
    ranked = sorted(ids, key=lambda i: _rank(seed, i))
    return ranked if n is None else ranked[:n]


def judged_pairs(folder: RunFolder) -> dict[str, ScoredPair]:
    """Every judged pair of the run, once, by id."""
    seen: dict[str, ScoredPair] = {}
    for pair in folder.records(ScoredPair):
        seen.setdefault(pair.id, pair)
    if not seen:
        raise ConfigError(f"{folder.path}: no judged pairs ({ScoredPair.FILE} is missing or "
                          "empty); mlift judge re-scores the pairs of an `mlift run` folder")
    return seen


@dataclass(frozen=True, slots=True)
class Plan:
    """What to judge: the models, the judge prompt, the sample, and what is left to do."""

    models: Models
    judge_prompt: str
    sample: list[ScoredPair]
    todo: list[ScoredPair]
    min_score: int


def plan(options: JudgeOptions, library: PromptLibrary) -> Plan:
    folder = RunFolder.load(options.run_dir, expect="run")
    base = models_of(folder)
    models = Models(translator=base.translator, generator=base.generator, judge=options.judge)
    config = folder.summary().get("config", {})
    prompt = (options.judge_prompt or folder.identity.get("params", {}).get("judge_prompt")
              or config.get("judge_prompt") or "judge/fit")
    ref = library.get(prompt).ref
    pairs = judged_pairs(folder)
    chosen = [pairs[i] for i in draw_sample(list(pairs), options.sample, options.seed)]
    done = {s.id for s in store.read(options.run_dir, JudgeScore)
            if s.judge == options.judge and s.prompt == ref and s.score is not None}
    min_score = config.get("min_score")
    return Plan(models, prompt, chosen, [p for p in chosen if p.id not in done],
                min_score if isinstance(min_score, int) else 4)


async def judge_pair(stages: Stages, pair: ScoredPair, judge: str) -> JudgeScore:
    """One pair judged as the run judged it: the English context put back, then the judge."""
    lang, trace = get_language(pair.lang or ""), Trace()
    try:
        instruction = pair.instruction_en
        context = pair.context_text
        if context is not None:
            context_en = await stages.to_english(pair.id, context, lang, trace,
                                                 stage="to_en_context")
            instruction = instruction.replace(CONTEXT_PLACEHOLDER, context_en)
        verdict = await stages.judge(pair.id, instruction, pair.response_en or pair.response,
                                     trace)
        score, reason, code = verdict.score, verdict.reason, None
    except StageReject as r:
        score, reason, code = None, r.detail, f"{r.stage}:{r.code}"
    return JudgeScore(id=pair.id, judge=judge, prompt=stages.judge_prompt.ref, at=store.now(),
                      score=score, reason=reason, code=code, lang=pair.lang, task=pair.task,
                      usage=trace.usage)


async def judge_sample(options: JudgeOptions, job: Plan, engine: Engine,
                       library: PromptLibrary) -> JudgeReport:
    """Judge every pair of ``job.todo`` and append each verdict as it arrives.

    An invocation of the run folder like any other (:class:`~mlift.runfolder.Run`):
    its spend goes into the folder's ledger and ``run.json`` totals, and
    ``--max-cost`` caps what judging with this judge has spent on the folder.
    """
    stages = Stages(engine, library, job.models, judge_prompt=job.judge_prompt)
    report = JudgeReport(sampled=len(job.sample), already=len(job.sample) - len(job.todo))

    async def work(pair: ScoredPair) -> tuple[JudgeScore]:
        return (await judge_pair(stages, pair, options.judge),)

    def count(verdict: RecordBase) -> None:
        assert isinstance(verdict, JudgeScore)
        if verdict.score is None:
            report.failed += 1
            key = verdict.code or "unknown"
            report.failures[key] = report.failures.get(key, 0) + 1
        else:
            report.scored += 1

    folder = await asyncio.to_thread(RunFolder.load, options.run_dir, expect="run")
    previous = await asyncio.to_thread(folder.summary)
    await asyncio.to_thread(repair_torn_tail, folder.file(JudgeScore))
    async with Run(folder, engine, files=(JudgeScore,), command=f"judge {options.judge}") as run:
        try:
            await run.each(job.todo, work, workers=options.workers, on_emit=count)
        finally:
            report.stopped = run.stopped
            report.cost_usd, report.total_cost_usd = run.cost()
            await run.summary(**{k: v for k, v in previous.items() if k not in (
                "accounting", "this_invocation", "invocations", "stopped_early",
                "finished_at", "elapsed_s", "last_command")})
    return report


@dataclass(frozen=True, slots=True)
class Estimate:
    pairs: int
    stages: dict[str, dict[str, Any]]
    cost: Range


async def estimate_judging(job: Plan, library: PromptLibrary, resolve: Resolver,
                           cache: ResponseCache | None) -> Estimate:
    """Requests, tokens and dollars of judging ``job.todo``, booked as ``mlift estimate`` books:
    :func:`judge_pair` itself, on the estimator's dry-run engine."""
    engine = DryRunEngine(resolve, library, cache)
    stages = Stages(engine, library, job.models, judge_prompt=job.judge_prompt)
    for pair in job.todo:
        record = Record(pair.id, pair.lang, pair.response, pair.context)
        async with engine.item(record) as take:
            await take(functools.partial(judge_pair, stages, pair, job.models.judge))
    ledger = engine.ledger
    figures, total = stage_figures(ledger, sample(prior_factors(job.min_score), ledger.units),
                                   engine.prices)
    return Estimate(len(job.todo), {name: {
        "requests": f.requests, "cached": f.cached, "input_tokens": f.input_tokens,
        "output_tokens": f.output_tokens, "cost_usd": f.cost_usd}
        for name, f in figures.items()}, total)


def format_estimate(est: Estimate, judge: str) -> str:
    lines = [f"mlift judge: estimate for {est.pairs} pairs with {judge}:"]
    for name, s in est.stages.items():
        c = s["cost_usd"]
        lines.append(f"  {name:<14} {s['requests'].expected:>7,.0f} requests "
                     f"({s['cached']} cached)  {s['input_tokens'].expected:>10,.0f} in  "
                     f"{s['output_tokens'].expected:>8,.0f} out  "
                     f"${c.expected:.4f} [{c.low:.4f}–{c.high:.4f}]")
    lines.append(f"  total ${est.cost.expected:.4f} [{est.cost.low:.4f}–{est.cost.high:.4f}]"
                 " (answer lengths are priors)")
    return "\n".join(lines)
