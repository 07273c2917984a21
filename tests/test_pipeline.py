"""`mlift run` / `mlift filter` end to end on the bundled samples, against the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import main

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def subset(tmp_path: Path, n: int = 8) -> list[str]:
    """The first ``n`` records of each sample language (keeps the suite fast)."""
    files = []
    for lang in ("hi", "te", "ja", "es"):
        lines = (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        path = tmp_path / f"{lang}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(str(path))
    return files


def run(*args: str) -> int:
    return main(["run", *args, "-q"])


def accounting(out: Path) -> dict[str, Any]:
    """The last invocation's accounting (run.json's "accounting" is the run's total)."""
    run_json = json.loads((out / "run.json").read_text())
    data: dict[str, Any] = run_json["this_invocation"]["accounting"]
    return data


def test_run_builds_a_dataset_whose_counts_add_up(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    inputs = subset(tmp_path)
    assert run(*inputs, "--out", str(out), "--cache-dir", str(cache)) == 0
    funnel = json.loads((out / "run.json").read_text())["funnel"]
    dataset, scored, rejects = (rows(out / n) for n in
                                ("dataset.jsonl", "scored.jsonl", "rejects.jsonl"))
    below = [s for s in scored if s["score"] < 4]
    assert funnel["input"] == 32 == len(dataset) + len(below) + len(rejects)
    assert funnel["balanced"] is True
    assert dataset, "the simulator's judge keeps most pairs"
    originals = {json.loads(line)["id"]: json.loads(line)["text"]
                 for f in inputs for line in Path(f).read_text(encoding="utf-8").splitlines()}
    for row in dataset:
        assert row["response"] == originals[row["id"]]  # the original text, never translated
        assert row["score"] >= 4
        assert row["instruction"] and row["instruction_en"] and row["response_en"]
        assert set(row["prompts"]) >= {"to_en", "instruct", "judge", "back"}
        assert row["source"]["line"] >= 1
        assert row["usage"]["judge"]["requests"] >= 1
    assert len({r["id"] for r in dataset}) == len(dataset)
    assert len({r["task"] for r in scored}) >= 4  # the prompt pool is drawn from


def test_rerun_of_a_finished_run_sends_nothing_and_changes_nothing(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    inputs = subset(tmp_path, 4)
    run(*inputs, "--out", str(out), "--cache-dir", str(cache))
    before = (out / "dataset.jsonl").read_bytes()
    run(*inputs, "--out", str(out), "--cache-dir", str(cache))
    assert (out / "dataset.jsonl").read_bytes() == before
    assert accounting(out)["totals"]["requests"] == 0


def test_resume_after_a_torn_write_finishes_without_duplicates_or_new_paid_calls(
        tmp_path: Path) -> None:
    inputs = subset(tmp_path, 6)
    full, cache = tmp_path / "full", tmp_path / "cache"
    run(*inputs, "--out", str(full), "--cache-dir", str(cache))
    expected = sorted(json.dumps(r, sort_keys=True) for r in rows(full / "dataset.jsonl"))
    # An interrupted run: half the dataset lines, the last one torn mid-write.
    part = tmp_path / "part"
    part.mkdir()
    lines = (full / "dataset.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    half = lines[: len(lines) // 2]
    (part / "dataset.jsonl").write_text("".join(half) + lines[-1][:40], encoding="utf-8")
    run(*inputs, "--out", str(part), "--cache-dir", str(cache))
    got = rows(part / "dataset.jsonl")
    assert len({r["id"] for r in got}) == len(got)
    # usage says whether calls were cached: compare what does not depend on it
    def strip(r: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in r.items() if k != "usage"}, sort_keys=True)
    assert sorted(map(strip, got)) == sorted(strip(json.loads(e)) for e in expected)
    totals = accounting(part)["totals"]
    assert totals["requests"] == totals["cache_hits"]  # nothing paid twice


def test_changing_only_the_judge_reuses_cached_translations_and_instructions(
        tmp_path: Path) -> None:
    inputs, cache = subset(tmp_path, 4), tmp_path / "cache"
    run(*inputs, "--out", str(tmp_path / "a"), "--cache-dir", str(cache))
    run(*inputs, "--out", str(tmp_path / "b"), "--cache-dir", str(cache),
        "--judge", "sim:another-judge")
    stages = accounting(tmp_path / "b")["stages"]
    for stage in ("to_en", "instruct"):
        assert stages[stage]["requests"] == stages[stage]["cache_hits"] > 0
    assert stages["judge"]["cache_hits"] == 0


def test_bad_input_lines_become_rejects_naming_file_and_line_and_the_rest_runs(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = SAMPLES / "bad" / "mixed.jsonl"
    assert run(str(bad), "--out", str(out), "--cache-dir", str(tmp_path / "c")) == 0
    rejects = rows(out / "rejects.jsonl")
    by_code = {r["code"]: r for r in rejects}
    assert {"duplicate", "near_duplicate", "too_short", "wrong_script"} <= set(by_code)
    input_errors = [r for r in rejects if r["stage"] == "input"]
    assert len(input_errors) == 4
    for r in input_errors:
        assert r["source"]["file"] == str(bad) and r["source"]["line"] >= 1
        assert str(bad) in r["detail"]
    funnel = json.loads((out / "run.json").read_text())["funnel"]
    assert funnel["input"] == 11 and funnel["balanced"]


def test_filter_at_a_lower_threshold_back_translates_only_the_new_pairs(
        tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    run(*subset(tmp_path, 8), "--out", str(out), "--cache-dir", str(cache), "--min-score", "5")
    kept_before = {r["id"] for r in rows(out / "dataset.jsonl")}
    scored = rows(out / "scored.jsonl")
    newly = {s["id"] for s in scored if s["score"] == 4}
    assert main(["filter", str(out), "--min-score", "4", "--cache-dir", str(cache), "-q"]) == 0
    kept_after = {r["id"] for r in rows(out / "dataset.jsonl")}
    rejected = {r["id"] for r in rows(out / "rejects.jsonl")}
    assert kept_after | (newly & rejected) == kept_before | newly
    assert main(["filter", str(out), "--min-score", "5", "--cache-dir", str(cache), "-q"]) == 0
    assert {r["id"] for r in rows(out / "dataset.jsonl")} == kept_before


def test_context_records_embed_the_original_context_in_the_instruction(tmp_path: Path) -> None:
    out = tmp_path / "out"
    src = SAMPLES / "nlp" / "summarization" / "hi.jsonl"
    assert run(str(src), "--out", str(out), "--cache-dir", str(tmp_path / "c"),
               "--text-field", "summary", "--context-field", "article", "--min-score", "1") == 0
    articles = {json.loads(line)["id"]: json.loads(line)["article"]
                for line in src.read_text(encoding="utf-8").splitlines()}
    dataset = rows(out / "dataset.jsonl")
    assert dataset
    for row in dataset:
        assert articles[row["id"]] in row["instruction"]
        assert row["task"] == "summary_context"


def test_unknown_provider_fails_before_any_request(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = run(*subset(tmp_path, 2), "--out", str(tmp_path / "o"), "--provider", "opneai:gpt-4o")
    assert code == 2
    assert "Did you mean 'openai'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "dataset.jsonl").exists()


def test_text_longer_than_the_models_context_is_a_reject_and_the_rest_runs(
        tmp_path: Path) -> None:
    config = tmp_path / "mlift.toml"
    config.write_text('[providers.tiny]\nkind = "sim"\ncontext_tokens = 2600\n')
    out = tmp_path / "out"
    assert run(*subset(tmp_path, 8), "--out", str(out), "--cache-dir", str(tmp_path / "c"),
               "--config", str(config), "--provider", "tiny:default") == 0
    rejects = [r for r in rows(out / "rejects.jsonl") if r["code"] == "too_long_for_model"]
    assert rejects, "some sample paragraphs exceed a 2600-token window with room to answer"
    assert all(r["stage"] == "to_en" and "context_tokens" in r["detail"] for r in rejects)
    funnel = json.loads((out / "run.json").read_text())["funnel"]
    assert funnel["balanced"] and funnel["kept"] > 0
