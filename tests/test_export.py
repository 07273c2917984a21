"""``mlift export``: every format's shape, the OpenAI validator, the HF folder and the card."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from test_report import write_baseline, write_run

from mlift.cli import export as export_cli
from mlift.errors import ConfigError, InputError
from mlift.export import export, validate_openai_chat


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


def _run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    export_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_every_line_of_the_openai_export_validates(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "train.jsonl"
    assert _run_cli("export", str(run_dir), "--format", "openai-chat", "--out", str(out),
                    "--system", "You answer in the user's language.") == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4
    assert lines[2] == {"messages": [
        {"role": "system", "content": "You answer in the user's language."},
        {"role": "user", "content": "月を説明して"},
        {"role": "assistant", "content": "月は明るい。"}]}
    assert validate_openai_chat(out) == []


def test_validator_names_each_bad_line(tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"}]}
    bad = [
        {"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"},
                      {"role": "assistant", "content": "b"}]},
        {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]},
        {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]},
        {"prompt": "x", "completion": "y"},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join([json.dumps(good), *map(json.dumps, bad), "{not json"]) + "\n",
                    encoding="utf-8")
    problems = validate_openai_chat(path)
    by_line = {int(p.split(":")[1]) for p in problems}
    assert by_line == {2, 3, 4, 5, 6, 7, 8}
    text = "\n".join(problems)
    assert "role 'human' is not one of" in text
    assert "content is empty" in text
    assert "exactly one assistant message, found 2" in text
    assert "the assistant message must be the last one" in text
    assert "content must be a string, got int" in text
    assert "unexpected top-level key 'prompt'" in text
    assert "not valid JSON" in text


def test_validator_flags_examples_over_a_token_limit(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "word " * 200},
                                             {"role": "assistant", "content": "ok"}]}) + "\n",
                    encoding="utf-8")
    assert validate_openai_chat(path) == []
    (problem,) = validate_openai_chat(path, max_tokens=50)
    assert "more than 50" in problem


def test_alpaca_is_a_json_array_of_instruction_input_output(run_dir: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "alpaca.json"
    result = export(run_dir, "alpaca", out)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert result.rows == 4 and isinstance(data, list) and len(data) == 4
    assert data[0] == {"instruction": "Explica el sol.", "input": "", "output": "El sol brilla."}


@pytest.mark.parametrize("name", ["share.json", "share.jsonl"])
def test_sharegpt_has_human_then_gpt_turns(run_dir: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    export(run_dir, "sharegpt", out, system="Be brief.")
    text = out.read_text(encoding="utf-8")
    records = (json.loads(text) if name.endswith(".json")
               else [json.loads(line) for line in text.splitlines()])
    assert len(records) == 4
    assert records[1] == {"id": "b", "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Explica la luna."},
        {"from": "gpt", "value": "La luna gira."}]}


def test_card_lists_languages_licences_models_and_threshold(run_dir: Path,
                                                            tmp_path: Path) -> None:
    result = export(run_dir, "openai-chat", tmp_path / "x" / "train.jsonl")
    card = result.card.read_text(encoding="utf-8")
    assert result.card == tmp_path / "x" / "README.md"
    assert '- "es"' in card and '- "ja"' in card and "| Japanese | ja | 1 |" in card
    assert "| CC0-1.0 | 2 |" in card and "| CC-BY-4.0 | 1 |" in card
    assert "| (unknown) | 1 |" in card and "1 rows carry no licence" in card
    assert "license: unknown" in card
    assert "| judge | anthropic:claude-3-5-haiku-latest | 4 |" in card
    assert "min score λ): 4" in card and "arXiv:2407.01853" in card
    assert "instruct/explain@v1#0123456789ab" in card
    assert "8 input records → 4 kept, 2 below the threshold, 2 rejected" in card


def test_card_of_a_baseline_says_it_is_not_scored(tmp_path: Path) -> None:
    result = export(write_baseline(tmp_path / "t"), "alpaca", tmp_path / "o" / "a.json")
    card = result.card.read_text(encoding="utf-8")
    assert "translation-based baseline" in card and "Judge threshold: none" in card
    assert "license: unknown" in card


def test_hf_export_loads_with_load_from_disk_and_parquet(run_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the hf export needs the [export] extra")
    pq = pytest.importorskip("pyarrow.parquet", reason="the hf export needs the [export] extra")
    out = tmp_path / "hf"
    result = export(run_dir, "hf", out, system="sys")
    ds = datasets.load_from_disk(str(out))
    assert ds.num_rows == 4
    assert ds[2]["lang"] == "ja" and ds[2]["score"] == 4 and ds[2]["license"] is None
    assert ds[0]["messages"][1] == {"role": "user", "content": "Explica el sol."}
    assert ds[0]["prompt"] == "instruct/explain@v1#0123456789ab"
    assert pq.read_table(out / "data" / "train-00000-of-00001.parquet").num_rows == 4
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "path: \"data/train-00000-of-00001.parquet\"" in card
    assert "README.md" in result.files


def test_hf_export_without_datasets_names_the_extra(run_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # what an absent package looks like
    with pytest.raises(ConfigError, match=r"pip install 'mlift\[export\]'"):
        export(run_dir, "hf", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_existing_output_needs_overwrite(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    out.write_text("keep me", encoding="utf-8")
    with pytest.raises(ConfigError, match="--overwrite"):
        export(run_dir, "alpaca", out)
    assert out.read_text(encoding="utf-8") == "keep me"
    export(run_dir, "alpaca", out, overwrite=True)
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 4


def test_a_readme_not_written_by_mlift_is_kept(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("my notes", encoding="utf-8")
    with pytest.raises(ConfigError, match="not written by mlift"):
        export(run_dir, "alpaca", tmp_path / "a.json")
    assert not (tmp_path / "a.json").exists()


def test_a_row_without_a_response_names_file_line_and_field(run_dir: Path,
                                                             tmp_path: Path) -> None:
    path = run_dir / "dataset.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[2])
    row["response"] = ""
    lines[2] = json.dumps(row, ensure_ascii=False) + "\n"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(InputError, match=r"dataset\.jsonl:3: field 'response'"):
        export(run_dir, "openai-chat", tmp_path / "t.jsonl")


def test_alpaca_has_no_place_for_a_system_message(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--system"):
        export(run_dir, "alpaca", tmp_path / "a.json", system="hi")
