"""Structured outputs against llama-server: the judge's schema, enforced where the server can.

llama-server turns ``response_format`` json_schema into a grammar, so on the
openai kind a profile with ``structured_outputs = true`` gets a verdict
object every time, from a 135M model that otherwise never writes one. Its
``/v1/messages`` does not force a tool (the answer comes back as text), so
the anthropic kind must say the answer was not structured and fall back to
the text parse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import main
from mlift.pipeline.verdict import parse_verdict
from mlift.prompts import load_prompts, render
from mlift.types import Request
from real.real_support import ROOT, EngineFactory, RealServer, spec

PAIRS = [json.loads(line) for line in
         (ROOT / "samples" / "english_ift.jsonl").read_text(encoding="utf-8").splitlines()[:3]]


def judge_request(target: str, pair: dict[str, str]) -> Request:
    template = load_prompts(None).get("judge/fit")
    assert template.output_schema is not None
    messages = render(template, {"instruction": pair["instruction"], "response": pair["output"]})
    return Request(target=target, messages=messages, max_tokens=int(template.params["max_tokens"]),
                   temperature=0.0, prompt=template.ref, stage="judge",
                   output_schema=template.output_schema)


@pytest.mark.parametrize("transport", ["sdk", "aiohttp"])
async def test_the_judge_schema_is_enforced_and_every_verdict_parses(
        make_engine: EngineFactory, transport: str) -> None:
    async with make_engine(transport=transport) as engine:
        for pair in PAIRS:
            done = await engine.complete(judge_request(spec("openai", structured=True), pair))
            assert done.structured
            verdict = parse_verdict(done.text)  # raises on a parse failure
            assert 1 <= verdict.score <= 5
            assert json.loads(done.text).keys() == {"reason", "score"}  # the schema, exactly


async def test_without_structured_outputs_the_same_judge_requests_are_free_text(
        make_engine: EngineFactory) -> None:
    async with make_engine() as engine:
        done = await engine.complete(judge_request(spec("openai"), PAIRS[0]))
    assert not done.structured


async def test_a_forced_tool_the_server_ignores_is_not_reported_as_structured(
        make_engine: EngineFactory) -> None:
    async with make_engine() as engine:
        done = await engine.complete(judge_request(spec("anthropic", structured=True), PAIRS[0]))
    # llama-server answered in text; whatever that text is, no schema shaped it.
    assert not done.structured


@pytest.fixture(scope="module")
def structured_run(server: RealServer, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[dict[str, Any], Path]:
    """``mlift run`` on 2 + 2 samples, the simulator writing, the real model judging."""
    out = tmp_path_factory.mktemp("structured") / "run"
    return judged_run(server, out), out


def judged_run(server: RealServer, out: Path, *flags: str) -> dict[str, Any]:
    """``run.json`` of ``mlift run`` on the first 2 es + 2 hi samples into ``out``, the
    simulator translating and writing, the real model judging through its schema."""
    files = []
    for lang in ("es", "hi"):
        lines = (ROOT / "samples" / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
        path = out.parent / f"{lang}.jsonl"
        path.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
        files.append(str(path))
    assert main(["run", *files, "--out", str(out), "--config", str(server.config_path),
                 "--translator", "sim:default", "--generator", "sim:default",
                 "--judge", spec("openai", structured=True), *flags, "--no-cache",
                 "--concurrency", "4", "-q"]) in (0, 4)
    data: dict[str, Any] = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return data


def test_a_structured_judge_writes_the_schema_or_runs_out_of_tokens_inside_it(
        structured_run: tuple[dict[str, Any], Path]) -> None:
    data, out = structured_run
    funnel = data["funnel"]
    assert funnel["balanced"] and funnel["input"] == 4
    verdicts = funnel["judge_structured_output"]
    assert verdicts["through_an_enforced_schema"] == verdicts["verdicts"]
    for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines():
        reject = json.loads(line)
        assert reject["stage"] == "judge", reject
        # The grammar holds: each answer is the verdict object, cut only by max_tokens.
        assert "max_tokens cut" in reject["detail"]
        assert all(answer.lstrip().startswith('{') for answer in reject["raw"].split("\n---\n"))


@pytest.mark.xfail(strict=True, reason=(
    "judge/fit@v2 asks for the reason before the score and cannot bound its length (the "
    "schema subset has no maxLength): SmolLM2 loops inside the reason until max_tokens, "
    "cutting the verdict before its score. Score first, 10 of 10 pairs parsed (RESULTS.md)"))
def test_a_run_with_a_structured_judge_has_no_judge_parse_failures(
        structured_run: tuple[dict[str, Any], Path]) -> None:
    data, _ = structured_run
    assert data["funnel"]["judge_parse_failures"] == 0


def test_a_structured_judge_asked_for_the_score_first_parses_every_verdict(
        server: RealServer, tmp_path: Path) -> None:
    """The shipped prompt for small models: a loop in the reason comes after the score."""
    funnel = judged_run(server, tmp_path / "run", "--judge-prompt",
                        "judge/fit_score_first")["funnel"]
    assert funnel["balanced"] and funnel["input"] == 4
    assert funnel["judge_structured_output"]["through_an_enforced_schema"] == 4
    assert funnel["judge_parse_failures"] == 0
