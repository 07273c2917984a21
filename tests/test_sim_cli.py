"""``mlift sim serve`` as a separate process: prints its URL, answers, stops cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import aiohttp


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
