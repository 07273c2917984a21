"""``mlift judge``: a second judge re-scores a seeded sample through the engine, on the simulator.

The simulator's verdict is a function of the judged instruction and response
alone, so a second "sim" judge gives exactly the run's scores when, and only
when, it was shown exactly what the run's judge saw — including the English
context put back into context-bearing instructions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlift.agree.judge import draw_sample
from mlift.cli import main

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _run(out: Path, cache: Path, *extra: str) -> None:
    assert main(["run", *extra, "--out", str(out), "--cache-dir", str(cache), "-q"]) in (0,)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("judge")
    _run(base / "run", base / "cache", str(SAMPLES / "es.jsonl"))
    return base / "run", base / "cache"


def _judge(run: Path, cache: Path, *extra: str) -> int:
    return main(["judge", str(run), "--judge", "sim:second", "--cache-dir", str(cache), "-q",
                 *extra])


def test_a_seeded_sample_is_judged_once_and_grows_without_rejudging(
        plain_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, cache = plain_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    scored = {r["id"]: r for r in _lines(run / "scored.jsonl")}

    assert _judge(run, cache, "--sample", "5") == 0
    err = capsys.readouterr().err
    assert err.index("estimate for 5 pairs") < err.index("5 scored")  # estimated first
    first = _lines(run / "judge_scores.jsonl")
    expected = draw_sample(list(scored), 5, seed=0)
    assert sorted(x["id"] for x in first) == sorted(expected)
    for verdict in first:
        assert verdict["judge"] == "sim:second" and verdict["prompt"].startswith("judge/fit@v2")
        # Same text in front of the judge as in the run → the simulator's same verdict.
        assert verdict["score"] == scored[verdict["id"]]["score"]
        assert verdict["at"].endswith("Z") and verdict["usage"]["judge"]["requests"] == 1

    assert _judge(run, cache, "--sample", "8") == 0
    assert "5 already judged" in capsys.readouterr().err
    assert len(_lines(run / "judge_scores.jsonl")) == 8

    assert _judge(run, cache, "--sample", "8", "--estimate") == 0
    assert "8 already judged" in capsys.readouterr().err
    assert len(_lines(run / "judge_scores.jsonl")) == 8


def test_estimate_only_sends_nothing_and_writes_nothing(
        plain_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    run, cache = plain_run
    before = (run / "judge_scores.jsonl").exists()
    assert _judge(run, cache, "--sample", "4", "--estimate", "--judge-prompt",
                  "judge/fit_line") == 0
    err = capsys.readouterr().err
    assert "estimate for 4 pairs with sim:second" in err and "judge " in err and "$" in err
    assert (run / "judge_scores.jsonl").exists() == before


def test_context_pairs_are_judged_with_the_english_context_put_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    _run(tmp_path / "run", cache, str(SAMPLES / "nlp" / "qa" / "es.jsonl"), "--text-field",
         "answer", "--context-field", "context", "--context-field", "question")
    scored = {r["id"]: r for r in _lines(tmp_path / "run" / "scored.jsonl")}
    assert scored and all(r["context"] for r in scored.values())
    assert _judge(tmp_path / "run", cache) == 0
    verdicts = _lines(tmp_path / "run" / "judge_scores.jsonl")
    assert len(verdicts) == len(scored)
    for v in verdicts:
        assert v["score"] == scored[v["id"]]["score"], v["id"]
        # The context's translation came from the run's cache, at no cost.
        assert v["usage"]["to_en_context"]["cached"] == 1
        assert v["usage"]["to_en_context"]["cost_usd"] == 0


def test_a_budget_stop_leaves_the_rest_for_the_next_run(
        plain_run: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = plain_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    (run / "judge_scores.jsonl").unlink(missing_ok=True)
    assert _judge(run, tmp_path / "fresh-cache", "--max-cost", "0.0004") == 4
    partial = len(_lines(run / "judge_scores.jsonl"))
    total = len(_lines(run / "scored.jsonl"))
    assert 0 < partial < total
    assert _judge(run, tmp_path / "fresh-cache") == 0
    assert len({x["id"] for x in _lines(run / "judge_scores.jsonl")}) == total


def test_sample_is_stable_under_file_order_and_nested_as_it_grows() -> None:
    pairs = [f"x{i}" for i in range(50)]
    small = draw_sample(pairs, 5, seed=7)
    assert draw_sample(list(reversed(pairs)), 5, seed=7) == small
    assert draw_sample(pairs, 12, seed=7)[:5] == small
    assert draw_sample(pairs, 5, seed=8) != small


def test_a_folder_without_judged_pairs_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(json.dumps({"config": {"models": {
        "translator": "sim:default", "generator": "sim:default", "judge": "sim:default"}}}))
    assert _judge(tmp_path / "run", tmp_path / "cache") == 2
    assert "no judged pairs" in capsys.readouterr().err
    assert main(["judge", str(tmp_path / "nope"), "--judge", "sim:x"]) == 2


def test_judging_is_booked_in_the_folders_ledger_with_a_cap_of_its_own(
        plain_run: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = plain_run
    run = tmp_path / "run"
    shutil.copytree(src, run)
    (run / "judge_scores.jsonl").unlink(missing_ok=True)
    before = json.loads((run / "run.json").read_text())
    run_cost = before["accounting"]["totals"]["cost_usd"]
    assert run_cost > 0.0004  # the run's own spend is above the judge's cap below ...
    # ... and still the judge may spend up to its cap: --max-cost is per command.
    assert _judge(run, tmp_path / "fresh-cache", "--max-cost", "0.0004") == 4
    after = json.loads((run / "run.json").read_text())
    judged = [i for i in after["invocations"] if i["command"] == "judge sim:second"]
    assert len(judged) == 1 and 0 < judged[0]["cost_usd"] <= 0.0004
    assert after["accounting"]["totals"]["cost_usd"] == pytest.approx(
        run_cost + judged[0]["cost_usd"])
    assert after["funnel"] == before["funnel"] and after["config"] == before["config"]
