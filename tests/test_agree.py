"""``mlift agree`` on a fixed run folder: every figure equals the value worked out by hand.

Nine judged pairs, the run's judge scoring them A and a second judge B (the
same scores as tests/test_agree_stats.py, where the κ, τ-b and ρ are worked
out), two labellers, and a few blind choices.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from mlift.agree.compare import HUMANS, MIN_ITEMS, agreement
from mlift.agree.render import render_html, render_text
from mlift.cli import main
from mlift.review.store import JudgeScore, Label, Preference, append

pytestmark = pytest.mark.usefixtures("no_blocking")

A = [1, 2, 3, 3, 4, 5, 5, 2, 1]
B = [1, 3, 3, 2, 4, 5, 4, 2, 3]
LANGS = ["hi"] * 5 + ["te"] * 4
TASKS = ["explain", "list"] * 4 + ["explain"]


def write_agree_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rows = [{"id": f"p{i + 1}", "lang": LANGS[i], "task": TASKS[i], "score": A[i],
             "reason": "", "kept": A[i] >= 4, "instruction_en": f"instruction {i + 1}",
             "response": f"response {i + 1}", "response_en": f"response {i + 1}",
             "models": {"judge": "openai:gpt-4o-mini"}} for i in range(9)]
    (folder / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "run.json").write_text(json.dumps({"config": {"min_score": 4}}))
    for i, score in enumerate(B):
        append(folder, JudgeScore(id=f"p{i + 1}", judge="anthropic:claude-3-5-haiku-latest",
                                  prompt="judge/fit@v1#x", at="t", score=score))
    append(folder, JudgeScore(id="p1", judge="anthropic:claude-3-5-haiku-latest",
                              prompt="judge/fit@v1#x", at="t", score=None,
                              code="judge:judge_unparsed"))  # a failure counts for nothing
    labels = [("ana", "p1", 5), ("ana", "p1", 1),  # ana changed her mind: 1 counts
              ("ana", "p2", 2), ("ana", "p3", 4), ("ana", "p4", 3),
              ("ben", "p1", 2), ("ben", "p2", 2), ("ben", "p5", None)]  # flags only: skipped
    for who, pid, score in labels:
        append(folder, Label(id=pid, labeller=who, at="t", score=score,
                             flags=[] if score else ["unnatural"]))
    return folder


def _cmp(result: Any, a: str, b: str) -> Any:
    return next(c for c in result.comparisons if (c.a, c.b) == (a, b))


JUDGE, SECOND = "judge openai:gpt-4o-mini", "judge anthropic:claude-3-5-haiku-latest"


def test_judge_vs_judge_equals_the_hand_worked_figures(tmp_path: Path) -> None:
    result = agreement(write_agree_run(tmp_path / "run"))
    c = _cmp(result, JUDGE, SECOND)
    f = c.groups["all"]
    assert c.kind == "judge vs judge" and f.n == 9
    assert f.kappa == pytest.approx(24 / 31)
    assert f.kappa_linear == pytest.approx(76 / 121)
    assert f.tau_b == pytest.approx(21 / math.sqrt(992))
    assert f.spearman == pytest.approx(44.25 / math.sqrt(58 * 57))
    assert (f.exact, f.within_one) == (pytest.approx(5 / 9), pytest.approx(8 / 9))
    assert f.confusion[0] == [1, 0, 1, 0, 0] and f.confusion[4] == [0, 0, 0, 1, 1]
    # Yield at λ: A has 9, 7, 5, 3, 2 of 9 at or above 1..5; B 9, 8, 6, 3, 1.
    assert f.yield_a == pytest.approx({1: 1, 2: 7 / 9, 3: 5 / 9, 4: 3 / 9, 5: 2 / 9})
    assert f.yield_b == pytest.approx({1: 1, 2: 8 / 9, 3: 6 / 9, 4: 3 / 9, 5: 1 / 9})
    # At λ=3 they disagree on keeping p2 (2 vs 3), p4 (3 vs 2) and p9 (1 vs 3).
    assert f.same_keep[3] == pytest.approx(6 / 9) and f.same_keep[4] == pytest.approx(1.0)
    assert f.few  # nine items: flagged


def test_figures_per_language_and_task_count_their_own_items(tmp_path: Path) -> None:
    c = _cmp(agreement(write_agree_run(tmp_path / "run")), JUDGE, SECOND)
    assert list(c.groups) == ["all", "lang hi", "lang te", "task explain", "task list"]
    hi = c.groups["lang hi"]  # a = 1 2 3 3 4, b = 1 3 3 2 4
    assert hi.n == 5 and hi.exact == pytest.approx(3 / 5)
    # τ-b on hi: 10 pairs, 7 concordant, 1 discordant (p2-p4), a-ties 1, b-ties 1 → 6/9.
    assert hi.tau_b == pytest.approx(6 / 9)
    assert c.groups["lang te"].n == 4 and c.groups["task explain"].n == 5


def test_judge_vs_each_labeller_and_all_labellers_pooled(tmp_path: Path) -> None:
    result = agreement(write_agree_run(tmp_path / "run"))
    ana = _cmp(result, JUDGE, "human ana").groups["all"]
    assert ana.n == 4 and ana.exact == pytest.approx(3 / 4)  # 1-1, 2-2, 3-4, 3-3
    pooled = _cmp(result, JUDGE, HUMANS).groups["all"]
    # One observation per label: p1 (1,1) (1,2), p2 (2,2) (2,2), p3 (3,4), p4 (3,3).
    assert pooled.n == 6 and pooled.exact == pytest.approx(4 / 6)
    people = _cmp(result, "human ana", "human ben")
    assert people.kind == "human vs human"
    assert people.groups["all"].n == 2 and people.groups["all"].exact == pytest.approx(1 / 2)
    second = _cmp(result, SECOND, "human ana").groups["all"]
    assert second.n == 4  # p1 counts with the second judge's earlier valid score


def test_rater_yields_per_judge_and_language(tmp_path: Path) -> None:
    yields = agreement(write_agree_run(tmp_path / "run")).rater_yields()
    assert yields[JUDGE]["n"] == 9
    assert yields[JUDGE]["yield"][4] == pytest.approx(3 / 9)
    assert yields[JUDGE]["by_lang"]["te"]["n"] == 4
    assert yields[JUDGE]["by_lang"]["te"]["yield"][4] == pytest.approx(2 / 4)  # 5 5 2 1
    assert yields["human ben"]["n"] == 2


def test_text_and_json_show_counts_and_warn_below_the_minimum(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_agree_run(tmp_path / "run")
    assert main(["agree", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{JUDGE}  vs  {SECOND}" in out
    all_row = next(line.split() for line in out.splitlines() if line.startswith("  all"))
    assert all_row == ["all", "9", "!", "0.77", "0.63", "0.67", "0.77", "56%", "89%"]
    assert f"fewer than {MIN_ITEMS} items" in out
    assert main(["agree", str(run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    first = data["comparisons"][0]["groups"]["all"]
    assert first["n"] == 9 and first["few_items"] is True
    assert first["kappa_quadratic"] == pytest.approx(24 / 31)


def test_enough_items_are_not_flagged(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    rows = [{"id": f"q{i}", "lang": "es", "task": "list", "score": 1 + i % 5,
             "instruction_en": "x", "response": "y"} for i in range(MIN_ITEMS)]
    (folder / "scored.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for r in rows:
        append(folder, JudgeScore(id=r["id"], judge="x:y", prompt="p", at="t",
                                  score=r["score"]))
    (c,) = agreement(folder).comparisons
    assert not c.groups["all"].few and c.groups["all"].kappa == pytest.approx(1.0)
    all_row = next(line for line in render_text(agreement(folder)).splitlines()
                   if line.startswith("  all"))
    assert all_row.split()[:2] == ["all", str(MIN_ITEMS)] and "!" not in all_row


def test_blind_win_rates_count_each_labellers_latest_choice(tmp_path: Path) -> None:
    folder = write_agree_run(tmp_path / "run")
    shown = [{"run": "run", "id": "p1"}, {"run": "translate", "id": "t1"}]
    for item, who, winner in [("k1", "ana", "translate"), ("k1", "ana", "run"),
                              ("k2", "ana", "run"), ("k3", "ana", None), ("k1", "ben", "run"),
                              ("k4", "ben", "translate")]:
        append(folder, Preference(item=item, lang="hi", labeller=who, at="t", shown=shown,
                                  winner=winner))
    (rate,) = agreement(folder).win_rates
    assert (rate.a, rate.b, rate.a_wins, rate.b_wins, rate.ties) == ("run", "translate",
                                                                     3, 1, 1)
    low, high = rate.interval or (0, 0)
    assert rate.rate == pytest.approx(0.75)
    assert (low, high) == (pytest.approx(0.3006, abs=1e-4), pytest.approx(0.9544, abs=1e-4))
    assert "run preferred in 75% [30%–95%] of 4 decided (3–1, 1 ties)" in \
        render_text(agreement(folder))


def test_html_section_escapes_names(tmp_path: Path) -> None:
    folder = write_agree_run(tmp_path / "run")
    append(folder, Label(id="p1", labeller="<b>eve</b>", at="t", score=3))
    page = render_html(agreement(folder))
    assert "&lt;b&gt;eve&lt;/b&gt;" in page and "<b>eve" not in page


def test_a_folder_without_scores_says_what_to_do(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "dataset.jsonl").write_text('{"id": "a", "lang": "es", "instruction": "i", '
                                         '"response": "r"}\n')
    assert main(["agree", str(folder)]) == 0
    assert "run `mlift judge`" in capsys.readouterr().out
    assert main(["agree", str(tmp_path / "missing")]) == 2
