"""Run folders you can trust: identity, generations, the ledger, the budget across invocations,
provider failures retried, and the commands that read folders refusing the wrong kind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSim

from mlift.cli import main
from mlift.records import DatasetRow, Reject, ScoredPair, iter_records
from mlift.sim import SimConfig

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def subset(tmp_path: Path, n: int = 4, langs: tuple[str, ...] = ("hi", "ja")) -> list[str]:
    files = []
    for lang in langs:
        lines = (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        path = tmp_path / f"{lang}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(str(path))
    return files


def run(*args: str) -> int:
    return main(["run", *args, "-q"])


def run_json(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return data


def ids(path: Path, cls: type[Any]) -> list[str]:
    return [r.id for r in iter_records(path, cls)]


def test_another_judge_on_an_old_folder_is_refused_with_what_differs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path)
    assert run(*inputs, "--out", str(out), "--cache-dir", cache) == 0
    before = (out / "scored.jsonl").read_bytes()
    capsys.readouterr()
    code = run(*inputs, "--out", str(out), "--cache-dir", cache, "--judge", "sim:other-judge")
    err = capsys.readouterr().err
    assert code == 2
    assert "models.judge: was sim:default, now sim:other-judge" in err
    assert "--new-generation" in err and "new --out folder" in err
    assert (out / "scored.jsonl").read_bytes() == before  # nothing was touched
    # The same for another judge prompt, and for a changed input file.
    assert run(*inputs, "--out", str(out), "--cache-dir", cache,
               "--judge-prompt", "judge/fit_line") == 2
    assert "prompts.judge: was judge/fit@" in capsys.readouterr().err


def test_settings_that_do_not_change_outputs_may_change_on_resume(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path)
    assert run(*inputs, "--out", str(out), "--cache-dir", cache) == 0
    assert run(*inputs, "--out", str(out), "--cache-dir", cache, "--min-score", "3",
               "--concurrency", "3", "--rpm", "100000", "--max-cost", "5") == 0
    assert run_json(out)["funnel"]["balanced"] is True


def test_new_generation_keeps_the_old_rows_apart(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path)
    assert run(*inputs, "--out", str(out), "--cache-dir", cache) == 0
    old = (out / "scored.jsonl").read_bytes()
    assert run(*inputs, "--out", str(out), "--cache-dir", cache, "--judge", "sim:other-judge",
               "--new-generation") == 0
    assert (out / "generations" / "1" / "scored.jsonl").read_bytes() == old
    judges = {p.models["judge"] for p in iter_records(out / "scored.jsonl", ScoredPair)}
    assert judges == {"sim:other-judge"}  # the new generation was made by the new judge only
    info = run_json(out)
    assert info["generation"] == 2 and info["funnel"]["balanced"] is True
    assert info["identity"]["models"]["judge"] == "sim:other-judge"


def test_ledger_totals_across_three_invocations_equal_their_sum(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path, n=6)
    # Three invocations, each paying for part of the work: a budget stop, then more budget.
    for cap in ("0.002", "0.004", "1"):
        run(*inputs, "--out", str(out), "--cache-dir", cache, "--max-cost", cap)
    info = run_json(out)
    spent = [inv["cost_usd"] for inv in info["invocations"]]
    assert len(spent) == 3 and all(s > 0 for s in spent)
    assert info["accounting"]["totals"]["cost_usd"] == pytest.approx(sum(spent))
    requests = sum(inv["requests"] for inv in info["invocations"])
    assert info["accounting"]["totals"]["requests"] == requests
    assert info["this_invocation"]["accounting"]["totals"]["cost_usd"] == pytest.approx(spent[2])
    assert info["funnel"]["balanced"] is True


def test_max_cost_caps_the_run_total_across_invocations(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path, n=6)
    assert run(*inputs, "--out", str(out), "--cache-dir", cache, "--max-cost", "0.002") == 4
    first = run_json(out)["accounting"]["totals"]["cost_usd"]
    assert 0 < first <= 0.002
    assert run(*inputs, "--out", str(out), "--cache-dir", cache, "--max-cost", "0.004") == 4
    total = run_json(out)["accounting"]["totals"]["cost_usd"]
    assert first < total <= 0.004  # not 0.002 + 0.004
    # The same cap again: only requests that fit in what is left may go.
    for _ in range(2):
        run(*inputs, "--out", str(out), "--cache-dir", cache, "--max-cost", "0.004")
        assert run_json(out)["accounting"]["totals"]["cost_usd"] <= 0.004


def test_the_summary_says_which_cost_is_which(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path, n=6)
    run(*inputs, "--out", str(out), "--cache-dir", cache, "--max-cost", "0.002")
    capsys.readouterr()
    run(*inputs, "--out", str(out), "--cache-dir", cache, "--max-cost", "0.004")
    err = capsys.readouterr().err
    assert "this invocation" in err and "over all invocations" in err
    assert "--max-cost $0.0040 caps the total" in err
    assert "not processed yet" in err and "stopped early" in err
    assert "MISMATCH" not in err


def test_wrong_base_url_then_right_url_processes_every_item(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    sim = remote_sim(SimConfig())
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path, n=3)
    common = ("--out", str(out), "--cache-dir", cache, "--provider", "openai:gpt-4o-mini")
    wrong = run(*inputs, *common, "--base-url", sim.url + "/wrong/v1")
    assert wrong != 0
    # Whatever became of the items that failed, the right URL finishes all of them.
    capsys.readouterr()
    assert run(*inputs, *common, "--base-url", sim.url + "/v1") == 0
    info = run_json(out)
    assert info["funnel"]["balanced"] is True and info["funnel"]["input"] == 6
    assert info["funnel"]["rejected"] == 0
    assert not [r for r in iter_records(out / "rejects.jsonl", Reject) if r.retry]
    assert len(ids(out / "scored.jsonl", ScoredPair)) == 6


def test_provider_failures_are_retried_on_the_next_run_and_item_faults_stay(
        tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    inputs = subset(tmp_path, n=2)
    assert run(*inputs, "--out", str(out), "--no-cache") == 0
    kept = ids(out / "dataset.jsonl", DatasetRow)
    # Turn one finished item into a provider-failure reject and one into an item fault.
    rows = list(iter_records(out / "dataset.jsonl", DatasetRow))
    (out / "dataset.jsonl").write_text("".join(
        json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows[2:]), encoding="utf-8")
    with (out / "rejects.jsonl").open("a", encoding="utf-8") as fh:
        for r, retry in ((rows[0], True), (rows[1], False)):
            reject = Reject(id=r.id, lang=r.lang, stage="back", code="provider_ServerError"
                            if retry else "wrong_script", detail="x", retry=retry)
            fh.write(json.dumps(reject.to_json()) + "\n")
    scored = [p for p in iter_records(out / "scored.jsonl", ScoredPair)
              if p.id not in (rows[0].id, rows[1].id)]
    (out / "scored.jsonl").write_text("".join(
        json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in scored), encoding="utf-8")
    assert run(*inputs, "--out", str(out), "--no-cache") == 0
    info = run_json(out)
    assert info["funnel"]["retried_provider_failures"] == 1
    assert rows[0].id in ids(out / "dataset.jsonl", DatasetRow)   # tried again, kept
    assert rows[1].id in ids(out / "rejects.jsonl", Reject)       # the item's own fault stays
    assert rows[1].id not in ids(out / "dataset.jsonl", DatasetRow)
    assert sorted(ids(out / "dataset.jsonl", DatasetRow)) == sorted(
        i for i in kept if i != rows[1].id)
    assert [r.id for r in iter_records(out / "rejects.retried.jsonl", Reject)] == [rows[0].id]
    assert info["funnel"]["balanced"] is True


@pytest.mark.parametrize("command", [
    ["baseline", "translate", str(SAMPLES / "english_ift.jsonl"), "--lang", "hi"],
    ["baseline", "template", str(SAMPLES / "nlp" / "summarization" / "hi.jsonl"), "--lang",
     "hi", "--task", "summarization"],
])
def test_filter_on_a_baseline_folder_says_what_it_is(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "base"
    assert main([*command, "--out", str(out), "--cache-dir", str(tmp_path / "c"), "-q"]
                if command[1] == "translate" else [*command, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["filter", str(out), "--min-score", "3", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"was made by `mlift {' '.join(command[:2])}`" in err
    assert "Traceback" not in err


def test_a_run_folder_and_a_baseline_never_share_a_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run(*subset(tmp_path, n=2), "--out", str(out), "--no-cache") == 0
    capsys.readouterr()
    code = main(["baseline", "template", str(SAMPLES / "nlp" / "summarization" / "hi.jsonl"),
                 "--lang", "hi", "--task", "summarization", "--out", str(out)])
    assert code == 2
    assert "command: was mlift run, now mlift baseline template" in capsys.readouterr().err


def test_an_input_may_grow_but_not_change(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    lines = (SAMPLES / "hi.jsonl").read_text(encoding="utf-8").splitlines()
    src = tmp_path / "hi.jsonl"
    src.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    assert run(str(src), "--out", str(out), "--cache-dir", cache) == 0
    src.write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")  # records appended
    assert run(str(src), "--out", str(out), "--cache-dir", cache) == 0
    assert run_json(out)["funnel"]["input"] == 5
    src.write_text("\n".join(lines[1:5]) + "\n", encoding="utf-8")  # records removed
    capsys.readouterr()
    assert run(str(src), "--out", str(out), "--cache-dir", cache) == 2
    assert "inputs[0] (hi.jsonl)" in capsys.readouterr().err


def test_requests_refuses_another_provider_on_the_same_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Hi {i}"}],
                                       "max_tokens": 10}) + "\n" for i in range(3)))
    base = ["requests", str(src), "--out", str(out), "--no-cache", "-q"]
    assert main([*base, "--provider", "sim:default"]) == 0
    assert (tmp_path / "out.jsonl.run" / "manifest.json").is_file()
    capsys.readouterr()
    assert main([*base, "--provider", "sim:other"]) == 2
    assert "models.requests: was sim:default, now sim:other" in capsys.readouterr().err
    assert main([*base, "--provider", "sim:default"]) == 0  # the same: a no-op resume


def test_a_damaged_output_line_is_named_not_silently_cut(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    inputs = subset(tmp_path, n=2)
    assert run(*inputs, "--out", str(out), "--no-cache") == 0
    lines = (out / "scored.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = "{not json\n"
    (out / "scored.jsonl").write_text("".join(lines), encoding="utf-8")
    capsys.readouterr()
    assert run(*inputs, "--out", str(out), "--no-cache") == 2
    err = capsys.readouterr().err
    assert "scored.jsonl:2: not a valid JSON line" in err and "fix or remove" in err


def test_report_html_into_a_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    assert run(*subset(tmp_path, n=2), "--out", str(out), "--no-cache") == 0
    page = tmp_path / "new" / "deeper" / "report.html"
    assert main(["report", str(out), "--html", str(page)]) == 0
    assert page.read_text(encoding="utf-8").startswith("<!")
    assert main(["report", str(out), "--html", str(tmp_path / "new")]) == 2


def test_run_json_and_each_scored_pair_say_whether_the_schema_was_enforced(
        tmp_path: Path) -> None:
    inputs = subset(tmp_path, n=2)
    out = tmp_path / "on"
    assert run(*inputs, "--out", str(out), "--no-cache") == 0
    judged = run_json(out)["funnel"]["judge_structured_output"]
    assert judged["verdicts"] == judged["through_an_enforced_schema"] > 0
    assert all(p.structured for p in iter_records(out / "scored.jsonl", ScoredPair))
    # A profile that says its server cannot enforce schemas: the strict text parse.
    config = tmp_path / "mlift.toml"
    config.write_text('[providers.plain]\nkind = "sim"\nstructured_outputs = false\n',
                      encoding="utf-8")
    off = tmp_path / "off"
    assert run(*inputs, "--out", str(off), "--no-cache", "--provider", "plain:default",
               "--config", str(config)) == 0
    judged = run_json(off)["funnel"]["judge_structured_output"]
    assert judged["through_an_enforced_schema"] == 0
    assert judged["by_strict_text_parse"] == judged["verdicts"] > 0
    assert not any(p.structured for p in iter_records(off / "scored.jsonl", ScoredPair))


def test_a_refused_resume_shows_the_refusal_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, cache = tmp_path / "out", str(tmp_path / "c")
    inputs = subset(tmp_path, n=2)
    assert run(*inputs, "--out", str(out), "--cache-dir", cache) == 0
    capsys.readouterr()
    # Not quiet: a newcomer's command line, with the progress display on.
    assert main(["run", *inputs, "--out", str(out), "--cache-dir", cache,
                 "--judge", "sim:strict"]) == 2
    err = capsys.readouterr().err
    assert "items" not in err and "req/s" not in err  # no status line of nothing done
    assert err.count("\n  ") == 1  # one line of what differs: the judge's spec
    assert "models.judge: was sim:default, now sim:strict" in err


def test_same_named_inputs_and_ids_repeated_across_files_lose_nothing(
        tmp_path: Path) -> None:
    lines = (SAMPLES / "hi.jsonl").read_text(encoding="utf-8").splitlines()
    for folder, chunk in (("a", lines[:3]), ("b", lines[3:6])):
        (tmp_path / folder).mkdir()
        texts = [json.dumps({"text": json.loads(x)["text"], "lang": "hi"}, ensure_ascii=False)
                 for x in chunk]  # no ids: generated from the file and position
        (tmp_path / folder / "in.jsonl").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert run(str(tmp_path / "a" / "in.jsonl"), str(tmp_path / "b" / "in.jsonl"),
               "--out", str(out), "--no-cache") == 0
    funnel = run_json(out)["funnel"]
    assert funnel["input"] == 6 and funnel["balanced"] is True
    # The same given ids in two files: the second file's copies are duplicate_id rejects.
    (tmp_path / "c.jsonl").write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    (tmp_path / "d.jsonl").write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    out2 = tmp_path / "out2"
    assert run(str(tmp_path / "c.jsonl"), str(tmp_path / "d.jsonl"), "--out", str(out2),
               "--no-cache") == 0
    funnel = run_json(out2)["funnel"]
    assert funnel["input"] == 5 and funnel["balanced"] is True
    assert funnel["rejects_by_stage_and_reason"].get("input:duplicate_id") == 2
