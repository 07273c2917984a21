"""The eval runner at library level, with a scripted provider (our Provider protocol, no SDK).

What the simulator never does on its own: fail some items, stop being usable,
cut answers at max_tokens, or answer in a format the parser must refuse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlift.engine.accounting import Accounting, Budget
from mlift.engine.core import Engine
from mlift.errors import AuthError, PermanentError
from mlift.eval.base import get_task
from mlift.eval.data import read_file
from mlift.eval.runner import EvalRun, ModelRef
from mlift.eval.store import EvalAnswer, EvalFailure, answers, done_keys, open_failures, open_folder
from mlift.eval.summary import summarize
from mlift.prompts import load_prompts
from mlift.providers.base import Endpoint, Provider
from mlift.runfolder import Run
from mlift.types import Completion, Request, Usage

DATA = Path(__file__).resolve().parent.parent / "samples" / "eval"


class Scripted:
    """Answers each MMLU question by a script keyed on the item id."""

    structured_outputs = False  # a server that enforces no schema: text prompts
    refunds_unused_tokens = False

    def __init__(self, endpoint: Endpoint, script: dict[str, str]) -> None:
        self.endpoint, self.script = endpoint, script
        self.requests: list[Request] = []

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        key = request.item_id or ""
        mode = next((m for k, m in self.script.items() if key.endswith(k)), "B")
        if mode == "fail":
            raise PermanentError("the server refused this one", provider="fake", model="m",
                                 status=400)
        if mode == "auth":
            raise AuthError("bad key", provider="fake", model="m", status=401)
        cut = mode == "cut"
        return Completion(text="The answer is" if cut else mode,
                          finish_reason="length" if cut else "stop", usage=Usage(40, 2),
                          model=self.endpoint.model)

    async def aclose(self) -> None:
        return None


def engine_with(script: dict[str, str]) -> tuple[Engine, Scripted]:
    endpoint = Endpoint(name="fake", kind="fake", model="m", input_price=1.0, output_price=2.0)
    provider = Scripted(endpoint, script)

    def factory(_ep: Endpoint) -> Provider:
        return provider

    return Engine(lambda _spec: endpoint, accounting=Accounting(), budget=Budget(None),
                  provider_factory=factory), provider


def hindi_items() -> list[Any]:
    task = get_task("mmlu")
    return task.load([read_file(DATA / "mmlu.jsonl")], ["hi"]).items


async def run_once(path: Path, script: dict[str, str]) -> tuple[Any, Scripted]:
    engine, provider = engine_with(script)
    folder = open_folder(path, {"task": "mmlu"}, {"m": "fake:m"})
    async with engine:
        evalrun = EvalRun(get_task("mmlu"), hindi_items(), [ModelRef("m", "fake:m")], engine,
                          load_prompts(), done_keys(answers(folder)), workers=2)
        async with Run(folder, engine, files=(EvalAnswer, EvalFailure)) as run:
            report = await evalrun.execute(run)
    return report, provider


def summary_of(path: Path) -> dict[str, Any]:
    folder = open_folder(path, {"task": "mmlu"}, {"m": "fake:m"})
    records = answers(folder)
    return summarize(get_task("mmlu"), records, open_failures(folder, done_keys(records)),
                     {"m": "fake:m"})


async def test_failed_items_are_recorded_kept_out_of_the_scores_and_retried(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    report, _ = await run_once(out, {"hi-1": "fail", "hi-4": "A"})
    assert (report.answered, report.failed) == (3, 1)
    assert report.errors == {"PermanentError": 1}
    failures = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["id"] for f in failures] == ["test/astronomy/hi-1"]
    assert "refused" in failures[0]["detail"]
    summary = summary_of(out)
    cell = summary["groups"][0]["models"]["m"]
    assert (cell["answered"], cell["missing"], summary["complete"]) == (3, 1, False)
    # Over the three answered: B is wrong for the capital (C), right for 7×8 (B), and
    # A is right for photosynthesis.
    assert cell["metrics"]["accuracy"]["value"] == pytest.approx(100 * 2 / 3)
    report, provider = await run_once(out, {})
    assert (report.answered, report.failed, report.skipped_done) == (1, 0, 3)
    assert [r.item_id for r in provider.requests] == ["hi//test/astronomy/hi-1"]


async def test_truncated_and_unparsed_answers_count_wrong_and_are_reported(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    await run_once(out, {"hi-1": "cut", "hi-2": "I would say B, or maybe C."})
    summary = summary_of(out)
    cell = summary["groups"][0]["models"]["m"]
    assert cell["truncated"] == 1
    assert cell["metrics"]["unparsed"]["value"] == pytest.approx(50.0)
    # hi-3 (7×8 → B) is right; the unparsed two are wrong, hi-4 answers B for A.
    assert cell["metrics"]["accuracy"]["value"] == pytest.approx(25.0)


async def test_an_unusable_endpoint_stops_the_run_and_leaves_items_for_later(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(AuthError):
        await run_once(out, {"": "auth"})
    assert not (out / "failures.jsonl").exists() or not (out / "failures.jsonl").read_text()
    report, _ = await run_once(out, {})
    assert report.answered == 4


def test_simulated_eval_answers_depend_on_the_model_and_follow_each_format() -> None:
    from mlift.prompts import render
    from mlift.sim.answers import answer

    def ask(name: str, variables: dict[str, str], model: str, rate: float = 0.0,
            schema: str | None = None) -> str:
        messages = render(load_prompts().get(name), variables)
        return answer([(m.role, m.content) for m in messages], 0, rate,
                      route=messages[0].route, schema=schema, model=model)

    item = hindi_items()[0]
    letters = {ask("eval/mmlu", dict(item.variables), f"m{i}") for i in range(20)}
    assert letters <= {"A", "B", "C", "D"} and len(letters) > 1
    assert ask("eval/mmlu", dict(item.variables), "m", rate=1.0).startswith("[sim]")
    schema = json.dumps({"type": "object"})
    assert json.loads(ask("eval/mmlu", dict(item.variables), "m", 1.0, schema))["answer"] in \
        "ABCD"  # schema-constrained: always an answer, never prose
    rows = [json.loads(x) for x in (DATA / "xlsum.jsonl").read_text("utf-8").splitlines()]
    summary = ask("eval/xlsum", {"article": rows[0]["text"], "lang_name": "Hindi"}, "m")
    assert summary.startswith("[sim] " + rows[0]["text"].split("।")[0])


async def test_a_translation_may_only_be_as_long_as_its_source_allows(tmp_path: Path) -> None:
    from mlift.tokens import count_tokens

    task = get_task("flores", metrics=["chrf++"])
    items = task.load([read_file(DATA / "flores.jsonl")], ["hi"]).items
    engine, provider = engine_with({})
    folder = open_folder(tmp_path / "out", {"task": "flores"}, {"m": "fake:m"})
    async with engine:
        evalrun = EvalRun(task, items, [ModelRef("m", "fake:m")], engine, load_prompts(),
                          set(), workers=2)
        async with Run(folder, engine, files=(EvalAnswer, EvalFailure)) as run:
            await evalrun.execute(run)
    cap = load_prompts().get("eval/flores").params["max_tokens"]
    by_key = {i.key: i for i in items}
    assert len(provider.requests) == 10
    for request in provider.requests:
        source = by_key[request.item_id or ""].budget_source
        # A looping model stops near what a translation can need, not at the cap.
        assert request.max_tokens == min(cap, int(6 * count_tokens(source, "m")) + 64) < cap
