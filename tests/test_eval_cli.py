"""`mlift eval` end to end through the CLI against the simulator (real openai SDK, loopback).

The bundled fixtures (samples/eval, CC0) in hi, te, ja, en and es; two
simulated models answer differently (their answers depend on the model name),
so the side-by-side tables and paired deltas have something to show.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlift.cli import main
from mlift.eval.rouge import RougeScorer

pytestmark = pytest.mark.usefixtures("no_blocking")

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "samples" / "eval"
LANGS = ["hi", "te", "ja", "en", "es"]


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def evaluate(task: str, out: Path, cache: Path, *extra: str, models: tuple[str, ...] = (
        "a=sim:alpha", "b=sim:beta"), langs: list[str] | None = None,
        data: str | None = None) -> int:
    args = ["eval", task, "--out", str(out), "--cache-dir", str(cache), "-q",
            "--data", data or str(DATA / f"{task}.jsonl"), "--lang", *(langs or LANGS)]
    for m in models:
        args += ["--model", m]
    return main([*args, *extra])


def test_mmlu_two_models_side_by_side_with_intervals_and_paired_deltas(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mmlu"
    assert evaluate("mmlu", out, tmp_path / "cache") == 0
    items = rows(out / "items.jsonl")
    assert len(items) == 2 * 20 and {r["model"] for r in items} == {"a", "b"}
    for r in items:
        assert r["prompt"].startswith("eval/mmlu_json@v1#") and r["structured"]
        assert r["scores"]["correct"] == (r["scores"]["answer"] == r["reference"])
        assert r["scores"]["unparsed"] == (r["scores"]["answer"] is None)
    summary = load(out / "summary.json")
    assert summary["task"] == "mmlu" and summary["baseline"] == "a" and summary["complete"]
    assert [g["group"] for g in summary["groups"]] == sorted(LANGS)
    for g in summary["groups"]:
        assert set(g["models"]) == {"a", "b"}
        for label in ("a", "b"):
            mine = [r for r in items if r["model"] == label and r["lang"] == g["lang"]]
            acc = g["models"][label]["metrics"]["accuracy"]
            assert acc["value"] == pytest.approx(
                100 * sum(r["scores"]["correct"] for r in mine) / len(mine))
            assert acc["low"] <= acc["value"] <= acc["high"] and acc["n"] == 4
            unparsed = g["models"][label]["metrics"]["unparsed"]["value"]
            assert unparsed == pytest.approx(
                100 * sum(r["scores"]["unparsed"] for r in mine) / len(mine))
        delta = g["deltas"]["b"]["accuracy"]
        assert delta["value"] == pytest.approx(g["models"]["b"]["metrics"]["accuracy"]["value"]
                                               - g["models"]["a"]["metrics"]["accuracy"]["value"])
        assert delta["low"] <= delta["value"] <= delta["high"] and 0 <= delta["p_value"] <= 1
    # Two simulated models answer differently somewhere.
    a = {r["key"]: r["output"] for r in items if r["model"] == "a"}
    assert any(a[r["key"]] != r["output"] for r in items if r["model"] == "b")
    shown = capsys.readouterr()
    assert "Δ b−a" in shown.out and "requests to make" in shown.err


def test_rerun_sends_nothing_and_a_fresh_folder_is_served_from_the_cache(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = tmp_path / "first", tmp_path / "second"
    assert evaluate("mmlu", first, cache, langs=["hi", "ja"]) == 0
    paid = load(first / "run.json")["accounting"]["totals"]["cost_usd"]
    assert paid > 0
    assert evaluate("mmlu", first, cache, langs=["hi", "ja"]) == 0  # same folder: skipped
    run = load(first / "run.json")
    assert run["this"]["already_done"] == 16
    assert run["this_invocation"]["accounting"]["totals"]["requests"] == 0
    assert len(run["invocations"]) == 2
    assert run["accounting"]["totals"]["cost_usd"] == pytest.approx(paid)  # the ledger's sum
    assert evaluate("mmlu", second, cache, langs=["hi", "ja"]) == 0  # new folder: the cache
    totals = load(second / "run.json")["this_invocation"]["accounting"]["totals"]
    assert totals["requests"] == totals["cache_hits"] == 16 and totals["cost_usd"] == 0
    strip = [{k: v for k, v in r.items() if k != "usage"} for r in rows(first / "items.jsonl")]
    again = [{k: v for k, v in r.items() if k != "usage"} for r in rows(second / "items.jsonl")]
    assert sorted(strip, key=str) == sorted(again, key=str)

    def scores(folder: Path) -> list[Any]:
        return [(g["group"], {m: c["metrics"] for m, c in g["models"].items()}, g["deltas"])
                for g in load(folder / "summary.json")["groups"]]

    assert scores(first) == scores(second)


def test_xlsum_scores_each_summary_with_multilingual_rouge(tmp_path: Path) -> None:
    out = tmp_path / "xlsum"
    assert evaluate("xlsum", out, tmp_path / "cache") == 0
    items = rows(out / "items.jsonl")
    assert len(items) == 2 * 10
    for r in items:
        expected = RougeScorer(r["lang"]).score(r["reference"], r["output"]).scores
        assert r["scores"] == {k: pytest.approx(100 * v, abs=1e-4) for k, v in expected.items()}
    summary = load(out / "summary.json")
    for g in summary["groups"]:
        r1 = g["models"]["a"]["metrics"]["rouge1"]["value"]
        assert 0 < r1 < 100  # the sim's lead sentences overlap the reference in every script
    assert "mecab" in summary["signatures"]["rouge[ja]"]


@pytest.fixture
def toy_spm(tmp_path: Path) -> Path:
    sentencepiece = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(v for row in rows(DATA / "flores.jsonl") for k, v in row.items()
                                if k.startswith("sentence_")) + "\n", encoding="utf-8")
    sentencepiece.SentencePieceTrainer.Train(
        input=str(corpus), model_prefix=str(tmp_path / "toy"), vocab_size=250,
        hard_vocab_limit=False, character_coverage=1.0, minloglevel=2)
    return tmp_path / "toy.model"


def test_flores_both_directions_with_chrf_and_spbleu(tmp_path: Path, toy_spm: Path) -> None:
    out = tmp_path / "flores"
    assert evaluate("flores", out, tmp_path / "cache", "--spm-model", str(toy_spm),
                    models=("sim:alpha",), langs=["hi", "te"]) == 0
    items = rows(out / "items.jsonl")
    assert sorted({r["direction"] for r in items}) == ["en-hi", "en-te", "hi-en", "te-en"]
    assert len(items) == 4 * 5
    en_hi = next(r for r in items if r["direction"] == "en-hi" and r["id"] == "1")
    assert en_hi["reference"] == "पुस्तकालय सुबह नौ बजे खुलता है।"
    summary = load(out / "summary.json")
    assert summary["metrics"] == ["chrf++", "spbleu"]
    for g in summary["groups"]:
        assert set(g["models"]["sim:alpha"]["metrics"]) == {"chrf++", "spbleu"}
    assert "tok:flores200" in summary["signatures"]["spbleu"]
    assert "sha256:" in summary["signatures"]["spm_model"]


def test_flores_without_the_spm_model_fails_before_any_request(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "flores"
    code = evaluate("flores", out, tmp_path / "cache", "--spm-model",
                    str(tmp_path / "missing.model"), models=("sim:alpha",), langs=["hi"])
    assert code == 2
    assert "--metrics chrf++" in capsys.readouterr().err
    assert not out.exists()
    assert evaluate("flores", out, tmp_path / "cache", "--metrics", "chrf++",
                    models=("sim:alpha",), langs=["hi"]) == 0
    assert load(out / "summary.json")["metrics"] == ["chrf++"]


def test_estimate_prints_the_cost_and_sends_nothing(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mmlu"
    assert evaluate("mmlu", out, tmp_path / "cache", "--estimate") == 0
    err = capsys.readouterr().err
    assert "40 requests to make (0 cached" in err and "input tokens" in err
    assert not out.exists()
    assert evaluate("mmlu", out, tmp_path / "cache") == 0
    assert evaluate("mmlu", tmp_path / "other", tmp_path / "cache", "--estimate") == 0
    assert "40 requests to make (40 cached" in capsys.readouterr().err


def test_few_shot_examples_come_from_the_dev_rows_never_the_question_itself(
        tmp_path: Path) -> None:
    out = tmp_path / "mmlu"
    assert evaluate("mmlu", out, tmp_path / "cache", "--shots", "2", "--shots-data",
                    str(DATA / "mmlu_dev.jsonl"), langs=["hi"]) == 0
    items = rows(out / "items.jsonl")
    # The simulator enforces schemas, so MMLU goes out as the schema variant.
    assert {r["prompt"].split("@")[0] for r in items} == {"eval/mmlu_json"}
    assert all(r["structured"] and r["output"].startswith('{"answer"') for r in items)
    run = load(out / "run.json")
    assert any(s.get("role") == "shots" for s in run["data"])
    # Zero-shot into the same folder would mix two protocols: refused, saying why;
    # --new-generation keeps the few-shot run under generations/1 and starts afresh.
    assert evaluate("mmlu", out, tmp_path / "cache", langs=["hi"]) == 2
    assert evaluate("mmlu", out, tmp_path / "cache", "--new-generation", langs=["hi"]) == 0
    assert len(rows(out / "generations" / "1" / "items.jsonl")) == len(items)
    assert all("Answer: " not in json.dumps(r) for r in rows(out / "items.jsonl"))


def test_few_shot_prompt_shows_solved_examples_of_the_same_subject_first() -> None:
    from mlift.eval.data import read_file
    from mlift.eval.mmlu import MmluTask

    task = MmluTask(shots=2, shot_rows=[read_file(DATA / "mmlu_dev.jsonl")])
    items = task.load([read_file(DATA / "mmlu.jsonl")], ["ja"]).items
    astronomy = next(i for i in items if "惑星" in i.variables["question"])
    examples = astronomy.variables["examples"]
    assert examples.startswith("Question: 地球の衛星はいくつあるか。")  # same subject first
    assert examples.count("Answer: ") == 2 and "惑星" not in examples
    zero = MmluTask().load([read_file(DATA / "mmlu.jsonl")], ["ja"]).items
    loo = MmluTask(shots=3).load([read_file(DATA / "mmlu.jsonl")], ["ja"]).items
    assert all(i.variables["examples"] == "" for i in zero)
    for item in loo:  # without dev rows: other test questions, never the item itself
        assert item.variables["question"] not in item.variables["examples"]


def test_a_label_reused_for_another_model_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mmlu"
    assert evaluate("mmlu", out, tmp_path / "cache", models=("a=sim:alpha",),
                    langs=["hi"]) == 0
    assert evaluate("mmlu", out, tmp_path / "cache", models=("a=sim:gamma",),
                    langs=["hi"]) == 2
    assert "already used for another model" in capsys.readouterr().err
    # A new label joins the comparison in the same folder.
    assert evaluate("mmlu", out, tmp_path / "cache", models=("c=sim:gamma",),
                    langs=["hi"]) == 0
    summary = load(out / "summary.json")
    assert set(summary["models"]) == {"a", "c"} and "c" in summary["groups"][0]["deltas"]


def test_bad_rows_are_reported_by_file_line_and_field_and_the_rest_is_evaluated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "xlsum.jsonl"
    good = rows(DATA / "xlsum.jsonl")[:2]  # the two Hindi items
    lines = [json.dumps(good[0], ensure_ascii=False), '{"id": "torn", "text": ',
             json.dumps({"id": "no-summary", "lang": "hi", "text": "कुछ पाठ।"}),
             json.dumps({**good[1], "summary": ["not", "text"]}, ensure_ascii=False)]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert evaluate("xlsum", out, tmp_path / "cache", models=("sim:alpha",), langs=["hi"],
                    data=str(src)) == 0
    assert len(rows(out / "items.jsonl")) == 1
    invalid = {r["line"]: (r["field"], r["code"]) for r in rows(out / "invalid.jsonl")}
    assert invalid == {2: (None, "bad_json"), 3: ("summary", "missing_field"),
                       4: ("summary", "bad_type")}
    assert f"{src}:2" in capsys.readouterr().err


def test_no_valid_item_for_a_language_fails_before_any_request(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert evaluate("xlsum", out, tmp_path / "cache", langs=["hi", "ta"]) == 2
    assert "no valid items for ta" in capsys.readouterr().err and not out.exists()


def test_budget_cap_stops_cleanly_and_the_next_run_finishes(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert evaluate("mmlu", out, cache, "--max-cost", "0", langs=["hi"]) == 4
    run = load(out / "run.json")
    assert run["stopped_early"] and not rows(out / "items.jsonl")
    assert evaluate("mmlu", out, cache, langs=["hi"]) == 0
    assert len(rows(out / "items.jsonl")) == 8 and load(out / "summary.json")["complete"]
    assert len(load(out / "run.json")["invocations"]) == 2


def test_hub_loading_records_dataset_config_and_split(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    repo = tmp_path / "global-mmlu"
    configs = []
    for lang in ("hi", "te"):
        (repo / lang).mkdir(parents=True)
        mine = [{k: v for k, v in r.items() if k != "lang"} for r in rows(DATA / "mmlu.jsonl")
                if r["lang"] == lang]
        (repo / lang / "test.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mine), encoding="utf-8")
        configs.append(f"- config_name: {lang}\n  data_files:\n  - split: test\n"
                       f"    path: {lang}/test.jsonl\n")
    (repo / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n",
                                    encoding="utf-8")
    out = tmp_path / "out"
    assert main(["eval", "mmlu", "--model", "sim:alpha", "--lang", "hi", "te", "--hub",
                 str(repo), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "-q"]) == 0
    data = load(out / "run.json")["data"]
    assert [(d["dataset"], d["config"], d["split"]) for d in data] == [
        (str(repo), "hi", "test"), (str(repo), "te", "test")]
    assert len(rows(out / "items.jsonl")) == 8


def test_report_shows_eval_folders_as_text_and_html(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mmlu"
    assert evaluate("mmlu", out, tmp_path / "cache", langs=["hi", "te"]) == 0
    capsys.readouterr()
    page = tmp_path / "report.html"
    assert main(["report", str(out), "--html", str(page)]) == 0
    text = capsys.readouterr().out
    assert "mlift eval mmlu" in text and "Δ b−a" in text and "accuracy" in text
    html = page.read_text(encoding="utf-8")
    assert "<h2>Eval: mmlu" in html and "Δ b−a" in html and "<script" not in html


def test_schema_variant_only_where_the_endpoint_enforces_schemas(tmp_path: Path) -> None:
    config = tmp_path / "mlift.toml"
    config.write_text('[providers.plain]\nkind = "sim"\nstructured_outputs = false\n',
                      encoding="utf-8")
    out = tmp_path / "mmlu"
    assert evaluate("mmlu", out, tmp_path / "cache", "--config", str(config),
                    models=("json=sim:alpha", "text=plain:beta"), langs=["hi"]) == 0
    prompts = {(r["model"], r["prompt"].split("@")[0], bool(r["structured"]))
               for r in rows(out / "items.jsonl")}
    assert prompts == {("json", "eval/mmlu_json", True), ("text", "eval/mmlu", False)}
    summary = load(out / "summary.json")
    cells = summary["groups"][0]["models"]
    assert (cells["json"]["structured"], cells["text"]["structured"]) == (4, 0)
    # Both variants are part of the folder's identity, so either joins later.
    assert set(load(out / "manifest.json")["identity"]["prompts"]) == {"eval/mmlu",
                                                                       "eval/mmlu_json"}
