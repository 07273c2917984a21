"""``mlift run INPUT [INPUT …] --out DIR``: build an instruction dataset from natural text."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from mlift.cli.batches import add_batch_args, batch_from_args, warn_open_batches
from mlift.cli.common import (
    EngineFactory,
    Progress,
    add_engine_args,
    add_folder_args,
    print_summary,
)
from mlift.errors import ConfigError
from mlift.langs import get_language
from mlift.pipeline.runner import Pipeline, RunOptions
from mlift.pipeline.select import SelectConfig
from mlift.pipeline.sources import read_records
from mlift.pipeline.stages import Models
from mlift.prompts import load_prompts

DEFAULT_PROVIDER = "sim:default"
PIPELINE_STAGES = ("to_en", "to_en_context", "instruct", "judge", "back")

EPILOG = """\
examples:
  mlift run samples/hi.jsonl samples/te.jsonl --out runs/demo            # the simulator
  mlift run corpus.txt --lang te --out runs/te --provider openai:gpt-4o-mini
  mlift run news.jsonl --out runs/x --translator openai:gpt-4o-mini \\
      --generator openai:gpt-4.1 --judge anthropic:claude-3-5-haiku-latest

Re-run the same command after an interruption to finish the job: finished
items are skipped and cached calls cost nothing.
"""


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """Input, model and selection flags shared by ``run`` and ``estimate``."""
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="JSONL, plain text (.txt), CSV/TSV or Parquet files")
    i = p.add_argument_group("input")
    i.add_argument("--lang", help="language of records without a language field (e.g. hi, te)")
    i.add_argument("--format", dest="fmt", choices=["jsonl", "txt", "csv", "tsv", "parquet"],
                   help="input format (default: by file extension)")
    i.add_argument("--text-field", default="text", help="field holding the text (default text)")
    i.add_argument("--id-field", default="id", help="field holding a record id (default id)")
    i.add_argument("--lang-field", default="lang", help="field holding the language")
    i.add_argument("--context-field", action="append", default=[], dest="context_fields",
                   metavar="FIELD", help="field(s) forming the context the text answers, e.g. "
                   "--text-field summary --context-field article (repeatable)")
    i.add_argument("--txt-mode", choices=["line", "block"], default="line",
                   help="plain text: one document per line, or per blank-line block")
    m = p.add_argument_group("models and prompts")
    m.add_argument("--provider", metavar="NAME:MODEL",
                   help=f"one model for every stage (default {DEFAULT_PROVIDER}, the simulator)")
    m.add_argument("--translator", metavar="NAME:MODEL", help="model for both translations")
    m.add_argument("--generator", metavar="NAME:MODEL", help="model writing the instructions")
    m.add_argument("--judge", metavar="NAME:MODEL", help="model scoring the pairs")
    m.add_argument("--judge-prompt", default="judge/fit",
                   help="judge prompt id: judge/fit (JSON, reason first), judge/fit_score_first "
                        "(JSON, score first: for small local models) or judge/fit_line "
                        "(text ending in 'Score: n')")
    m.add_argument("--prompts", action="append", type=Path, default=[], metavar="DIR",
                   help="extra prompt folder (adds to or overrides the bundled pool)")
    m.add_argument("--tasks", help="comma-separated instruct tasks to draw from (default all)")
    m.add_argument("--seed", type=int, default=0, help="seed of the per-item prompt draw")
    m.add_argument("--min-score", type=int, default=4, choices=range(1, 6), metavar="K",
                   help="keep pairs the judge scored at least K (1-5, default 4)")
    s = p.add_argument_group("selection")
    s.add_argument("--min-chars", type=int, help="shortest response kept (default per language)")
    s.add_argument("--max-chars", type=int, help="longest response kept (default per language)")
    s.add_argument("--no-dedup", action="store_true", help="keep exact and near duplicates")
    s.add_argument("--no-lang-id", action="store_true", help="skip the language-ID check")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="build an instruction dataset from natural text",
                       description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="run folder: dataset.jsonl, scored.jsonl, rejects.jsonl, run.json")
    add_pipeline_args(p)
    add_folder_args(p)
    add_engine_args(p)
    add_batch_args(p, PIPELINE_STAGES)
    p.set_defaults(handler=handle)


def _spec(value: str) -> str:
    return value if ":" in value else f"{value}:default"


def models_from_args(args: argparse.Namespace) -> Models:
    base = _spec(args.provider) if args.provider else DEFAULT_PROVIDER
    return Models(translator=_spec(args.translator) if args.translator else base,
                  generator=_spec(args.generator) if args.generator else base,
                  judge=_spec(args.judge) if args.judge else base)


def options_from_args(args: argparse.Namespace, out_dir: Path) -> RunOptions:
    for path in args.inputs:
        if not path.is_file():
            raise ConfigError(f"input file {path} does not exist")
    if args.lang:
        get_language(args.lang)
    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip()) if args.tasks else None
    select = SelectConfig(min_chars=args.min_chars, max_chars=args.max_chars,
                          dedup=not args.no_dedup, near_dup=not args.no_dedup,
                          lang_id=not args.no_lang_id)
    return RunOptions(inputs=tuple(args.inputs), out_dir=out_dir, models=models_from_args(args),
                      lang=args.lang, fmt=args.fmt, text_field=args.text_field,
                      id_field=args.id_field, lang_field=args.lang_field,
                      context_fields=tuple(args.context_fields), txt_mode=args.txt_mode,
                      judge_prompt=args.judge_prompt, tasks=tasks, min_score=args.min_score,
                      seed=args.seed, select=select, workers=args.concurrency or 64,
                      new_generation=getattr(args, "new_generation", False))


def check_inputs(options: RunOptions) -> None:
    """Problems with a whole input file (missing, unknown format, no language) fail now."""
    for path in options.inputs:
        read_records(path, fmt=options.fmt, text_field=options.text_field,
                     id_field=options.id_field, lang_field=options.lang_field,
                     context_fields=options.context_fields, default_lang=options.lang,
                     txt_mode=options.txt_mode)


def count_records(options: RunOptions) -> int | None:
    """Input records, for the ETA: the lines of line-based files, else unknown.

    Counted in 1 MiB blocks, so one enormous line is never held whole.
    """
    if options.fmt not in (None, "jsonl") or options.txt_mode == "block":
        return None
    total = 0
    for path in options.inputs:
        if path.suffix not in (".jsonl", ".ndjson", ".txt"):
            return None
        with path.open("rb") as fh:
            last = b"\n"
            while block := fh.read(1 << 20):
                total += block.count(b"\n")
                last = block[-1:]
            total += last != b"\n"  # a last line without its newline
    return total


def handle(args: argparse.Namespace) -> int:
    options = options_from_args(args, args.out)
    check_inputs(options)
    library = load_prompts(args.prompts or None)
    # Fail before the first request: prompts, tasks and every stage's endpoint and price.
    library.get(options.judge_prompt)
    if options.tasks:
        library.pool("instruct", options.tasks)
    if args.batch is None:
        warn_open_batches(options.out_dir, "run")
    factory = EngineFactory.from_args(args)
    return asyncio.run(_run(args, factory, options, library))


async def _run(args: argparse.Namespace, factory: EngineFactory, options: RunOptions,
               library: object) -> int:
    async with factory.engine() as engine:
        m = options.models
        await engine.prepare(*sorted({m.translator, m.generator, m.judge}))
        batch = batch_from_args(args, engine, PIPELINE_STAGES, [
            ("to_en", m.translator), ("to_en_context", m.translator),
            ("instruct", m.generator), ("judge", m.judge), ("back", m.translator)])
        if not args.provider and not (args.translator or args.generator or args.judge):
            print(f"mlift run: no --provider given: using the built-in simulator "
                  f"({DEFAULT_PROVIDER}); its answers are marked [sim]", file=sys.stderr)
        pipeline = Pipeline(options, engine, library, batch=batch)  # type: ignore[arg-type]
        await pipeline.prepare()  # a folder made otherwise is refused before any output
        report = pipeline.report

        total = await asyncio.to_thread(count_records, options)

        def counts() -> tuple[int | None, int | None]:
            return pipeline.report.skipped_done + pipeline.emitted, total

        async with Progress(engine, quiet=args.quiet, counts=counts,
                            extra=batch.progress if batch else None):
            report = await pipeline.run()
    print_summary("run", report, options.out_dir, args.max_cost)
    if report.stopped:
        print(f"mlift run: stopped early: {report.stopped}", file=sys.stderr)
        return 4
    return report.exit_code
