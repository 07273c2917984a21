"""``--batch`` end to end: `mlift run`, `baseline translate` and `requests` on the simulator.

The simulator runs in its own thread (a remote server to the CLI) with batch
delays of tens of milliseconds and the run polls as often, so a whole batch
run takes seconds; a ``sim`` profile with its URL is what both the online
calls and the batch API talk to, so its counters see everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSim

from mlift.batch import BatchJournal
from mlift.cli import main
from mlift.sim import SimConfig

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [str(ROOT / "samples" / f"{lang}.jsonl") for lang in ("hi", "te", "ja", "es")]
FAST = SimConfig(batch_validate_s=0.01, batch_delay_s=0.05, batch_finalize_s=0.01)
BATCH = ("--batch-poll", "0.02")
RemoteSim = Callable[[SimConfig], ThreadedSim]


def profiles(tmp_path: Path, **sims: ThreadedSim) -> Path:
    """A config file with one ``sim`` profile per simulator (name -> server)."""
    path = tmp_path / "mlift.toml"
    path.write_text("".join(f'[providers.{name}]\nkind = "sim"\nbase_url = "{sim.url}"\n'
                            for name, sim in sims.items()))
    return path


def subset(tmp_path: Path, n: int) -> list[str]:
    """The first ``n`` records of each sample language."""
    files = []
    for src in SAMPLES:
        path = tmp_path / Path(src).name
        lines = Path(src).read_text(encoding="utf-8").splitlines()[:n]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(str(path))
    return files


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def outputs(out: Path) -> dict[str, list[str]]:
    """Every output file's records, usage aside (its cost is what batch mode changes)."""
    return {name: sorted(json.dumps({k: v for k, v in r.items() if k != "usage"},
                                    sort_keys=True, ensure_ascii=False)
                         for r in rows(out / name))
            for name in ("dataset.jsonl", "scored.jsonl", "rejects.jsonl")}


def run_json(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "run.json").read_text())
    return data


def mlift_run(inputs: list[str], out: Path, config: Path, *extra: str) -> int:
    return main(["run", *inputs, "--out", str(out), "--cache-dir", str(out) + ".cache",
                 "--config", str(config), "--provider", "simb:default", "-q", *extra])


def test_a_batch_run_of_the_samples_is_the_online_dataset_at_half_the_cost(
        tmp_path: Path, remote_sim: RemoteSim) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)
    assert mlift_run(SAMPLES, tmp_path / "online", config) == 0
    online = sim.stats()
    assert mlift_run(SAMPLES, tmp_path / "batch", config, "--batch", *BATCH) == 0
    stats = sim.stats()
    assert outputs(tmp_path / "batch") == outputs(tmp_path / "online")
    assert rows(tmp_path / "batch" / "dataset.jsonl")
    # every request reached the simulator once: as a batch line, never online, never twice
    sent = online["requests"]
    batch = stats["batch"]
    assert stats["requests"] == sent
    assert batch["lines_submitted"] == batch["lines_processed"] == sent
    assert batch["resubmitted"] == 0 and batch["results"] == {"succeeded": sent}
    totals = {name: run_json(tmp_path / name)["accounting"]["totals"]
              for name in ("online", "batch")}
    assert totals["batch"]["cost_usd"] == pytest.approx(totals["online"]["cost_usd"] / 2,
                                                       rel=1e-9)
    assert totals["batch"]["batch_requests"] == totals["batch"]["requests"] == sent
    assert totals["batch"]["input_tokens"] == totals["online"]["input_tokens"]
    # each row's usage is priced as its calls were: the same tokens at half the dollars
    online_rows = {r["id"]: r for r in rows(tmp_path / "online" / "dataset.jsonl")}
    for row in rows(tmp_path / "batch" / "dataset.jsonl"):
        for stage, cell in row["usage"].items():
            twin = online_rows[row["id"]]["usage"][stage]
            assert cell["input_tokens"] == twin["input_tokens"] and cell["cached"] == 0
            assert cell["cost_usd"] == pytest.approx(twin["cost_usd"] / 2, abs=1e-9)
    # the journal holds every batch, one per stage here, each collected
    chunks = BatchJournal(tmp_path / "batch").load_sync()
    assert sorted(c.stage for c in chunks) == ["back", "instruct", "judge", "to_en"]
    assert all(c.collected and c.state == "completed" for c in chunks)


def test_a_mixed_run_sends_the_judge_online_to_another_provider(
        tmp_path: Path, remote_sim: RemoteSim) -> None:
    main_sim, judge_sim = remote_sim(FAST), remote_sim(FAST)
    config = profiles(tmp_path, simb=main_sim, simj=judge_sim)
    inputs = subset(tmp_path, 6)
    judge = ("--judge", "simj:default")
    assert mlift_run(inputs, tmp_path / "online", config, *judge) == 0
    online_main, online_judge = main_sim.stats()["requests"], judge_sim.stats()["requests"]
    assert mlift_run(inputs, tmp_path / "mixed", config, *judge,
                     "--batch", "to_en,instruct,back", *BATCH) == 0
    assert outputs(tmp_path / "mixed") == outputs(tmp_path / "online")
    stats_main, stats_judge = main_sim.stats(), judge_sim.stats()
    assert stats_main["requests"] == online_main  # nothing more online on the batched side
    assert stats_main["batch"]["lines_processed"] == online_main
    assert stats_judge["requests"] == 2 * online_judge  # the judge online, as before
    assert stats_judge["batch"]["lines_submitted"] == 0
    accounting = run_json(tmp_path / "mixed")["accounting"]["stages"]
    assert accounting["judge"]["batch_requests"] == 0
    assert accounting["to_en"]["batch_requests"] == accounting["to_en"]["requests"] > 0


def test_failed_lines_are_sent_once_more_then_rejected_and_retried_by_the_next_run(
        tmp_path: Path, remote_sim: RemoteSim) -> None:
    sim = remote_sim(SimConfig(batch_validate_s=0.01, batch_delay_s=0.05,
                               batch_finalize_s=0.01, batch_fail_rate=0.3, seed=4))
    config = profiles(tmp_path, simb=sim)
    inputs, out = subset(tmp_path, 6), tmp_path / "out"
    assert mlift_run(inputs, out, config, "--batch", *BATCH) == 4  # some items to retry
    rejects = [r for r in rows(out / "rejects.jsonl") if r["code"] == "batch_failed"]
    assert rejects and all(r["retry"] for r in rejects)
    assert all("failed, sent twice in batch batch_" in r["detail"] and "HTTP 500" in r["detail"]
               for r in rejects)
    first = sim.stats()["batch"]
    # only failed lines went out again, each once
    assert 0 < first["resubmitted"] == first["lines_submitted"] - len(
        {cid for c in BatchJournal(out).load_sync() for cid in c.custom_ids})
    assert run_json(out)["funnel"]["balanced"]
    for _ in range(6):  # each run retries the items whose lines failed twice
        if mlift_run(inputs, out, config, "--batch", *BATCH) == 0:
            break
    assert not [r for r in rows(out / "rejects.jsonl") if r["code"] == "batch_failed"]
    assert run_json(out)["funnel"]["balanced"]


def test_expired_lines_end_as_rejected_requests_with_the_reason(
        tmp_path: Path, remote_sim: RemoteSim) -> None:
    # Each batch expires with about half its lines undone: resent once, then given up.
    sim = remote_sim(SimConfig(batch_validate_s=0, batch_delay_s=0.4, batch_window_s=0.2,
                               batch_finalize_s=0))
    config = profiles(tmp_path, simb=sim)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Hi {i}"}],
                                       "max_tokens": 8}) + "\n" for i in range(20)))
    code = main(["requests", str(src), "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                 "--config", str(config), "--provider", "simb:default", "-q", "--batch",
                 *BATCH])
    assert code == 4
    results = rows(out)
    assert [r["line"] for r in results] == list(range(1, 21))  # all, in order
    expired = [r for r in results if "error" in r]
    assert expired and all(r["error"]["type"] == "batch_expired" for r in expired)
    assert all("expired, sent twice" in r["error"]["message"] for r in expired)
    assert len(expired) < 20 - len(expired)  # most got through on one of their two tries
    batch = sim.stats()["batch"]
    assert batch["results"]["expired"] == batch["resubmitted"] + len(expired)


def test_requests_in_batch_mode_write_the_online_results_in_input_order(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)
    src = tmp_path / "in.jsonl"
    lines = [{"messages": [{"role": "user", "content": f"Say {i}"}], "max_tokens": 12,
              "metadata": {"i": i}} for i in range(25)]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines) + "not json\n")

    def mlift_requests(out: Path, *extra: str) -> int:
        return main(["requests", str(src), "--out", str(out), "--cache-dir",
                     str(out) + ".cache", "--config", str(config), "--provider",
                     "simb:default", "-q", *extra])

    assert mlift_requests(tmp_path / "online.jsonl") == 4  # the bad line
    assert mlift_requests(tmp_path / "batch.jsonl", "--batch", *BATCH) == 4
    online, batch = rows(tmp_path / "online.jsonl"), rows(tmp_path / "batch.jsonl")
    assert [r["line"] for r in batch] == list(range(1, 27))

    def same(r: dict[str, Any]) -> Any:
        response = r.get("response") or {}
        return r["metadata"], response.get("content"), response.get("usage"), "error" in r

    assert list(map(same, batch)) == list(map(same, online))
    assert sim.stats()["batch"]["lines_submitted"] == 25
    stats = json.loads((tmp_path / "batch.jsonl.run" / "run.json").read_text())
    assert stats["accounting"]["totals"]["batch_requests"] == 25
    capsys.readouterr()
    assert main(["batches", str(tmp_path / "batch.jsonl")]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:4] == ["STAGE", "PROVIDER", "BATCH", "STATE"]
    assert listing[1].split()[:2] == ["requests", "simb:default"]
    assert "completed" in listing[1] and "25/0/25" in listing[1]


def test_the_translation_baseline_in_batch_mode_is_the_online_one(
        tmp_path: Path, remote_sim: RemoteSim) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)

    def baseline(out: Path, *extra: str) -> int:
        return main(["baseline", "translate", str(ROOT / "samples" / "english_ift.jsonl"),
                     "--lang", "hi", "--out", str(out), "--cache-dir", str(out) + ".cache",
                     "--config", str(config), "--translator", "simb:default", "-q", *extra])

    assert baseline(tmp_path / "online") == 0
    assert baseline(tmp_path / "batch", "--batch", *BATCH) == 0
    assert outputs(tmp_path / "batch") == outputs(tmp_path / "online")
    costs = [run_json(tmp_path / n)["accounting"]["totals"]["cost_usd"]
             for n in ("online", "batch")]
    assert costs[1] == pytest.approx(costs[0] / 2, rel=1e-9)
    assert sim.stats()["batch"]["resubmitted"] == 0


def test_the_progress_line_shows_each_stages_batches(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)
    inputs = subset(tmp_path, 2)
    capsys.readouterr()
    assert main(["run", *inputs, "--out", str(tmp_path / "out"), "--cache-dir",
                 str(tmp_path / "c"), "--config", str(config), "--provider", "simb:default",
                 "--batch", *BATCH]) == 0
    last = [line for line in capsys.readouterr().err.splitlines() if "req/s" in line][-1]
    assert "batches: to_en 1 completed (8/8 done)" in last
    assert "instruct 1 completed (8/8 done)" in last and "pass " in last


@pytest.mark.parametrize(("flags", "message"), [
    (("--batch", "to_en,jduge"), "jduge is not a stage of this command"),
    (("--batch", "--no-cache"), "--batch needs the response cache"),
    (("--batch", "--batch-poll", "0"), "--batch-poll must be positive"),
])
def test_batch_flags_that_cannot_work_fail_before_anything_is_sent(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str],
        flags: tuple[str, ...], message: str) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)
    assert mlift_run(subset(tmp_path, 1), tmp_path / "out", config, *flags) == 2
    assert message in capsys.readouterr().err
    assert sim.stats()["requests"] == 0 and sim.stats()["batch"]["files_uploaded"] == 0


def test_an_input_path_after_a_bare_batch_flag_says_how_to_write_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", SAMPLES[0], "--out", str(tmp_path / "o"), "--batch", SAMPLES[1]])
    assert code == 2
    err = capsys.readouterr().err
    assert "put it after the inputs, or write --batch=STAGE" in err


def test_the_budget_cap_stops_before_a_batch_that_could_pass_it_and_a_rerun_resumes(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)
    inputs, out = subset(tmp_path, 2), tmp_path / "out"
    assert mlift_run(inputs, out, config, "--batch", *BATCH, "--max-cost", "0.0001") == 4
    assert "could cost up to" in capsys.readouterr().err
    assert sim.stats()["batch"]["files_uploaded"] == 0  # refused before anything was sent
    assert run_json(out)["stopped_early"]
    assert mlift_run(inputs, out, config, "--batch", *BATCH, "--max-cost", "1") == 0
    assert run_json(out)["funnel"]["balanced"]
    assert sim.stats()["batch"]["resubmitted"] == 0


def test_judge_reasks_take_one_more_pass_and_are_counted_once(
        tmp_path: Path, remote_sim: RemoteSim) -> None:
    # Free-text verdicts, a third of them without a score: re-asked, as online.
    sim = remote_sim(SimConfig(batch_validate_s=0.01, batch_delay_s=0.05,
                               batch_finalize_s=0.01, bad_verdict_rate=0.3, seed=2))
    config = profiles(tmp_path, simb=sim)
    inputs = subset(tmp_path, 4)
    flags = ("--judge-prompt", "judge/fit_line")
    assert mlift_run(inputs, tmp_path / "online", config, *flags) == 0
    assert mlift_run(inputs, tmp_path / "batch", config, *flags, "--batch", *BATCH) == 0
    assert outputs(tmp_path / "batch") == outputs(tmp_path / "online")
    funnels = [run_json(tmp_path / n)["funnel"] for n in ("online", "batch")]
    keys = ("judge_parse_failures", "judge_reasks", "judge_structured_output", "selection")
    assert [{k: f[k] for k in keys} for f in funnels] == [{k: funnels[0][k] for k in keys}] * 2
    assert funnels[0]["judge_reasks"] > 0
    judge_batches = [c for c in BatchJournal(tmp_path / "batch").load_sync()
                     if c.stage == "judge"]
    assert len(judge_batches) >= 2  # the verdicts, then the re-asks


def test_mlift_batches_on_a_folder_without_batches_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").mkdir()
    assert main(["batches", str(tmp_path / "plain")]) == 2
    assert "this run sent no batches" in capsys.readouterr().err
    assert main(["batches", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_a_key_the_batch_api_refuses_stops_the_run_with_the_auth_exit_code(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(SimConfig(batch_validate_s=0.01, batch_delay_s=0.05,
                               batch_finalize_s=0.01, require_key="sk-the-right-one"))
    config = profiles(tmp_path, simb=sim)
    out = tmp_path / "out"
    assert mlift_run(subset(tmp_path, 1), out, config, "--batch", *BATCH) == 3
    assert "401" in capsys.readouterr().err
    assert sim.stats()["batch"]["files_uploaded"] == 0
    [chunk] = BatchJournal(out).load_sync()
    assert chunk.abandoned  # nothing to poll: the next run sends it afresh


def test_an_online_run_on_a_folder_with_running_batches_says_it_would_pay_twice(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)
    out = tmp_path / "out"
    out.mkdir()
    (out / "batches.jsonl").write_text(
        json.dumps({"v": 1, "event": "submitting", "chunk": "c1", "stage": "to_en",
                    "target": "simb:default", "kind": "sim", "custom_ids": ["a" * 64],
                    "at": 1.0}) + "\n" +
        json.dumps({"v": 1, "event": "created", "chunk": "c1", "batch_id": "batch_x",
                    "at": 2.0}) + "\n")
    assert mlift_run(subset(tmp_path, 1), out, config) == 0
    err = capsys.readouterr().err
    assert "1 batch(es) sent by an earlier --batch run of this folder may still be running" in err
    assert "add --batch to use it" in err


def test_run_json_holds_a_batch_run_against_the_estimates_batch_figures(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(FAST)
    config = profiles(tmp_path, simb=sim)
    inputs, out = subset(tmp_path, 3), tmp_path / "out"
    assert main(["estimate", *inputs, "--out", str(out), "--config", str(config),
                 "--provider", "simb:default", "--batch", "to_en,instruct,judge",
                 "--cache-dir", str(out) + ".cache", "--json"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert mlift_run(inputs, out, config, "--batch", "to_en,instruct,judge", *BATCH) == 0
    compared = run_json(out)["estimate_vs_actual"]
    assert compared["total"]["estimate_usd"] == est["total"]["cost_usd_batch"]
    assert {name: c["priced"] for name, c in compared.items() if name != "total"} == {
        "to_en": "batch", "instruct": "batch", "judge": "batch", "back": "online"}
    assert compared["back"]["estimate_usd"] == est["stages"]["back"]["cost_usd"]
    # the whole run's spend, the online back-translations last included
    spent = run_json(out)["accounting"]["totals"]["cost_usd"]
    assert compared["total"]["actual_usd"] == pytest.approx(spent, rel=1e-9)
    assert abs(compared["total"]["error"]) < 0.5
