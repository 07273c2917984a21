"""``mlift report``: statistics of a small hand-made run folder, exactly; text, JSON and HTML."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import report as report_cli
from mlift.errors import ConfigError, RunFolderError
from mlift.report import dataset_stats, load_folder, render_text
from mlift.report.stats import distinct_n, entropy_bits, leading_word, words


def _row(rid: str, lang: str, instruction: str, response: str, instruction_en: str | None,
         task: str, score: int | None, license: str | None = None, **extra: Any,
         ) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": rid, "lang": lang, "instruction": instruction, "response": response,
        "instruction_en": instruction_en, "response_en": None, "task": task,
        "prompts": {"instruct": f"instruct/{task}@v1#0123456789ab"},
        "models": {"translator": "openai:gpt-4o-mini", "generator": "openai:gpt-4o-mini",
                   "judge": "anthropic:claude-3-5-haiku-latest"},
        "source": {"file": f"{lang}.jsonl", "line": 1, "dataset": lang},
        "fields": {"license": license} if license else {}, **extra}
    if score is not None:
        row["score"] = score
    return row


def _jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")


def write_run(folder: Path) -> Path:
    """A finished run: 8 inputs = 4 kept + 2 below λ=4 + 2 rejected (one listed twice)."""
    folder.mkdir(parents=True)
    rows = [
        _row("a", "es", "Explica el sol.", "El sol brilla.", "Please explain the sun.",
             "explain", 5, "CC0-1.0"),
        _row("b", "es", "Explica la luna.", "La luna gira.", "Can you list the moons?",
             "list", 4, "CC-BY-4.0"),
        _row("c", "ja", "月を説明して", "月は明るい。", "[sim] Explain the moon.", "explain", 4),
        _row("h", "es", "Explica el sol.", "Sol.", "Explain the sun.", "explain", 5,
             "CC0-1.0"),
    ]
    _jsonl(folder / "dataset.jsonl", rows)
    _jsonl(folder / "scored.jsonl", [{"id": r["id"], "score": r["score"], "kept": True}
                                     for r in rows]
           + [{"id": "d", "score": 2, "kept": False}, {"id": "e", "score": 3, "kept": False}])
    _jsonl(folder / "rejects.jsonl", [
        {"id": "f", "stage": "select", "code": "too_short", "detail": "3 characters"},
        {"id": "g", "stage": "judge", "code": "parse_failure", "detail": "no score"},
        {"id": "g", "stage": "judge", "code": "parse_failure", "detail": "again, on resume"}])
    (folder / "run.json").write_text(json.dumps({
        "mlift_version": "0.1.0", "config": {"min_score": 4},
        "funnel": {"input": 8, "judge_parse_failures": 1}}), encoding="utf-8")
    return folder


def write_baseline(folder: Path) -> Path:
    """A translation-baseline folder: no scored.jsonl, rows without scores."""
    folder.mkdir(parents=True)
    _jsonl(folder / "dataset.jsonl", [
        _row("t1", "es", "Escribe un poema sobre el mar.", "El mar canta.",
             "Write a poem about the sea.", "translated", None),
        _row("t2", "es", "Resume el texto.", "Un resumen.", "Summarize the text.",
             "translated", None)])
    (folder / "run.json").write_text(json.dumps({"baseline": "translate", "config": {},
                                                 "funnel": {"input": 2}}), encoding="utf-8")
    return folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


def test_stats_of_a_hand_made_run_are_exact(run_dir: Path) -> None:
    s = dataset_stats(load_folder(run_dir))
    f = s.funnel
    assert (f.input, f.kept, f.scored, f.below_threshold) == (8, 4, 6, 2)
    assert f.rejected == {"select": {"too_short": 1}, "judge": {"parse_failure": 1}}
    assert f.balanced and f.judge_parse_failures == 1
    assert s.kind == "mlift" and s.min_score == 4
    assert s.score_histogram == {1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
    assert s.yields == {1: 6, 2: 6, 3: 5, 4: 4, 5: 2}
    assert s.instruction.chars.mean == 13.0
    assert s.instruction.chars.sd == pytest.approx(math.sqrt(16.5))
    # 15 word tokens (3 + 3 + 6 characters of Japanese + 3), 11 distinct; 11 bigrams, 9 distinct.
    assert s.distinct == {"distinct_1": pytest.approx(11 / 15), "distinct_2": pytest.approx(9 / 11)}
    assert s.near_duplicates == 1 and s.near_duplicate_rate == 0.25
    assert s.leading_words == [("explain", 3), ("list", 1)]
    assert s.tasks == {"explain": 3, "list": 1}
    assert s.prompts == {"instruct/explain@v1": 3, "instruct/list@v1": 1}
    assert s.task_entropy == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert s.languages == {"es": 3, "ja": 1}
    assert set(s.by_lang) == {"es", "ja"}
    assert s.by_lang["ja"]["instruction"].chars.mean == 6.0


def test_token_lengths_name_the_tokenizer_used(run_dir: Path) -> None:
    s = dataset_stats(load_folder(run_dir))
    assert s.token_model == "gpt-4o-mini"
    assert s.tokenizer in ("o200k_base", "approx")
    assert s.instruction.tokens.n == 4 and s.instruction.tokens.mean > 0


def test_words_keep_indic_vowel_signs_and_split_han_and_kana() -> None:
    assert words("नमस्ते, दुनिया!") == ["नमस्ते", "दुनिया"]
    assert words("東京へ行く。Tokyo!") == ["東", "京", "へ", "行", "く", "tokyo"]
    assert words("¿Qué  TAL?") == ["qué", "tal"]


def test_distinct_n_and_entropy_of_small_inputs() -> None:
    assert distinct_n([["a", "b", "a"], ["a"]], 1) == 0.5
    assert distinct_n([["a"]], 2) == 0.0
    assert entropy_bits({"x": 2, "y": 2}) == 1.0
    assert entropy_bits({"x": 5}) == 0.0


@pytest.mark.parametrize(("text", "word"), [
    ("Please summarize this article.", "summarize"),
    ("Can you please list three rivers?", "list"),
    ("could you explain it", "explain"),
    ("[sim] Write a poem.", "write"),
    ("¿?", None),
])
def test_leading_word_skips_tags_and_polite_fillers(text: str, word: str | None) -> None:
    assert leading_word(text) == word


def test_baseline_folder_reports_without_scores(tmp_path: Path) -> None:
    s = dataset_stats(load_folder(write_baseline(tmp_path / "translate")))
    assert s.kind == "translate" and s.rows == 2
    assert s.score_histogram is None and s.yields is None and s.min_score is None
    assert s.funnel.input == 2 and s.funnel.balanced
    assert s.leading_words == [("write", 1), ("summarize", 1)]


def test_text_table_puts_each_folder_in_its_own_column(run_dir: Path, tmp_path: Path) -> None:
    base = write_baseline(tmp_path / "translate")
    text = render_text([dataset_stats(load_folder(d)) for d in (run_dir, base)])
    header = text.splitlines()[0]
    assert header.split() == ["run", "translate"]
    yield4 = next(line for line in text.splitlines() if line.startswith("yield at ≥4"))
    assert yield4.split()[3:] == ["4", "(67%)", "-"]
    assert "judge:parse_failure  1" in text and "select:too_short  1" in text


def test_torn_last_line_is_skipped_and_a_bad_middle_line_is_named(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "run")
    with (folder / "dataset.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"id": "torn", "instr')
    assert dataset_stats(load_folder(folder)).rows == 4
    lines = (folder / "scored.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(1, "not json\n")
    (folder / "scored.jsonl").write_text("".join(lines), encoding="utf-8")
    with pytest.raises(RunFolderError, match=r"scored\.jsonl:2: not a valid JSON line"):
        load_folder(folder)


def test_a_folder_without_run_files_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an mlift run folder"):
        load_folder(tmp_path)
    with pytest.raises(ConfigError, match="no such folder"):
        load_folder(tmp_path / "missing")


def _run_cli(*argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    report_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_json_output_lists_every_folder(run_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    base = write_baseline(tmp_path / "translate")
    assert _run_cli("report", str(run_dir), str(base), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["run", "translate"]
    assert data[0]["yields"] == {"1": 6, "2": 6, "3": 5, "4": 4, "5": 2}
    assert data[1]["yields"] is None
    assert "char_values" not in data[0]["instruction"]


def test_html_is_self_contained_and_embeds_every_plot(run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib ([report] extra)")
    base = write_baseline(tmp_path / "translate")
    out = tmp_path / "report.html"
    assert _run_cli("report", str(run_dir), str(base), "--html", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "@import" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4  # scores, yield, lengths, tasks
    assert all(base64.b64decode(img).startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    assert "No judge scores in this folder" in page  # the baseline's section says so


def test_html_of_baselines_only_says_there_is_nothing_to_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib ([report] extra)")
    from mlift.report import render_html

    page = render_html([dataset_stats(load_folder(write_baseline(tmp_path / "t")))])
    assert page.count("data:image/png;base64,") == 2  # lengths and tasks
    assert "Score histogram: nothing to plot" in page
