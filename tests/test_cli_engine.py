"""The engine through the CLI (`mlift requests`, `mlift run`) against a simulator with faults.

The simulator runs in its own thread and event loop, like a remote server;
the real openai SDK talks to it through --base-url.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ThreadedSim

from mlift.cli import main
from mlift.sim import SimConfig

# The real commands, end to end: none may block its event loop (tests/noblock.py).
pytestmark = pytest.mark.usefixtures("no_blocking")

ROOT = Path(__file__).resolve().parent.parent


def requests_file(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            body = {"messages": [{"role": "user", "content": f"Tell me about item {i}."}],
                    "max_tokens": 20, "metadata": {"i": i}}
            fh.write(json.dumps(body) + "\n")
    return path


def results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def mlift_requests(sim: ThreadedSim, src: Path, out: Path, cache: Path, *extra: str) -> int:
    return main(["requests", str(src), "--out", str(out), "--provider", "openai:gpt-4o-mini",
                 "--base-url", sim.url + "/v1", "--cache-dir", str(cache), "-q", *extra])


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def test_every_line_gets_one_result_in_order_under_every_fault_kind(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    sim = remote_sim(SimConfig(error_rate=0.15, timeout_rate=0.03, hang_s=30.0,
                               drop_rate=0.03, malformed_rate=0.03, seed=3))
    src, out = requests_file(tmp_path / "in.jsonl", 150), tmp_path / "out.jsonl"
    code = mlift_requests(sim, src, out, tmp_path / "c", "--request-timeout", "1")
    got = results(out)
    assert [r["line"] for r in got] == list(range(1, 151))
    assert [r["metadata"]["i"] for r in got] == list(range(150))
    assert all("response" in r for r in got), [r["error"] for r in got if "error" in r]
    assert code == 0
    faults = sim.stats()["faults"]
    assert all(faults.get(k, 0) > 0 for k in ("error", "timeout", "drop", "malformed")), faults


def test_rerun_is_served_from_the_cache_and_sends_nothing(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    sim = remote_sim(SimConfig())
    src = requests_file(tmp_path / "in.jsonl", 40)
    mlift_requests(sim, src, tmp_path / "a.jsonl", tmp_path / "c")
    sent = sim.stats()["requests"]
    assert mlift_requests(sim, src, tmp_path / "b.jsonl", tmp_path / "c") == 0
    assert sim.stats()["requests"] == sent
    assert all(r["cached"] for r in results(tmp_path / "b.jsonl"))


def test_budget_cap_stops_cleanly_and_a_higher_cap_resumes_without_duplicates(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    sim = remote_sim(SimConfig())
    src, out = requests_file(tmp_path / "in.jsonl", 60), tmp_path / "out.jsonl"
    assert mlift_requests(sim, src, out, tmp_path / "c", "--max-cost", "0.0002") == 4
    first = results(out)
    assert 0 < len(first) < 60
    assert mlift_requests(sim, src, out, tmp_path / "c", "--max-cost", "1") == 0
    assert [r["line"] for r in results(out)] == list(range(1, 61))


def test_wrong_key_stops_the_run_with_exit_3_naming_the_variable(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(SimConfig(require_key="sk-right"))
    src = requests_file(tmp_path / "in.jsonl", 200)
    assert mlift_requests(sim, src, tmp_path / "out.jsonl", tmp_path / "c") == 3
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "sk-test" not in err and "Traceback" not in err
    assert sim.stats()["requests"] < 200  # it stopped instead of sending every line


def test_pipeline_stops_on_a_wrong_key_with_exit_3(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        capsys: pytest.CaptureFixture[str]) -> None:
    sim = remote_sim(SimConfig(require_key="sk-right"))
    code = main(["run", str(ROOT / "samples" / "hi.jsonl"), "--out", str(tmp_path / "o"),
                 "--provider", "openai:gpt-4o-mini", "--base-url", sim.url + "/v1",
                 "--cache-dir", str(tmp_path / "c"), "-q"])
    assert code == 3
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_rate_limited_server_is_never_pushed_past_its_limit(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    # mlift is told nothing: it learns the limit from the headers and 429s.
    sim = remote_sim(SimConfig(rpm=1200))
    src, out = requests_file(tmp_path / "in.jsonl", 60), tmp_path / "out.jsonl"
    assert mlift_requests(sim, src, out, tmp_path / "c") == 0
    stats = sim.stats()
    assert len(results(out)) == 60
    assert stats["max_requests_1s"] <= 1200 / 60 * 2  # one second of burst plus refill


def _answer(record: dict[str, Any]) -> Any:
    return record.get("response", record.get("error"))


def test_cached_rerun_writes_the_same_lines_again_and_sends_nothing(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    sim = remote_sim(SimConfig())
    src = requests_file(tmp_path / "in.jsonl", 300)  # more lines than one read-ahead chunk
    lines = src.read_text().splitlines()
    lines[10:10] = ["{not json", ""]  # bad lines keep their place among the hits
    src.write_text("\n".join(lines) + "\n")
    assert mlift_requests(sim, src, tmp_path / "a.jsonl", tmp_path / "c") == 4
    sent = sim.stats()["requests"]
    for name in ("b", "c"):
        assert mlift_requests(sim, src, tmp_path / f"{name}.jsonl", tmp_path / "c",
                              "--stats-json", str(tmp_path / f"{name}.json")) == 4
    assert sim.stats()["requests"] == sent == 300
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "c.jsonl").read_bytes()
    first, again = results(tmp_path / "a.jsonl"), results(tmp_path / "b.jsonl")
    assert [(r["line"], r["metadata"], _answer(r)) for r in again] == [
        (r["line"], r["metadata"], _answer(r)) for r in first]
    answered = [r for r in again if "response" in r]
    assert len(answered) == 300
    assert all((r["cached"], r["cost_usd"], r["attempts"]) == (True, 0.0, 0) for r in answered)
    totals = json.loads((tmp_path / "b.json").read_text())["accounting"]["totals"]
    assert (totals["cache_hits"], totals["cost_usd"]) == (300, 0.0)


def test_a_changed_request_misses_the_cache_and_only_it_is_sent(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    sim = remote_sim(SimConfig())
    src = requests_file(tmp_path / "in.jsonl", 300)
    mlift_requests(sim, src, tmp_path / "a.jsonl", tmp_path / "c")
    sent = sim.stats()["requests"]
    bodies = [json.loads(line) for line in src.read_text().splitlines()]
    bodies[2]["temperature"] = 0.3
    bodies[280]["messages"][0]["content"] += " And its history?"
    src.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    assert mlift_requests(sim, src, tmp_path / "b.jsonl", tmp_path / "c") == 0
    assert sim.stats()["requests"] == sent + 2
    got = results(tmp_path / "b.jsonl")
    assert [r["line"] for r in got if not r["cached"]] == [3, 281]
    before = results(tmp_path / "a.jsonl")
    assert all(got[i]["response"] == before[i]["response"] for i in range(300)
               if i not in (2, 280))


def test_lines_no_request_can_be_made_of_are_errors_naming_their_field_and_the_rest_goes_through(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    # Each of these stopped the whole run with a traceback (nothing written) before.
    sim = remote_sim(SimConfig())
    bad = {  # line -> (body, the field its error names, or None: the line as a whole)
        2: ('{"messages": [{"role": "user", "content": "Hi"}], "metadata": {"x": NaN}}', None),
        4: (r'{"messages": [{"role": "user", "content": "lone \ud800"}]}',
            "messages[0].content"),
        5: (r'{"messages": [{"role": "user", "content": "p"}], "stop": ["\udc00"]}', "stop"),
        6: ('{"messages": [{"role": "user", "content": "q"}], "top_p": 1e999}', "top_p"),
        7: ('{"messages": [{"role": "user", "content": "r"}], "temperature": 1e999}',
            "temperature"),
        8: ('{"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}',
            "messages[0]"),
        9: ('{"messages": [{"role": "user", "content": "s"}], "max_tokens": true}',
            "max_tokens"),
    }
    big = 123456789012345678901234567890
    ok = ('{"messages": [{"role": "user", "content": "fine %d"}], "max_tokens": 5, '
          '"metadata": {"big": %d, "f": 1e-05}}')
    lines = [bad[n][0] if n in bad else ok % (n, big) for n in range(1, 12)]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert mlift_requests(sim, src, out, tmp_path / "c") == 4  # some lines failed
    got = results(out)
    assert [r["line"] for r in got] == list(range(1, 12))
    for r in got:
        if r["line"] in bad:
            assert r["error"]["type"] == "InputError", r
            assert f"in.jsonl:{r['line']}" in r["error"]["message"]
            assert r["error"].get("field") == bad[r["line"]][1], r
        else:  # a 30-digit integer and a tiny float in metadata come back exactly
            assert "response" in r and r["metadata"] == {"big": big, "f": 1e-05}, r
    assert "NaN" in got[1]["error"]["message"]


def test_a_cached_rerun_loads_no_tokenizer_and_a_first_run_loads_it_off_the_loop(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlift.engine.core as core

    loaded: list[str] = []
    real = core.warm_up

    def warm_up(model: str) -> str:
        loaded.append(model)
        return real(model)

    monkeypatch.setattr(core, "warm_up", warm_up)
    sim = remote_sim(SimConfig())
    src = requests_file(tmp_path / "in.jsonl", 30)
    assert mlift_requests(sim, src, tmp_path / "a.jsonl", tmp_path / "c") == 0
    assert loaded == ["gpt-4o-mini"]  # once, in a thread (no_blocking would fail otherwise)
    loaded.clear()
    assert mlift_requests(sim, src, tmp_path / "b.jsonl", tmp_path / "c") == 0
    assert loaded == []  # every line from the cache: half a second of start-up saved
    assert all(r["cached"] for r in results(tmp_path / "b.jsonl"))


def test_a_cached_rerun_never_loads_the_http_client(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim]) -> None:
    # A fresh process (this one has aiohttp loaded for the simulator): aiohttp and its TLS
    # set-up are a fifth of a cached re-run's wall, for nothing when nothing is sent.
    sim = remote_sim(SimConfig())
    src = requests_file(tmp_path / "in.jsonl", 10)
    assert mlift_requests(sim, src, tmp_path / "a.jsonl", tmp_path / "c") == 0
    code = ("import sys; from mlift.cli import main; "
            f"code = main(['requests', {str(src)!r}, '--out', {str(tmp_path / 'b.jsonl')!r}, "
            f"'--provider', 'openai:gpt-4o-mini', '--base-url', {sim.url + '/v1'!r}, "
            f"'--cache-dir', {str(tmp_path / 'c')!r}, '-q']); "
            "print(code, 'aiohttp' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OPENAI_API_KEY": "sk-test"})
    assert done.stdout.split() == ["0", "False"], done.stderr
    assert all(r["cached"] for r in results(tmp_path / "b.jsonl"))
