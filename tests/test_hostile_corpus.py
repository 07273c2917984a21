"""`mlift run` over a hostile corpus on the simulator: it completes, and nothing is lost.

The corpus (tests/hostile_corpus.py, generated at test time) is 48 files,
each good records plus one kind of damage, all given to one run; and 7 files
with a whole-file problem, each of which must stop its run before the first
request with a message naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hostile_corpus import Corpus, build
from sources_contract import drain

from mlift.cli import main
from mlift.errors import InputError
from mlift.pipeline.sources import Record

# Input reject codes that are about one field, so the reject must name it.
FIELD_CODES = {"missing_field", "bad_type", "empty_text", "bad_text", "missing_lang",
               "unknown_language", "duplicate_id"}
ENGINE = ["--provider", "sim:default", "-q"]


def mlift(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(args))
    return code, err.getvalue()


def rows(path: Path) -> list[dict[str, Any]]:
    def strict(name: str) -> None:
        raise AssertionError(f"{path.name}: {name} is not JSON")

    if not path.exists():
        return []
    # Strict UTF-8 and strict JSON: what any other tool reading the run folder needs.
    text = path.read_bytes().decode("utf-8")
    return [json.loads(line, parse_constant=strict) for line in text.splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return build(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def run(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, Path]:
    work = tmp_path_factory.mktemp("hostile-run")
    out, cache = work / "out", work / "cache"
    code, _ = mlift("run", *map(str, corpus.inputs), "--lang", "en", "--out", str(out),
                    "--cache-dir", str(cache), *ENGINE)
    return code, out, cache


def read_all(corpus: Corpus) -> list[Record | InputError]:
    items: list[Record | InputError] = []
    for path in corpus.inputs:
        got = drain(path, default_lang="en")
        assert got is not None, path
        items += got
    return items


def test_the_corpus_is_at_least_forty_hostile_files(corpus: Corpus) -> None:
    assert len(corpus.inputs) >= 40
    assert len({p.name for p in corpus.inputs}) == len(corpus.inputs)


def test_the_run_completes_and_every_record_ends_in_exactly_one_place(
        corpus: Corpus, run: tuple[int, Path, Path]) -> None:
    code, out, _ = run
    assert code == 0
    funnel = json.loads((out / "run.json").read_text(encoding="utf-8"))["funnel"]
    kept = [r["id"] for r in rows(out / "dataset.jsonl")]
    below = [r["id"] for r in rows(out / "scored.jsonl") if r["score"] < 4]
    rejected = [r["id"] for r in rows(out / "rejects.jsonl")]
    for ids in (kept, below, rejected):
        assert len(ids) == len(set(ids))
    assert not (set(kept) & set(below) or set(kept) & set(rejected) or set(below) & set(rejected))
    items = read_all(corpus)
    assert funnel["balanced"] is True
    assert funnel["input"] == len(items) == len(kept) + len(below) + len(rejected)
    assert kept and below and rejected
    placed = set(kept) | set(below) | set(rejected)
    assert all(r.id in placed for r in items if isinstance(r, Record))


def _bad_id(error: InputError) -> str:
    """The id a reject of an unreadable line is filed under (mlift.pipeline.runner)."""
    return error.record_id or "bad-" + hashlib.sha256(
        f"{error.file}:{error.line}".encode()).hexdigest()[:12]


def test_every_bad_item_is_a_reject_naming_file_line_and_field(
        corpus: Corpus, run: tuple[int, Path, Path]) -> None:
    _, out, _ = run
    rejects = rows(out / "rejects.jsonl")
    files = {str(p) for p in corpus.inputs}
    for r in rejects:
        assert r["source"]["file"] in files, r
        assert isinstance(r["source"]["line"], int) and r["source"]["line"] >= 1, r
        assert r["detail"], r
    by_place = {(r["source"]["file"], r["source"]["line"]): r for r in rejects
                if r["stage"] == "input"}
    errors = [e for e in read_all(corpus) if isinstance(e, InputError)]
    assert len(by_place) == len(errors)
    for e in errors:
        r = by_place[(e.file, e.line)]
        assert (r["id"], r["code"], r["source"]["field"]) == (_bad_id(e), e.code, e.field)
        assert f"{e.file}:{e.line}:" in r["detail"]
        if e.code in FIELD_CODES:
            assert r["source"]["field"], r
    # Damage of every kind the corpus holds came out as its own reject.
    codes = {r["code"] for r in rejects}
    assert {"too_deep", "bad_text", "bad_json", "bad_utf8", "not_utf8", "record_too_large",
            "truncated", "corrupt", "not_jsonl", "not_object", "bad_csv", "duplicate_id",
            "missing_field", "empty_text", "bad_type", "unknown_language"} <= codes


def test_readable_records_with_a_bad_field_are_filed_under_their_own_id(
        corpus: Corpus, run: tuple[int, Path, Path]) -> None:
    _, out, _ = run
    rejects = {r["id"]: r for r in rows(out / "rejects.jsonl")}
    expected = corpus.own_id_rejects
    assert len(expected) >= 15
    got = {i: (rejects[i]["stage"], rejects[i]["code"]) for i in expected if i in rejects}
    assert got == {i: ("input", code) for i, code in expected.items()}


def test_cleaned_fields_reach_the_output_as_valid_json(run: tuple[int, Path, Path]) -> None:
    _, out, _ = run
    written = {r["id"]: r for name in ("dataset.jsonl", "scored.jsonl")
               for r in rows(out / name)}
    carried = written["surrogate_carried-x"]["fields"]
    assert carried == {"url\ufffd": "http://x/\ufffd", "tags": [["\ufffd"]]}
    assert written["nan_inf-x"]["fields"] == {"a": None, "b": [None, None]}
    assert written["huge_numbers-7"]["fields"]["big"] == int("9" * 4_000)
    assert "surrogate_pairs-😀" in written


def test_a_rerun_sends_nothing_and_changes_nothing(corpus: Corpus,
                                                   run: tuple[int, Path, Path]) -> None:
    _, out, cache = run
    before = {n: (out / n).read_bytes() for n in ("dataset.jsonl", "scored.jsonl",
                                                  "rejects.jsonl")}
    code, _ = mlift("run", *map(str, corpus.inputs), "--lang", "en", "--out", str(out),
                    "--cache-dir", str(cache), *ENGINE)
    assert code == 0
    assert {n: (out / n).read_bytes() for n in before} == before
    run_json = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run_json["this_invocation"]["accounting"]["totals"]["requests"] == 0


def test_a_file_with_a_whole_file_problem_stops_its_run_before_any_request(
        corpus: Corpus, tmp_path: Path) -> None:
    assert len(corpus.refused) >= 7
    for path, match in corpus.refused:
        out = tmp_path / path.name
        code, err = mlift("run", str(path), "--lang", "en", "--out", str(out), *ENGINE)
        assert code == 2, (path, err)
        assert path.name in err and match in err, err
        assert not (out / "rejects.jsonl").exists()
