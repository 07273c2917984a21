"""A reject caused by what a model answered keeps that answer, bounded, for the user to see."""

from __future__ import annotations

import json
from pathlib import Path

from mlift.config import load_config, resolve_endpoint
from mlift.engine.accounting import Accounting
from mlift.engine.core import Engine
from mlift.pipeline.runner import Pipeline, RunOptions
from mlift.pipeline.stages import Models
from mlift.prompts import load_prompts
from mlift.providers.base import Endpoint, Provider
from mlift.providers.sim import SimProvider
from mlift.records import RAW_LIMIT, Reject
from mlift.sim import SimConfig

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def test_a_long_answer_is_kept_up_to_the_limit() -> None:
    kept = Reject.bounded("x" * (3 * RAW_LIMIT))
    assert kept is not None and kept.startswith("x" * RAW_LIMIT)
    assert f"{2 * RAW_LIMIT} more characters" in kept
    assert Reject.bounded(None) is None


async def test_every_judge_reject_carries_the_judges_last_answer(tmp_path: Path) -> None:
    inputs = tmp_path / "es.jsonl"
    lines = (SAMPLES / "es.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    inputs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config(None, env={})

    def factory(endpoint: Endpoint) -> Provider:
        # A judge that never gives a verdict, however often it is asked.
        return SimProvider(endpoint, sim_config=SimConfig(bad_verdict_rate=1.0))

    engine = Engine(lambda spec: resolve_endpoint(spec, config, env={}),
                    accounting=Accounting(), provider_factory=factory)
    options = RunOptions(inputs=(inputs,), out_dir=tmp_path / "run",
                         models=Models("sim:default", "sim:default", "sim:default"),
                         judge_prompt="judge/fit_line")  # text verdicts: no schema to enforce
    async with engine:
        report = await Pipeline(options, engine, load_prompts(None)).run()
    assert report.balanced and report.rejected == report.inputs == 6
    rejects = [json.loads(line) for line in
               (tmp_path / "run" / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(r["stage"], r["code"]) for r in rejects} == {("judge", "judge_unparsed")}
    # Every answer of the judge (the first and both re-asks), in order.
    for r in rejects:
        answers = r["raw"].split("\n---\n")
        assert len(answers) == 3
        assert all(a.startswith("[sim] I find this pair hard to assess") for a in answers)
