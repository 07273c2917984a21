"""``mlift sim serve`` flags reach the simulator's settings."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys

import aiohttp
import pytest

from mlift.cli import build_parser, main
from mlift.cli.sim import _config
from mlift.sim import SimConfig


async def test_serve_prints_url_answers_and_stops_on_sigint() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlift", "sim", "serve", "--port", "0", "--seed", "3",
        "--require-key", "k1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = re.fullmatch(r"mlift sim: serving on (http://127\.0\.0\.1:\d+) "
                             r"\(OpenAI base_url \1/v1\)\n", line)
        assert match, line
        async with aiohttp.ClientSession() as http, http.post(
                match.group(1) + "/v1/messages", headers={"x-api-key": "k1"},
                json={"model": "m", "max_tokens": 5,
                      "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 200
            assert (await r.json())["stop_reason"] in ("end_turn", "max_tokens")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_demo_routes_by_header_and_shows_both_structured_outputs(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "demo"]) == 0
    lines = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
             for line in capsys.readouterr().out.splitlines() if ":" in line}
    for name in ("openai  judge, json_schema", "anthropic judge, forced tool"):
        verdict = json.loads(lines[name])
        assert set(verdict) == {"reason", "score"} and verdict["score"] in range(1, 6)
    assert lines["openai  no header"].startswith("[sim] This is a simulated answer")
    assert not lines["anthropic instruct"].startswith("[sim] This is a simulated answer")


def test_batch_and_caching_flags_become_sim_settings() -> None:
    args = build_parser().parse_args([
        "sim", "serve", "--no-prompt-cache", "--batch-validate-s", "0.5",
        "--batch-delay-s", "30", "--batch-finalize-s", "2", "--batch-cancel-s", "3",
        "--batch-window-s", "600", "--batch-fail-rate", "0.1",
        "--batch-max-requests", "100", "--batch-max-bytes", "4096"])
    config = _config(args)
    assert (config.prompt_cache, config.batch_validate_s, config.batch_delay_s,
            config.batch_finalize_s, config.batch_cancel_s, config.batch_window_s,
            config.batch_fail_rate, config.batch_max_requests,
            config.batch_max_bytes) == (False, 0.5, 30.0, 2.0, 3.0, 600.0, 0.1, 100, 4096)


def test_without_flags_the_sim_keeps_the_providers_behaviour() -> None:
    config = _config(build_parser().parse_args(["sim", "serve"]))
    defaults = SimConfig()
    assert config.prompt_cache and config.batch_window_s == 86_400.0
    assert (config.batch_max_requests, config.batch_max_bytes) == (None, None)
    assert config.batch_delay_s == defaults.batch_delay_s


def test_a_bad_batch_setting_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "serve", "--batch-fail-rate", "2"]) == 2
    assert "batch_fail_rate must be between 0 and 1" in capsys.readouterr().err


def test_accounting_flags_become_sim_settings() -> None:
    args = build_parser().parse_args([
        "sim", "serve", "--tpm", "150000", "--itpm", "40000", "--otpm", "8000",
        "--charge", "chars", "--charge-factor", "1.1", "--count-refused", "--quiet-limits"])
    config = _config(args)
    assert (config.tpm, config.itpm, config.otpm, config.token_charge, config.charge_factor,
            config.count_refused, config.limit_headers) == (
        150000, 40000, 8000, "chars", 1.1, True, False)
    plain = _config(build_parser().parse_args(["sim", "serve"]))
    assert (plain.token_charge, plain.count_refused, plain.limit_headers) == (
        "tokenizer", False, True)
