"""The baseline: what people usually write to push a JSONL file through an API.

``AsyncOpenAI`` (``AsyncAnthropic`` with ``--anthropic``) with its default
retries (``max_retries=2``, honouring Retry-After), one ``asyncio.Semaphore``
for concurrency and ``asyncio.gather`` over every line; one result line per
input, errors recorded, in input order. No client-side rate limiting, no
cache, the SDK's default 10-minute timeout.

    python -m benchmarks.naive IN.jsonl OUT.jsonl --base-url URL/v1 [--concurrency 64]
        [--stats-json FILE] [--anthropic]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI


async def _one(client: AsyncOpenAI, sem: asyncio.Semaphore, body: dict[str, Any],
               model: str) -> dict[str, Any]:
    async with sem:
        try:
            resp = await client.chat.completions.create(
                model=model, messages=body["messages"], max_tokens=body.get("max_tokens"))
        except Exception as exc:  # a failed line is a result, like in mlift
            return {"metadata": body.get("metadata"),
                    "error": {"type": type(exc).__name__, "message": str(exc)[:200]}}
        return {"metadata": body.get("metadata"), "content": resp.choices[0].message.content,
                "usage": resp.usage.model_dump() if resp.usage else None}


async def _one_anthropic(client: AsyncAnthropic, sem: asyncio.Semaphore,
                         body: dict[str, Any], model: str) -> dict[str, Any]:
    async with sem:
        try:
            resp = await client.messages.create(
                model=model, messages=body["messages"], max_tokens=body.get("max_tokens", 512))
        except Exception as exc:
            return {"metadata": body.get("metadata"),
                    "error": {"type": type(exc).__name__, "message": str(exc)[:200]}}
        text = "".join(getattr(block, "text", "") for block in resp.content)
        return {"metadata": body.get("metadata"), "content": text,
                "usage": resp.usage.model_dump()}


async def run_all(bodies: list[dict[str, Any]], base_url: str, model: str,
                  concurrency: int, anthropic: bool = False) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(concurrency)
    if anthropic:
        claude = AsyncAnthropic(base_url=base_url, api_key="sk-ant-bench")
        try:
            return await asyncio.gather(*(_one_anthropic(claude, sem, b, model)
                                          for b in bodies))
        finally:
            await claude.close()
    client = AsyncOpenAI(base_url=base_url, api_key="sk-bench")
    try:
        return await asyncio.gather(*(_one(client, sem, b, model) for b in bodies))
    finally:
        await client.close()


def main(args: argparse.Namespace) -> int:
    with open(args.input, encoding="utf-8") as fh:
        bodies = [json.loads(line) for line in fh]
    start = time.perf_counter()
    model = args.model or ("claude-3-5-haiku-latest" if args.anthropic else "gpt-4o-mini")
    results = asyncio.run(run_all(bodies, args.base_url, model, args.concurrency,
                                  args.anthropic))
    with open(args.out, "w", encoding="utf-8") as out:
        for i, r in enumerate(results, start=1):
            out.write(json.dumps({"line": i, **r}, ensure_ascii=False) + "\n")
    if args.stats_json:
        with open(args.stats_json, "w", encoding="utf-8") as fh:
            json.dump({"elapsed_s": time.perf_counter() - start}, fh)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="naive AsyncOpenAI + Semaphore + gather baseline")
    p.add_argument("input")
    p.add_argument("out")
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", help="default gpt-4o-mini (claude-3-5-haiku-latest with "
                   "--anthropic)")
    p.add_argument("--anthropic", action="store_true",
                   help="AsyncAnthropic against an Anthropic-style base URL (no /v1)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--stats-json", help="write {\"elapsed_s\": ...} here (time after imports)")
    raise SystemExit(main(p.parse_args()))
