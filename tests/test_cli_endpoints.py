"""Endpoints through the CLI: a wrong base URL stops the run, several URLs share it.

The simulators run in their own threads and event loops, like remote servers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ThreadedSim
from test_cli_engine import requests_file, results

from mlift.cli import EXIT_ENDPOINT, main
from mlift.engine.endpoint import PROBE
from mlift.sim import SimConfig

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def requests(src: Path, out: Path, base_url: str, *extra: str) -> int:
    return main(["requests", str(src), "--out", str(out), "--provider", "openai:gpt-4o-mini",
                 "--base-url", base_url, "--no-cache", "--transport", "aiohttp", "-q", *extra])


def test_a_wrong_base_url_stops_the_run_naming_it_and_a_fixed_rerun_does_everything(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(SimConfig())
    src, out = requests_file(tmp_path / "in.jsonl", 300), tmp_path / "out.jsonl"
    wrong = sim.url  # the simulator's root: /chat/completions is a 404 there, /v1 is missing
    stats = tmp_path / "stats.json"
    assert requests(src, out, wrong, "--stats-json", str(stats)) == EXIT_ENDPOINT
    err = capsys.readouterr().err
    assert wrong in err and "gpt-4o-mini" in err and "--base-url" in err
    assert "Traceback" not in err
    assert sim.stats()["requests"] == PROBE  # the gentle start's probe, and no burst after it
    # what mlift reports sending is what was sent (items stopped in the queue sent nothing)
    assert json.loads(stats.read_text())["accounting"]["totals"]["attempts"] == PROBE
    assert not out.exists() or results(out) == []  # nothing burned as an error line
    assert requests(src, out, sim.url + "/v1") == 0
    done = results(out)
    assert len(done) == 300 and all("response" in r for r in done)


def test_several_base_urls_share_the_requests(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    a, b = remote_sim(SimConfig(latency_ms=20)), remote_sim(SimConfig(latency_ms=20))
    src, out = requests_file(tmp_path / "in.jsonl", 200), tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    assert requests(src, out, f"{a.url}/v1,{b.url}/v1", "--stats-json", str(stats)) == 0
    assert len(results(out)) == 200
    served = a.stats()["requests"], b.stats()["requests"]
    assert sum(served) == 200 and min(served) >= 50
    assert json.loads(stats.read_text())["accounting"]["totals"]["successes"] == 200


def test_the_pipeline_stops_on_a_wrong_base_url_without_burning_items(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(SimConfig())
    out = tmp_path / "o"
    code = main(["run", str(ROOT / "samples" / "hi.jsonl"), "--out", str(out),
                 "--provider", "openai:gpt-4o-mini", "--base-url", sim.url,
                 "--no-cache", "--transport", "aiohttp", "-q"])
    assert code == EXIT_ENDPOINT
    err = capsys.readouterr().err
    assert sim.url in err and "Traceback" not in err
    assert sim.stats()["by_status"] == {"404": PROBE}
    # what the run's record says it sent is what was sent
    run = json.loads((out / "run.json").read_text())
    assert run["accounting"]["totals"]["attempts"] == PROBE
    rejects = out / "rejects.jsonl"
    lines = rejects.read_text().splitlines() if rejects.exists() else []
    assert not [line for line in lines if "provider_" in line]  # no item blamed for the URL
