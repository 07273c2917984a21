"""kill -9 a `mlift run --batch` three times, then let it finish: nothing lost, nothing paid twice.

The run is a real subprocess killed with SIGKILL; the simulator runs in this
process (it outlives the kills, as a provider would). Each kill waits for a
new event of one phase in the run folder's batch journal and strikes a random
few milliseconds later: while a batch is being uploaded and created, while
the provider processes it, while its results are being downloaded and cached.
The long variant, with random kills over bigger inputs, is
``scripts/kill_resume.py --batch``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from test_batch_run import RemoteSim, mlift_run, outputs, profiles, rows, subset

from mlift.cli import main
from mlift.sim import SimConfig

# Long enough batches that "while the provider processes" is a window, short enough to be quick.
SLOW = SimConfig(batch_validate_s=0.05, batch_delay_s=0.5, batch_finalize_s=0.05)
# (journal event, how many new ones to wait for, the longest random delay after it): the
# first upload; the second batch the provider accepts, while it works on it; the second
# batch that ends, while its results come down (collecting takes some 20 ms).
KILLS = (("submitting", 1, 0.01), ("created", 2, 0.3), ("ended", 2, 0.005))


def journal_events(out: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    try:
        text = (out / "batches.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return counts
    for line in text.splitlines():
        try:
            counts[json.loads(line)["event"]] += 1
        except (ValueError, KeyError):
            continue  # a line torn by an earlier kill
    return counts


def kill_after(cmd: list[str], out: Path, phase: str, nth: int, delay_s: float) -> bool:
    """Start ``cmd``; SIGKILL it ``delay_s`` after the journal shows its ``nth`` new
    ``phase`` event. False if the run finished first."""
    before = journal_events(out)[phase] + nth - 1
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if journal_events(out)[phase] > before:
                time.sleep(delay_s)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.002)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_three_kill_9s_then_a_finish_give_the_online_dataset_and_no_line_twice(
        tmp_path: Path, remote_sim: RemoteSim) -> None:
    sim = remote_sim(SLOW)
    config = profiles(tmp_path, simb=sim)
    inputs = subset(tmp_path, 4)
    # (no language ID in these runs: loading its model would be most of each start-up)
    assert mlift_run(inputs, tmp_path / "online", config, "--no-lang-id") == 0
    online_requests = sim.stats()["requests"]
    urllib.request.urlopen(urllib.request.Request(sim.url + "/stats/reset", method="POST"))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "mlift", "run", *inputs, "--out", str(out), "--cache-dir",
           str(tmp_path / "killed.cache"), "--config", str(config), "--provider",
           "simb:default", "-q", "--no-lang-id", "--batch", "--batch-poll", "0.02"]
    rng = random.Random(13)
    killed = [kill_after(cmd, out, phase, nth, rng.uniform(0.0, longest))
              for phase, nth, longest in KILLS]
    assert killed == [True, True, True]
    events = journal_events(out)
    assert events["submitting"] >= 1 and events["created"] >= 1
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert outputs(out) == outputs(tmp_path / "online")
    ids = [r["id"] for r in rows(out / "dataset.jsonl")]
    assert len(ids) == len(set(ids))
    batch = sim.stats()["batch"]
    # every request went to the provider in exactly one batch line: none twice, none online
    assert batch["resubmitted"] == 0
    assert batch["lines_submitted"] == batch["lines_processed"] == online_requests
    assert sim.stats()["requests"] == 0
    run = json.loads((out / "run.json").read_text())
    assert run["funnel"]["balanced"] and len(run["invocations"]) == 4
    # the ledger lost no batch's cost to the kills (a kill while answers are handed over
    # may book some twice, never none)
    online = json.loads((tmp_path / "online" / "run.json").read_text())
    half = online["accounting"]["totals"]["cost_usd"] / 2
    assert run["accounting"]["totals"]["cost_usd"] >= half * (1 - 1e-9)


def test_ctrl_c_then_mlift_batches_lists_and_cancels_and_the_next_runs_finish(
        tmp_path: Path, remote_sim: RemoteSim, capsys: pytest.CaptureFixture[str]) -> None:
    # One batched stage whose batch takes 4 s (a line a second); the rest online.
    sim = remote_sim(SimConfig(batch_validate_s=0.01, batch_delay_s=4.0,
                               batch_finalize_s=0.01, batch_cancel_s=0.05))
    config = profiles(tmp_path, simb=sim)
    inputs, out = subset(tmp_path, 1), tmp_path / "out"
    cmd = [sys.executable, "-m", "mlift", "run", *inputs, "--out", str(out), "--cache-dir",
           str(tmp_path / "cache"), "--config", str(config), "--provider", "simb:default",
           "-q", "--no-lang-id", "--batch", "to_en", "--batch-poll", "0.02"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while journal_events(out)["created"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)  # Ctrl-C while the provider works on the batch
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    capsys.readouterr()
    assert main(["batches", str(out), "--refresh", "--config", str(config)]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["STAGE", "PROVIDER", "BATCH", "STATE", "DONE/FAILED/TOTAL",
                              "AGE", "EXPECTED"]
    stage, target, batch_id, state, counts = row.split()[:5]
    assert (stage, target) == ("to_en", "simb:default") and state in ("validating",
                                                                     "in_progress")
    assert batch_id.startswith("batch_") and counts.endswith("/0/4")
    assert "~" in row or "at most 23h" in row  # the expected wait
    assert main(["batches", str(out), "--cancel", batch_id, "--config", str(config)]) == 0
    assert f"cancel requested for {batch_id}" in capsys.readouterr().err
    # The next run collects what finished before the cancel; the rest are rejects to retry.
    again = ("--no-lang-id", "--batch", "to_en", "--batch-poll", "0.02")
    assert mlift_run(inputs, out, config, *again) == 4
    canceled = [r for r in rows(out / "rejects.jsonl") if r["code"] == "batch_canceled"]
    assert canceled and all(r["retry"] and r["stage"] == "to_en" for r in canceled)
    assert mlift_run(inputs, out, config, *again) == 0
    batch = sim.stats()["batch"]
    assert batch["lines_submitted"] == 4 + len(canceled)  # only the canceled ones again
    assert batch["resubmitted"] == len(canceled)
    assert not [r for r in rows(out / "rejects.jsonl") if r["code"] == "batch_canceled"]
