"""``mlift eval TASK --model [LABEL=]NAME:MODEL … --lang L … --out DIR``: benchmark endpoints.

Tasks: xlsum (ROUGE-1/2/L), flores (chrF++ and spBLEU, en→L and L→en), mmlu
(accuracy, zero- or few-shot). Every request goes through the engine (limits,
retries, cache, --max-cost); the cost is estimated before anything is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from mlift.cli.common import EngineFactory, Progress, add_engine_args, add_folder_args, cost_line
from mlift.errors import ConfigError
from mlift.eval.base import TASKS, Loaded, Task, check_found, get_task
from mlift.eval.data import Rows, read_file, read_hub
from mlift.eval.estimate import estimate, format_estimate
from mlift.eval.runner import EvalRun, ModelRef, limit_items, prompt_names
from mlift.eval.store import (
    SUMMARY,
    EvalAnswer,
    EvalFailure,
    answers,
    done_keys,
    is_eval_folder,
    labels,
    load_folder,
    open_failures,
    open_folder,
    write_invalid,
    write_summary,
)
from mlift.eval.summary import summarize
from mlift.langs import get_language
from mlift.prompts import load_prompts
from mlift.runfolder import Run, RunFolder, fingerprints

EPILOG = """\
examples:
  mlift eval mmlu --model sim:default --lang hi te ja --data samples/eval/mmlu.jsonl \\
      --out runs/eval-mmlu
  mlift eval xlsum --model mlift=local:ft-mlift --model mt=local:ft-translated \\
      --lang hi ja --hub --limit 500 --out runs/xlsum --max-cost 5
  mlift eval flores --model local:qwen2.5-7b --lang hi te --hub --spm-model spm200.model \\
      --out runs/flores

Data: --data [LANG=]FILE (JSONL or Parquet in the public dataset's fields; see
README) or --hub [DATASET] (default: csebuetnlp/xlsum, openlanguagedata/flores_plus,
CohereLabs/Global-MMLU). Two or more --model: each later one is compared with
the first (paired bootstrap). Re-run the same command to resume; answers
already paid for come from the cache.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", help="score endpoints on XL-Sum, FLORES-200 and multilingual "
                       "MMLU", description=__doc__, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=TASKS, help="benchmark")
    p.add_argument("--model", action="append", required=True, metavar="[LABEL=]NAME:MODEL",
                   help="endpoint to evaluate (repeat to compare; the first is the baseline)")
    p.add_argument("--lang", nargs="+", required=True, metavar="L", help="languages")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="eval run folder")
    p.add_argument("--limit", type=int, metavar="N",
                   help="the first N items per language (per direction for flores)")
    d = p.add_argument_group("data")
    d.add_argument("--data", action="append", default=[], metavar="[LANG=]FILE",
                   help="local JSONL or Parquet (repeatable); LANG= for files without a "
                        "lang field")
    d.add_argument("--hub", nargs="?", const="", metavar="DATASET",
                   help="load from the Hugging Face hub (default dataset per task; needs "
                        "'mlift[export]' and a network)")
    d.add_argument("--split", help="hub split (default: test; devtest for flores)")
    d.add_argument("--revision", help="hub revision (a commit, tag or branch) to pin")
    t = p.add_argument_group("task options")
    t.add_argument("--spm-model", type=Path, metavar="FILE",
                   help="flores: the FLORES-200 SentencePiece model for spBLEU")
    t.add_argument("--metrics", nargs="+", metavar="M", help="flores: chrf++ and/or spbleu")
    t.add_argument("--direction", choices=["both", "to", "from"], default="both",
                   help="flores: en→L (to), L→en (from) or both (default)")
    t.add_argument("--shots", type=int, default=0, help="mmlu: solved examples before each "
                   "question (default 0, zero-shot)")
    t.add_argument("--shots-data", action="append", default=[], metavar="[LANG=]FILE",
                   help="mmlu: dev rows to draw the examples from (default: the hub's dev "
                        "split with --hub, else other test questions)")
    s = p.add_argument_group("statistics")
    s.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    s.add_argument("--estimate", action="store_true",
                   help="print what the run would cost and send nothing")
    add_folder_args(p)
    add_engine_args(p)
    p.set_defaults(handler=handle)


def parse_models(values: list[str]) -> list[ModelRef]:
    out: list[ModelRef] = []
    for value in values:
        label, sep, spec = value.partition("=")
        if not sep:
            label, spec = value, value
        label, spec = label.strip(), spec.strip()
        if ":" not in spec or not label:
            raise ConfigError(f"--model {value!r}: expected [LABEL=]NAME:MODEL, "
                              "e.g. mlift=local:qwen2.5-7b or sim:default")
        if any(m.label == label for m in out):
            raise ConfigError(f"--model: label {label!r} given twice; label them "
                              "LABEL=NAME:MODEL")
        out.append(ModelRef(label, spec))
    return out


def _file_arg(value: str) -> tuple[str | None, Path]:
    lang, sep, path = value.partition("=")
    if sep and lang and "/" not in lang and "." not in lang:
        return get_language(lang).code, Path(path)
    return None, Path(value)


def _sources(args: argparse.Namespace, task: Task, langs: list[str]) -> list[Rows]:
    if args.data and args.hub is not None:
        raise ConfigError("give --data or --hub, not both")
    if args.data:
        return [read_file(path, lang) for lang, path in map(_file_arg, args.data)]
    if args.hub is None:
        raise ConfigError(f"no data: give --data FILE (e.g. samples/eval/{task.name}.jsonl) "
                          "or --hub to load the public dataset")
    dataset = args.hub or task.hub_dataset
    split = args.split or task.hub_split
    return [read_hub(dataset, config, split, args.revision, lang)
            for config, lang in task.hub_configs(langs)]


def _task(args: argparse.Namespace) -> Task:
    options: dict[str, Any] = {}
    if args.task == "flores":
        options = {"spm_model": args.spm_model, "directions": args.direction}
        if args.metrics:
            options["metrics"] = [m.lower() for m in args.metrics]
    elif args.metrics or args.spm_model:
        raise ConfigError("--metrics and --spm-model are flores options")
    if args.task == "mmlu":
        shot_rows = [read_file(path, lang) for lang, path in map(_file_arg, args.shots_data)]
        options = {"shots": args.shots, "shot_rows": shot_rows}
    elif args.shots or args.shots_data:
        raise ConfigError("--shots and --shots-data are mmlu options")
    return get_task(args.task, **options)


def handle(args: argparse.Namespace) -> int:
    models = parse_models(args.model)
    langs = list(dict.fromkeys(get_language(code).code for code in args.lang))
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    task = _task(args)
    sources = _sources(args, task, langs)
    if args.task == "mmlu" and args.shots and not args.shots_data and args.hub is not None:
        task = get_task("mmlu", shots=args.shots, shot_rows=[
            read_hub(args.hub or task.hub_dataset, c, "dev", args.revision, lang)
            for c, lang in task.hub_configs(langs)])
    loaded = task.load(sources, langs)
    loaded.invalid[:0] = [e for s in sources for e in s.invalid]  # unreadable lines first
    check_found(task.name, loaded, langs)
    items = limit_items(loaded.items, args.limit)
    library = load_prompts()
    _report_input(loaded)
    factory = EngineFactory.from_args(args)  # config and prices read before the loop
    return asyncio.run(_run(args, factory, task, loaded, items, models, library))


def _report_input(loaded: Loaded) -> None:
    if loaded.invalid:
        print(f"mlift eval: {len(loaded.invalid)} input rows unusable (see invalid.jsonl); "
              f"first: {loaded.invalid[0]}", file=sys.stderr)
    for note in loaded.notes:
        print(f"mlift eval: note: {note}", file=sys.stderr)


async def _run(args: argparse.Namespace, factory: EngineFactory, task: Task, loaded: Loaded,
               items: list[Any], models: list[ModelRef], library: Any) -> int:
    prompts = {p: library.get(p).ref for p in prompt_names(library, items)}
    current = {m.label: m.spec for m in models}
    async with factory.engine() as engine:
        # An unknown provider or a missing price fails here; tokenizers load in a thread.
        await engine.prepare(*dict.fromkeys(m.spec for m in models))

        def open_() -> tuple[RunFolder | None, set[tuple[str, str]]]:
            if args.estimate:
                found = load_folder(args.out) if is_eval_folder(args.out) else None
            else:
                found = open_folder(args.out, _identity(args.out, task, loaded, prompts),
                                    current, new_generation=args.new_generation)
                write_invalid(found, loaded.invalid)
            return found, done_keys(answers(found)) if found is not None else set()

        folder, done = await asyncio.to_thread(open_)
        evalrun = EvalRun(task, items, models, engine, library, done,
                          workers=args.concurrency or 64)
        est = await estimate(engine, evalrun.requests(), evalrun.template)
        print(format_estimate(est, skipped_done=evalrun.report.skipped_done), file=sys.stderr)
        if folder is None:
            return 0

        def counts() -> tuple[int | None, int | None]:
            return evalrun.emitted, evalrun.report.pending

        async with Run(folder, engine, files=(EvalAnswer, EvalFailure)) as run:
            async with Progress(engine, quiet=args.quiet, counts=counts):
                report = await evalrun.execute(run)
            await run.flush()

            def summarise(folder: RunFolder) -> tuple[dict[str, Any], dict[str, str]]:
                records = answers(folder)
                known = labels(folder, records, current)
                summary = summarize(task, records, open_failures(folder, done_keys(records)),
                                    known, seed=args.seed, resamples=args.resamples)
                summary["notes"] = loaded.notes
                write_summary(folder, summary)
                return summary, known

            summary, known = await asyncio.to_thread(summarise, folder)
            await run.summary(
                task=task.name, models=known, langs=args.lang,
                data=loaded.sources, prompts=prompts, estimate=est,
                this={"answered": report.answered, "failed": report.failed,
                      "already_done": report.skipped_done, "errors": report.errors,
                      "limit": args.limit})
    from mlift.report.evals import render_eval_text

    sys.stdout.write(render_eval_text([{**summary, "name": args.out.name}]))
    spent, total = run.cost()
    print(f"mlift eval: {report.answered} answered, {report.failed} failed, "
          f"{report.skipped_done} already done; {cost_line(spent, total, args.max_cost)}; "
          f"results: {args.out / SUMMARY}", file=sys.stderr)
    if report.stopped:
        print(f"mlift eval: stopped early: {report.stopped}", file=sys.stderr)
        return 4
    if report.failed or not summary["complete"]:
        print("mlift eval: some items have no answer yet (failures.jsonl); re-run the same "
              "command to retry them", file=sys.stderr)
        return 4
    return 0


def _identity(out: Path, task: Task, loaded: Loaded, prompts: dict[str, str]
              ) -> dict[str, Any]:
    """What changes the answers: the task, its prompts and options, and the data."""
    files = [Path(s["path"]) for s in loaded.sources if s.get("kind") == "file"]
    hub = [{k: s.get(k) for k in ("role", "dataset", "config", "split", "revision")
            if s.get(k) is not None} for s in loaded.sources if s.get("kind") == "hub"]
    return {"task": task.name, "prompts": prompts,
            "params": {"shots": getattr(task, "shots", None),
                       "direction": getattr(task, "directions", None)},
            "inputs": fingerprints(files, RunFolder.known_inputs(out)), "hub": hub}
