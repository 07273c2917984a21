#!/usr/bin/env python3
"""Measure mlift against the real llama-server, for the real-server table of RESULTS.md.

Needs the server from ``scripts/real_server.py start`` (or ``$MLIFT_REAL_URL``)
and mlift's virtualenv::

    .venv/bin/python scripts/real_server.py start
    .venv/bin/python scripts/real_measure.py --per-lang 5 --out /tmp/real-measure

Four setups, each with ``concurrency = 2`` (the server's slots, so a
request's latency is its own work, not a queue):

1. ``mlift run`` on the first N records of each bundled sample language with
   the real model as generator and judge (translator: the simulator), the
   judge parsing free text;
2. the same with the judge's schema enforced (``structured_outputs = true``);
3. ``mlift run`` with the real model in every role, on fewer records;
4. the judge alone on the human-written pairs of samples/english_ift.jsonl,
   with and without the schema (coherent input, unlike the simulator's
   pseudo-translations).

Prints one markdown table per setup: per stage, requests, judge answers that
did not parse, rejects by reason, output tokens per second of request time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ("hi", "te", "ja", "es")
PROFILES = """
[providers.llama]
kind = "openai"
base_url = "{url}/v1"
concurrency = 2
context_tokens = 4096
prices = {{ input = 0.0, output = 0.0 }}

[providers.llama-json]
kind = "openai"
base_url = "{url}/v1"
concurrency = 2
context_tokens = 4096
prices = {{ input = 0.0, output = 0.0 }}
structured_outputs = true
"""


def server_url() -> str:
    if os.environ.get("MLIFT_REAL_URL"):
        return os.environ["MLIFT_REAL_URL"].rstrip("/")
    done = subprocess.run([sys.executable, str(ROOT / "scripts/real_server.py"), "url"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"real_measure: no server: {done.stderr.strip()}")
    return done.stdout.strip()


def subset(out: Path, per_lang: int) -> list[Path]:
    files = []
    for lang in SAMPLES:
        lines = (ROOT / "samples" / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
        path = out / "inputs" / f"{lang}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines[:per_lang]) + "\n", encoding="utf-8")
        files.append(path)
    return files


def engine(config: Path) -> Any:
    from mlift.config import load_config, resolve_endpoint
    from mlift.engine.accounting import Accounting
    from mlift.engine.core import Engine

    loaded = load_config(config)
    return Engine(lambda spec: resolve_endpoint(spec, loaded, env={}), accounting=Accounting())


async def pipeline(config: Path, files: list[Path], out: Path, translator: str,
                   generator: str, judge: str) -> dict[str, Any]:
    from mlift.pipeline.runner import Pipeline, RunOptions
    from mlift.pipeline.stages import Models
    from mlift.prompts import load_prompts

    options = RunOptions(inputs=tuple(files), out_dir=out, workers=4,
                         models=Models(translator, generator, judge))
    started = time.monotonic()
    async with engine(config) as eng:
        report = await Pipeline(options, eng, load_prompts(None)).run()
        snapshot = eng.accounting.snapshot()
    rejects = [json.loads(line) for line in
               (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    funnel = {**report.funnel, "judge_structured":
              report.funnel["judge_structured_output"]["through_an_enforced_schema"]}
    return {"wall_s": time.monotonic() - started, "funnel": funnel,
            "stages": snapshot["stages"], "rejects": rejects}


async def judge_only(config: Path, target: str, n: int) -> dict[str, Any]:
    from mlift.pipeline.stages import Models, StageReject, Stages, Trace
    from mlift.prompts import load_prompts

    pairs = [json.loads(line) for line in (ROOT / "samples" / "english_ift.jsonl")
             .read_text(encoding="utf-8").splitlines()][:n]
    rejects: list[dict[str, Any]] = []
    started = time.monotonic()
    async with engine(config) as eng:
        stages = Stages(eng, load_prompts(None), Models(target, target, target))
        slots = asyncio.Semaphore(2)

        async def one(pair: dict[str, str]) -> None:
            async with slots:
                try:
                    await stages.judge(pair["id"], pair["instruction"], pair["output"], Trace())
                except StageReject as r:
                    rejects.append({"stage": r.stage, "code": r.code, "raw": r.raw})

        await asyncio.gather(*(one(p) for p in pairs))
        snapshot = eng.accounting.snapshot()
    funnel = {"input": len(pairs), "rejected": len(rejects), "balanced": True,
              "judge_parse_failures": stages.judge_parse_failures,
              "judge_reasks": stages.judge_reasks}
    funnel["judge_structured"] = stages.judge_structured
    return {"wall_s": time.monotonic() - started, "funnel": funnel,
            "stages": snapshot["stages"], "rejects": rejects}


def table(title: str, result: dict[str, Any]) -> str:
    funnel, rows = result["funnel"], []
    reasons: dict[str, Counter[str]] = {}
    for reject in result["rejects"]:
        reasons.setdefault(reject["stage"], Counter())[reject["code"]] += 1
    for stage, cell in result["stages"].items():
        latency = cell["latency_s"]
        busy = (latency["mean"] or 0.0) * latency["count"]
        rate = cell["output_tokens"] / busy if busy else 0.0
        parse = (f"{funnel['judge_parse_failures']} of {cell['requests']} "
                 f"({funnel['judge_structured']} verdicts through the schema)"
                 if stage == "judge" else "")
        why = ", ".join(f"{code} {n}" for code, n in reasons.get(stage, Counter()).most_common())
        rows.append(f"| {stage} | {cell['requests']} | {parse} | {why or '—'} | "
                    f"{cell['output_tokens']} | {rate:.1f} | {latency['mean'] or 0:.1f} s |")
    kept = funnel.get("kept", "—")
    head = (f"**{title}** — {funnel['input']} items: kept {kept}, below threshold "
            f"{funnel.get('below_threshold', '—')}, rejected {funnel['rejected']}, balanced "
            f"{funnel['balanced']}; wall {result['wall_s']:.0f} s\n\n"
            "| stage | requests | judge answers not parsed | rejects by reason | output tokens "
            "| output tokens/s per request | mean latency |\n| --- | --- | --- | --- | --- | --- "
            "| --- |\n")
    return head + "\n".join(rows) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-lang", type=int, default=5, help="records per sample language")
    parser.add_argument("--every-role-per-lang", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=30, help="english_ift pairs judged alone")
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "mlift.toml"
    config.write_text(PROFILES.format(url=server_url()), encoding="utf-8")
    files = subset(args.out, args.per_lang)
    # The judge alone first: it says most about parse failures per minute spent.
    setups: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "judge on english_ift, text": lambda: judge_only(config, "llama:smollm2", args.pairs),
        "judge on english_ift, structured":
            lambda: judge_only(config, "llama-json:smollm2", args.pairs),
        "text judge": lambda: pipeline(config, files, args.out / "text", "sim:default",
                                       "llama:smollm2", "llama:smollm2"),
        "structured judge": lambda: pipeline(config, files, args.out / "structured",
                                             "sim:default", "llama:smollm2",
                                             "llama-json:smollm2"),
        "every role": lambda: pipeline(config, subset(args.out / "few",
                                                      args.every_role_per_lang),
                                       args.out / "every", "llama:smollm2", "llama:smollm2",
                                       "llama:smollm2"),
    }
    results: dict[str, Any] = {}
    for title, run in setups.items():
        results[title] = await run()
        (args.out / "results.json").write_text(
            json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        print(table(title, results[title]), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
