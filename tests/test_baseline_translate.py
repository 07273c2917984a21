"""`mlift baseline translate`: an English IFT set translated through the engine.

End to end against the simulator through the CLI, plus library-level tests
with an in-memory provider (our own Provider protocol, no SDK) for the
translation checks the simulator never trips.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mlift.baselines import IftFields, TranslateBaseline, TranslateOptions
from mlift.cli import main
from mlift.engine.accounting import Accounting, Budget
from mlift.engine.core import Engine
from mlift.prompts import load_prompts
from mlift.providers.base import Endpoint, Provider
from mlift.types import Completion, Request, Usage

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

ROOT = Path(__file__).resolve().parent.parent
IFT = ROOT / "samples" / "english_ift.jsonl"
CORE = {"id", "lang", "instruction", "response", "instruction_en", "response_en", "task",
        "prompts", "models", "source", "usage"}


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def head(tmp_path: Path, n: int) -> Path:
    """The first ``n`` sample records, in a file of their own (keeps the suite fast)."""
    path = tmp_path / "ift.jsonl"
    path.write_text("".join(IFT.read_text(encoding="utf-8").splitlines(keepends=True)[:n]),
                    encoding="utf-8")
    return path


def translate(*args: str) -> int:
    return main(["baseline", "translate", *args, "-q"])


def run_json(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return data


def test_translates_instruction_with_input_and_response_with_provenance(tmp_path: Path) -> None:
    src, out = head(tmp_path, 8), tmp_path / "out"
    assert translate(str(src), "--lang", "hi", "--out", str(out),
                     "--cache-dir", str(tmp_path / "c")) == 0
    originals = {r["id"]: r for r in rows(src)}
    dataset = rows(out / "dataset.jsonl")
    assert len(dataset) == 8 and not rows(out / "rejects.jsonl")
    for row in dataset:
        assert set(row) >= CORE and "score" not in row
        en = originals[row["id"]]
        assert row["task"] == "translated" and row["lang"] == "hi"
        assert row["response_en"] == en["output"].strip()
        assert row["instruction_en"].startswith(en["instruction"])
        if en["input"]:
            assert row["instruction_en"].endswith("\n\n" + en["input"])
        assert row["instruction"] != row["instruction_en"]
        assert any("\u0900" <= ch <= "\u097f" for ch in row["response"])  # Devanagari
        assert row["prompts"]["translate_instruction"].startswith("translate/back@v1#")
        assert row["prompts"]["translate_response"].startswith("translate/ift@v1#")
        assert row["models"] == {"translator": "sim:default"}
        assert row["source"]["file"] == str(src) and row["source"]["line"] >= 1
        assert row["usage"]["translate_response"]["requests"] == 1
        assert "input" not in row["fields"]
    assert any(originals[i]["input"] for i in originals)  # the sample covers inputs
    info = run_json(out)
    assert info["funnel"]["input"] == 8 and info["funnel"]["balanced"] is True
    assert info["accounting"]["totals"]["requests"] == 16


def test_rerun_sends_nothing_and_changes_nothing(tmp_path: Path) -> None:
    src, out = head(tmp_path, 4), tmp_path / "out"
    args = (str(src), "--lang", "ja", "--out", str(out), "--no-cache")
    assert translate(*args) == 0
    before = (out / "dataset.jsonl").read_bytes()
    assert translate(*args) == 0  # without a cache: skipped because finished
    assert (out / "dataset.jsonl").read_bytes() == before
    info = run_json(out)
    assert info["this_invocation"]["accounting"]["totals"]["requests"] == 0
    assert info["accounting"]["totals"]["requests"] == 8  # the run's total: the first pass
    assert info["funnel"]["already_done"] == 4 and info["funnel"]["balanced"]


def test_resume_after_a_torn_write_finishes_without_duplicates_or_paid_calls(
        tmp_path: Path) -> None:
    src, cache = head(tmp_path, 6), str(tmp_path / "c")
    full, part = tmp_path / "full", tmp_path / "part"
    translate(str(src), "--lang", "te", "--out", str(full), "--cache-dir", cache)
    lines = (full / "dataset.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    part.mkdir()
    (part / "dataset.jsonl").write_text("".join(lines[:3]) + lines[3][:50], encoding="utf-8")
    assert translate(str(src), "--lang", "te", "--out", str(part), "--cache-dir", cache) == 0
    got = rows(part / "dataset.jsonl")
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in rows(full / "dataset.jsonl"))
    totals = run_json(part)["this_invocation"]["accounting"]["totals"]
    assert totals["requests"] == totals["cache_hits"] == 6  # 3 items x 2 calls, all cached


def test_bad_lines_become_rejects_naming_file_line_and_field(tmp_path: Path) -> None:
    src, out = tmp_path / "mixed.jsonl", tmp_path / "out"
    good = {"id": "ok-1", "instruction": "Name a primary colour.", "input": "",
            "output": "Red is a primary colour."}
    lines = [json.dumps(good), '{"id": "broken", "instruction": ',
             json.dumps({"id": "no-out", "instruction": "Say hi."}),
             json.dumps({"id": "bad-in", "instruction": "Add them.", "input": [1, 2],
                         "output": "3"}),
             json.dumps({"id": "fr-1", "lang": "fr", "instruction": "Dis bonjour.",
                         "output": "Bonjour !"})]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert translate(str(src), "--lang", "es", "--out", str(out), "--no-cache") == 0
    assert [r["id"] for r in rows(out / "dataset.jsonl")] == ["ok-1"]
    rejects = {r["source"]["line"]: r for r in rows(out / "rejects.jsonl")}
    assert {n: r["code"] for n, r in rejects.items()} == {
        2: "bad_json", 3: "missing_field", 4: "bad_type", 5: "not_english"}
    for r in rejects.values():
        assert r["stage"] == "input" and r["source"]["file"] == str(src)
        assert f"{src}:{r['source']['line']}" in r["detail"]
    assert "'output'" in rejects[3]["detail"] and "'input'" in rejects[4]["detail"]
    funnel = run_json(out)["funnel"]
    assert (funnel["input"], funnel["kept"], funnel["rejected"], funnel["balanced"]) == (
        5, 1, 4, True)


def test_dolly_preset_reads_context_and_response(tmp_path: Path) -> None:
    src, out = tmp_path / "dolly.jsonl", tmp_path / "out"
    src.write_text(json.dumps({"instruction": "Who wrote it?", "context": "Cervantes wrote "
                               "Don Quixote.", "response": "Miguel de Cervantes.",
                               "category": "closed_qa"}) + "\n", encoding="utf-8")
    assert translate(str(src), "--preset", "dolly", "--lang", "hi", "--out", str(out),
                     "--no-cache") == 0
    [row] = rows(out / "dataset.jsonl")
    assert row["instruction_en"] == "Who wrote it?\n\nCervantes wrote Don Quixote."
    assert row["response_en"] == "Miguel de Cervantes."
    assert row["fields"] == {"category": "closed_qa"}


@pytest.mark.parametrize(("flags", "message"), [
    (("--lang", "xx"), "unknown language 'xx'"),
    (("--lang", "en"), "translates English records into another language"),
    (("--lang", "hi", "--translator", "opneai:gpt-4o"), "Did you mean 'openai'"),
])
def test_bad_config_fails_before_any_request(tmp_path: Path, flags: tuple[str, ...],
                                             message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert translate(str(head(tmp_path, 2)), *flags, "--out", str(out), "--no-cache") == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------- library level, scripted answers

class ScriptedTranslator(Provider):
    """Answers per item id: a good pseudo-Hindi text, the English back, nothing, or cut off."""

    def __init__(self, endpoint: Endpoint, behaviour: dict[str, str]) -> None:
        self.endpoint, self.behaviour = endpoint, behaviour
        self.requests: list[Request] = []

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        mode = self.behaviour.get(request.item_id or "", "ok")
        text = request.messages[-1].content.split("<text>\n", 1)[1].rsplit("\n</text>", 1)[0]
        answer = {"ok": "यह एक अनुवाद है और यह हिन्दी में है।", "echo": text, "empty": " ",
                  "cut": "यह एक अधूरा"}[mode]
        return Completion(text=answer, finish_reason="length" if mode == "cut" else "stop",
                          usage=Usage(50, 10), model=self.endpoint.model)

    async def aclose(self) -> None:
        return None


def scripted_engine(behaviour: dict[str, str], max_cost: float | None = None
                    ) -> tuple[Engine, ScriptedTranslator]:
    endpoint = Endpoint(name="fake", kind="fake", model="m1", input_price=1.0,
                        output_price=2.0)
    provider = ScriptedTranslator(endpoint, behaviour)

    def factory(_ep: Endpoint) -> Provider:
        return provider

    return Engine(lambda _spec: endpoint, accounting=Accounting(), budget=Budget(max_cost),
                  provider_factory=factory), provider


def write_ift(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "instruction": f"Explain topic {i} in a few "
                                        "clear sentences.", "output": f"Topic {i} is a long "
                                        "and interesting subject worth explaining well."}) + "\n"
                            for i in ids), encoding="utf-8")
    return path


async def test_untranslated_empty_and_truncated_answers_are_rejects_with_reasons(
        tmp_path: Path) -> None:
    src = write_ift(tmp_path / "in.jsonl", ["good", "echo", "empty", "cut"])
    engine, _ = scripted_engine({"echo": "echo", "empty": "empty", "cut": "cut"})
    options = TranslateOptions(inputs=(src,), out_dir=tmp_path / "out", lang="hi",
                               translator="fake:m1", fields=IftFields())
    async with engine:
        library = await asyncio.to_thread(load_prompts)  # reads the prompt files
        report = await TranslateBaseline(options, engine, library).run()
    assert (report.inputs, report.kept, report.rejected, report.balanced) == (4, 1, 3, True)
    codes = {r["id"]: (r["stage"], r["code"]) for r in rows(tmp_path / "out" / "rejects.jsonl")}
    assert codes == {"echo": ("translate_instruction", "still_english"),
                     "empty": ("translate_instruction", "empty_output"),
                     "cut": ("translate_instruction", "truncated")}
    reject = next(r for r in rows(tmp_path / "out" / "rejects.jsonl") if r["id"] == "echo")
    assert reject["instruction_en"].startswith("Explain topic echo")
    assert reject["usage"]["translate_instruction"]["requests"] == 1


async def test_budget_stop_leaves_unfinished_items_for_the_next_run(tmp_path: Path) -> None:
    src = write_ift(tmp_path / "in.jsonl", [f"r{i}" for i in range(5)])
    out = tmp_path / "out"
    options = TranslateOptions(inputs=(src,), out_dir=out, lang="hi", translator="fake:m1",
                               workers=1)
    engine, _ = scripted_engine({}, max_cost=0.0)
    async with engine:
        library = await asyncio.to_thread(load_prompts)  # reads the prompt files
        report = await TranslateBaseline(options, engine, library).run()
    assert report.stopped and report.kept == 0 and not rows(out / "rejects.jsonl")
    assert run_json(out)["stopped_early"]
    engine, provider = scripted_engine({})
    async with engine:
        library = await asyncio.to_thread(load_prompts)  # reads the prompt files
        report = await TranslateBaseline(options, engine, library).run()
    assert (report.inputs, report.kept, report.balanced) == (5, 5, True)
    assert len(provider.requests) == 10
