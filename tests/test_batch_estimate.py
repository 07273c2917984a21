"""``mlift estimate --batch``: online and batch cost side by side, and the time window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import main
from mlift.prices import PriceTable

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DAY = 24 * 3600


def first(lang: str, n: int, tmp_path: Path) -> str:
    lines = (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    path = tmp_path / f"{lang}{n}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def estimate(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> dict[str, Any]:
    assert main(["estimate", *argv, "--cache-dir", str(tmp_path / "cache"), "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_batched_stages_cost_what_the_batch_prices_say(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    price = PriceTable.load().lookup("openai", "gpt-4o-mini")
    assert (price.batch_input, price.batch_output) == (price.input / 2, price.output / 2)
    est = estimate(capsys, tmp_path, first("hi", 6, tmp_path), "--provider",
                   "openai:gpt-4o-mini", "--batch", "to_en,instruct,back")
    for name, stage in est["stages"].items():
        tokens_in = stage["input_tokens"]["expected"]
        tokens_out = stage["output_tokens"]["expected"]
        if name == "judge":  # online
            assert stage["batch"] is False
            assert stage["cost_usd_batch"] == stage["cost_usd"]
            continue
        assert stage["batch"] is True
        # the expected figures are draw 0, every factor at its central value
        by_hand = (tokens_in * price.batch_input + tokens_out * price.batch_output) / 1e6
        assert stage["cost_usd_batch"]["expected"] == pytest.approx(by_hand, abs=2e-6)
        assert stage["cost_usd_batch"]["expected"] == pytest.approx(
            stage["cost_usd"]["expected"] / 2, abs=2e-6)
    total = est["total"]
    assert total["cost_usd_batch"]["expected"] == pytest.approx(
        sum(s["cost_usd_batch"]["expected"] for s in est["stages"].values()), abs=5e-6)
    assert total["cost_usd_batch"]["low"] < total["cost_usd_batch"]["expected"] \
        < total["cost_usd_batch"]["high"] < total["cost_usd"]["high"]
    batch = est["batch"]
    assert batch["stages"] == ["to_en", "instruct", "back"]
    assert batch["rounds"] == ["to_en", "instruct", "back"] and batch["window_h"] == 24
    assert batch["at_most_s"] == 3 * DAY and batch["reask_rounds_at_most"] == 0


def test_a_judge_that_may_need_re_asks_adds_their_rounds_to_the_window(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A free-text verdict can be unreadable, and each re-ask waits for a round of its own.
    est = estimate(capsys, tmp_path, first("te", 4, tmp_path), "--provider",
                   "anthropic:claude-3-5-haiku-latest", "--judge-prompt", "judge/fit_line",
                   "--batch")
    batch = est["batch"]
    assert batch["rounds"] == ["to_en", "instruct", "judge", "back"]
    assert batch["reask_rounds_at_most"] == 2 and batch["at_most_s"] == 6 * DAY
    assert batch["note"] == "Anthropic says most batches end within an hour"


def test_a_price_without_batch_rates_is_not_discounted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --price gives online rates only: the batch figure never guesses a discount.
    est = estimate(capsys, tmp_path, first("ja", 3, tmp_path), "--provider",
                   "openai:my-finetune", "--price", "1,2", "--batch")
    assert est["total"]["cost_usd_batch"] == est["total"]["cost_usd"]


def test_the_table_shows_both_costs_and_how_long_the_rounds_may_take(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", first("es", 3, tmp_path), "--provider", "openai:gpt-4o-mini",
                 "--cache-dir", str(tmp_path / "cache"), "--batch", "to_en,judge"]) == 0
    table = capsys.readouterr().out
    head = next(line for line in table.splitlines() if line.startswith("stage"))
    assert head.endswith("cost (expected [low-high])    with --batch")
    assert next(line for line in table.splitlines() if line.startswith("instruct")).endswith(
        " online")
    assert "with --batch (to_en, judge): $" in table and "(50% less)" not in table
    assert ("time: each round of batches ends within 24 h, one round after another "
            "(to_en → judge): at most 48h00m") in table
    assert "wall time online:" in table
    # without --batch, the table is as it was
    assert main(["estimate", first("es", 3, tmp_path), "--provider", "openai:gpt-4o-mini",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "--batch" not in capsys.readouterr().out


def test_an_unknown_stage_for_estimate_batch_fails_with_the_list(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["estimate", first("hi", 1, tmp_path), "--batch", "translate"]) == 2
    assert "translate is not a stage of this command; stages: to_en" in capsys.readouterr().err
