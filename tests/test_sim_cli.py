"""``mlift sim serve`` as a separate process: prints its URL, answers, stops cleanly."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys

import aiohttp
import pytest

from mlift.cli import main


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
