"""``mlift baseline translate|template``: the two baselines the method is compared against.

translate  machine-translate an English IFT dataset (instruction and response) into L
template   fill instruction templates written in L with the fields of an NLP dataset

Both write a run folder like ``mlift run`` (dataset.jsonl, rejects.jsonl,
run.json) and resume when re-run with the same command.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from mlift.baselines.template import TASKS, TemplateOptions, run_template_baseline
from mlift.baselines.translate import (
    PRESETS,
    IftFields,
    TranslateBaseline,
    TranslateOptions,
    target_language,
)
from mlift.cli.batches import add_batch_args, batch_from_args, warn_open_batches
from mlift.cli.common import (
    EngineFactory,
    Progress,
    add_engine_args,
    add_folder_args,
    print_summary,
)
from mlift.errors import ConfigError
from mlift.prompts import PromptLibrary, load_prompts

DEFAULT_PROVIDER = "sim:default"
TRANSLATE_STAGES = ("translate_instruction", "translate_response")

TRANSLATE_EPILOG = """\
examples:
  mlift baseline translate samples/english_ift.jsonl --lang hi --out runs/hi-mt
  mlift baseline translate alpaca_data.jsonl --lang ja --out runs/ja-mt \\
      --translator openai:gpt-4o-mini --max-cost 5
  mlift baseline translate dolly.jsonl --preset dolly --lang es --out runs/es-mt

The instruction (with its input, if any) is translated with the prompt
translate/back, the response with translate/ift. Re-run the same command
after an interruption: finished items are skipped, cached calls are free.
"""

TEMPLATE_EPILOG = """\
examples:
  mlift baseline template samples/nlp/summarization/hi.jsonl --lang hi \\
      --task summarization --out runs/hi-tpl
  mlift baseline template samples/nlp/qa/te.jsonl --lang te --task qa --out runs/te-qa
  mlift baseline template xlsum_ja.jsonl --lang ja --task summarization \\
      --field article=text --out runs/ja-xlsum

Fields per task (rename with --field VAR=FIELD):
  summarization  article -> summary
  qa             context + question -> answer
  title          article -> title
No model calls: each record draws one template from (--seed, its id).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("baseline", help="build the translation or template baseline dataset",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = p.add_subparsers(dest="baseline", metavar="KIND", required=True)
    _register_translate(kinds)
    _register_template(kinds)


def _register_translate(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = kinds.add_parser("translate", help="translate an English IFT dataset into a language",
                         description="Translate an English instruction dataset (Alpaca/Dolly-"
                         "style JSONL) into --lang, instruction and response, through the "
                         "engine.", epilog=TRANSLATE_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("inputs", nargs="+", type=Path, metavar="IN",
                   help="English IFT records (JSONL; CSV/TSV/Parquet work too)")
    t.add_argument("--lang", required=True, help="target language (e.g. hi, te, ja, es)")
    t.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="run folder: dataset.jsonl, rejects.jsonl, run.json")
    f = t.add_argument_group("input fields")
    f.add_argument("--preset", choices=sorted(PRESETS), default="alpaca",
                   help="field layout: alpaca = instruction, input, output; dolly = "
                   "instruction, context, response (default alpaca)")
    f.add_argument("--instruction-field", help="field holding the instruction")
    f.add_argument("--input-field", help="optional field appended to the instruction")
    f.add_argument("--response-field", help="field holding the response")
    f.add_argument("--id-field", default="id", help="field holding a record id (default id)")
    f.add_argument("--format", dest="fmt", choices=["jsonl", "csv", "tsv", "parquet"],
                   help="input format (default: by file extension)")
    m = t.add_argument_group("model")
    m.add_argument("--provider", "--translator", dest="translator", metavar="NAME:MODEL",
                   help=f"translation model (default {DEFAULT_PROVIDER}, the simulator)")
    m.add_argument("--no-lang-id", action="store_true",
                   help="skip the language-ID check on Latin-script targets")
    add_folder_args(t)
    add_engine_args(t)
    add_batch_args(t, TRANSLATE_STAGES)
    t.set_defaults(handler=handle_translate)


def _register_template(kinds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = kinds.add_parser("template", help="fill instruction templates with NLP-dataset fields",
                         description="Fill instruction templates written in --lang with the "
                         "fields of an NLP dataset; no model calls.", epilog=TEMPLATE_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("inputs", nargs="+", type=Path, metavar="IN",
                   help="NLP dataset records (JSONL; CSV/TSV/Parquet work too)")
    t.add_argument("--lang", required=True, help="language of the records and templates")
    t.add_argument("--task", required=True, choices=sorted(TASKS), help="task kind")
    t.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="run folder: dataset.jsonl, rejects.jsonl, run.json")
    t.add_argument("--seed", type=int, default=0, help="seed of the per-item template draw")
    t.add_argument("--field", action="append", default=[], metavar="VAR=FIELD",
                   help="read template variable VAR from input field FIELD (repeatable)")
    t.add_argument("--id-field", default="id", help="field holding a record id (default id)")
    t.add_argument("--lang-field", default="lang", help="field holding the language")
    t.add_argument("--format", dest="fmt", choices=["jsonl", "csv", "tsv", "parquet"],
                   help="input format (default: by file extension)")
    t.add_argument("--templates", action="append", type=Path, default=[], metavar="DIR",
                   help="extra template folder (<task>/<lang>/vN.toml), adds to the bundled")
    add_folder_args(t)
    t.set_defaults(handler=handle_template)


# ------------------------------------------------------------------ translate

def _fields(args: argparse.Namespace) -> IftFields:
    base = PRESETS[args.preset]
    return IftFields(instruction=args.instruction_field or base.instruction,
                     input=args.input_field or base.input,
                     response=args.response_field or base.response, id=args.id_field)


def _check_inputs(paths: list[Path]) -> None:
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"input file {path} does not exist")


def handle_translate(args: argparse.Namespace) -> int:
    _check_inputs(args.inputs)
    lang = target_language(args.lang)
    spec = args.translator or DEFAULT_PROVIDER
    options = TranslateOptions(inputs=tuple(args.inputs), out_dir=args.out, lang=lang.code,
                               translator=spec if ":" in spec else f"{spec}:default",
                               fields=_fields(args), fmt=args.fmt,
                               lang_id=not args.no_lang_id, workers=args.concurrency or 64,
                               new_generation=args.new_generation)
    library = load_prompts()
    if args.batch is None:
        warn_open_batches(options.out_dir, "baseline translate")
    return asyncio.run(_translate(args, EngineFactory.from_args(args), options, library))


async def _translate(args: argparse.Namespace, factory: EngineFactory,
                     options: TranslateOptions, library: PromptLibrary) -> int:
    async with factory.engine() as engine:
        await engine.prepare(options.translator)  # an unknown provider or price fails here
        if not args.translator:
            print(f"mlift baseline translate: no --translator given: using the built-in "
                  f"simulator ({DEFAULT_PROVIDER}); its answers are marked [sim]",
                  file=sys.stderr)
        batch = batch_from_args(args, engine, TRANSLATE_STAGES,
                                [(stage, options.translator) for stage in TRANSLATE_STAGES])
        baseline = TranslateBaseline(options, engine, library, batch=batch)

        def counts() -> tuple[int | None, int | None]:
            return baseline.report.skipped_done + baseline.emitted, None

        async with Progress(engine, quiet=args.quiet, counts=counts,
                            extra=batch.progress if batch else None):
            report = await baseline.run()
    print_summary("baseline translate", report, options.out_dir, args.max_cost)
    if report.stopped:
        print(f"mlift baseline translate: stopped early: {report.stopped}", file=sys.stderr)
        return 4
    return report.exit_code


# ------------------------------------------------------------------- template

def _field_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        var, sep, name = pair.partition("=")
        if not sep or not var.strip() or not name.strip():
            raise ConfigError(f"--field {pair!r}: expected VAR=FIELD, e.g. article=text")
        out[var.strip()] = name.strip()
    return out


def handle_template(args: argparse.Namespace) -> int:
    _check_inputs(args.inputs)
    options = TemplateOptions(inputs=tuple(args.inputs), out_dir=args.out, lang=args.lang,
                              task=args.task, seed=args.seed, fields=_field_map(args.field),
                              id_field=args.id_field, lang_field=args.lang_field,
                              fmt=args.fmt, template_dirs=tuple(args.templates),
                              new_generation=args.new_generation)
    report = asyncio.run(run_template_baseline(options))
    print_summary("baseline template", report, options.out_dir)
    return report.exit_code
