"""`mlift baseline template`: templates in the target language filled with NLP fields (no calls)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mlift.baselines import TemplateOptions, draw_template, load_templates, run_template_baseline
from mlift.baselines.template import TASKS, available_languages
from mlift.cli import main
from mlift.errors import ConfigError, PromptError, UnknownNameError
from mlift.langs import get_language, script_profile

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

ROOT = Path(__file__).resolve().parent.parent
NLP = ROOT / "samples" / "nlp"
LANGS = ("hi", "te", "ja", "es")


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def template(*args: str) -> int:
    return main(["baseline", "template", *args])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_has_at_least_three_native_templates_per_language(task: str) -> None:
    assert set(available_languages(task)) >= {"en", *LANGS}
    for code in LANGS:
        tset = load_templates(task, code)
        assert len(tset.templates) >= 3
        lang = get_language(code)
        for t in tset.templates:
            words = t.text
            for var in TASKS[task].context:
                words = words.replace("{" + var + "}", "")
            profile = script_profile(words)
            assert sum(profile.get(s, 0.0) for s in lang.scripts) > 0.9, t.ref
        assert len({t.text for t in tset.templates}) == len(tset.templates)


@pytest.mark.parametrize(("task", "response", "context"), [
    ("summarization", "summary", ("article",)),
    ("qa", "answer", ("context", "question")),
    ("title", "title", ("article",)),
])
@pytest.mark.parametrize("lang", LANGS)
def test_fills_templates_with_the_original_fields(tmp_path: Path, task: str, response: str,
                                                  context: tuple[str, ...], lang: str) -> None:
    src, out = NLP / task / f"{lang}.jsonl", tmp_path / "out"
    assert template(str(src), "--lang", lang, "--task", task, "--out", str(out)) == 0
    originals = {r["id"]: r for r in rows(src)}
    dataset = rows(out / "dataset.jsonl")
    assert len(dataset) == len(originals) and not rows(out / "rejects.jsonl")
    refs = {t.ref for t in load_templates(task, lang).templates}
    for row in dataset:
        rec = originals[row["id"]]
        assert row["response"] == rec[response]
        assert all(rec[c] in row["instruction"] for c in context)
        assert row["template"] in refs and row["template"].startswith(f"{task}/{lang}/")
        assert row["task"] == task and row["lang"] == lang and row["models"] == {}
        assert row["source"] == {"file": str(src), "line": row["source"]["line"],
                                 "offset": row["source"]["offset"], "dataset": f"{lang}.jsonl"}
    funnel = json.loads((out / "run.json").read_text(encoding="utf-8"))["funnel"]
    assert funnel["input"] == funnel["kept"] == 8 and funnel["balanced"] is True
    assert sum(funnel["by_template"].values()) == 8


def test_draw_is_deterministic_per_seed_and_id_and_spreads_across_templates() -> None:
    templates = load_templates("summarization", "hi").templates
    ids = [f"item-{i}" for i in range(400)]
    first = [draw_template(7, i, templates).ref for i in ids]
    assert first == [draw_template(7, i, templates).ref for i in reversed(ids)][::-1]
    counts = Counter(first)
    assert set(counts) == {t.ref for t in templates}
    assert min(counts.values()) > 400 / len(templates) / 2  # roughly even
    other = [draw_template(8, i, templates).ref for i in ids]
    assert other != first


def test_rerun_skips_finished_ids_and_writes_nothing_new(tmp_path: Path) -> None:
    src, out = NLP / "qa" / "te.jsonl", tmp_path / "out"
    args = (str(src), "--lang", "te", "--task", "qa", "--out", str(out), "--seed", "3")
    assert template(*args) == 0
    before = (out / "dataset.jsonl").read_bytes()
    lines = before.decode().splitlines(keepends=True)
    (out / "dataset.jsonl").write_text("".join(lines[:5]) + lines[5][:30], encoding="utf-8")
    assert template(*args) == 0  # a torn run finishes with the same rows
    assert (out / "dataset.jsonl").read_bytes() == before
    assert template(*args) == 0
    assert (out / "dataset.jsonl").read_bytes() == before
    funnel = json.loads((out / "run.json").read_text(encoding="utf-8"))["funnel"]
    assert funnel["already_done"] == 8 and funnel["balanced"]


def test_bad_lines_and_missing_fields_become_rejects_naming_file_and_line(
        tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out"
    good = {"id": "g1", "lang": "es", "article": "Un artículo largo.", "summary": "Resumen."}
    lines = [json.dumps(good, ensure_ascii=False), "{not json",
             json.dumps({"id": "g2", "article": "Otro artículo."}),
             json.dumps({"id": "g3", "lang": "es", "summary": "Sin artículo."}),
             json.dumps({"id": "g4", "lang": "hi", "article": "लेख", "summary": "सार"},
                        ensure_ascii=False)]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert template(str(src), "--lang", "es", "--task", "summarization", "--out", str(out)) == 0
    assert [r["id"] for r in rows(out / "dataset.jsonl")] == ["g1"]
    rejects = {r["source"]["line"]: r for r in rows(out / "rejects.jsonl")}
    assert {n: (r["code"], r["source"].get("field")) for n, r in rejects.items()} == {
        2: ("bad_json", None), 3: ("missing_field", "summary"),
        4: ("missing_field", "article"), 5: ("wrong_lang", None)}
    for r in rejects.values():
        assert r["source"]["file"] == str(src) and f"{src}:{r['source']['line']}" in r["detail"]


def test_field_names_are_configurable(tmp_path: Path) -> None:
    src, out = tmp_path / "xlsum.jsonl", tmp_path / "out"
    src.write_text(json.dumps({"id": "x1", "text": "記事の本文です。", "highlights": "要約です。"},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    assert template(str(src), "--lang", "ja", "--task", "summarization", "--out", str(out),
                    "--field", "article=text", "--field", "summary=highlights") == 0
    [row] = rows(out / "dataset.jsonl")
    assert "記事の本文です。" in row["instruction"] and row["response"] == "要約です。"


def test_unknown_language_task_or_field_fails_before_writing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = NLP / "qa" / "hi.jsonl", tmp_path / "out"
    assert template(str(src), "--lang", "fr", "--task", "qa", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "no qa templates in French (fr)" in err and "en, es, hi, ja, te" in err
    assert template(str(src), "--lang", "hi", "--task", "qa", "--field", "passage=context",
                    "--out", str(out)) == 2
    assert "unknown qa variable 'passage'" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(UnknownNameError, match="Did you mean 'title'"):
        asyncio.run(run_template_baseline(TemplateOptions(inputs=(src,), out_dir=out,
                                                          lang="hi", task="titel")))
    with pytest.raises(ConfigError, match="templates exist for"):
        load_templates("summarization", "de")


def test_user_templates_add_languages_and_bad_files_name_the_field(tmp_path: Path) -> None:
    folder = tmp_path / "tpl" / "title" / "de"
    folder.mkdir(parents=True)
    (folder / "v1.toml").write_text(
        'task = "title"\nlang = "de"\nversion = 1\ndescription = "German headlines"\n\n'
        '[[templates]]\nname = "headline"\ntext = "Schreibe eine Überschrift:\\n\\n{article}"\n',
        encoding="utf-8")
    tset = load_templates("title", "de", [tmp_path / "tpl"])
    assert [t.ref.split("#")[0] for t in tset.templates] == ["title/de/headline@v1"]
    (folder / "v2.toml").write_text(
        'task = "title"\nlang = "de"\nversion = 2\ndescription = "x"\n\n'
        '[[templates]]\nname = "bad"\ntext = "Überschrift für {artikel}"\n', encoding="utf-8")
    with pytest.raises(PromptError, match=r"templates\[0\]\.text.*\{article\}"):
        load_templates("title", "de", [tmp_path / "tpl"])
