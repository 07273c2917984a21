"""``mlift sim``: run the simulator standalone (``serve``) or take a short tour (``demo``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from mlift.sim import SimConfig, SimServer
from mlift.types import ROUTE_HEADER


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sim", help="the built-in OpenAI/Anthropic API simulator",
        description="Run the simulator that stands in for the OpenAI and Anthropic APIs.")
    sub = parser.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)

    serve = sub.add_parser("serve", help="serve the simulator until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    serve.add_argument("--rpm", type=float, help="requests per minute per API key")
    serve.add_argument("--tpm", type=float, help="tokens per minute per API key (prompt + "
                       "max_tokens charged at admission, as OpenAI does)")
    serve.add_argument("--itpm", type=float, help="input tokens per minute per API key "
                       "(Anthropic's separate input limit)")
    serve.add_argument("--otpm", type=float, help="output tokens per minute per API key "
                       "(Anthropic: max_tokens charged at admission, adjusted to actual)")
    serve.add_argument("--charge", choices=["tokenizer", "chars"], default="tokenizer",
                       help="how --tpm counts the prompt: the tokenizer (default) or "
                            "characters / 4, as OpenAI's limiter is reported to")
    serve.add_argument("--charge-factor", type=float, default=1.0, metavar="F",
                       help="charge F times the --tpm count (a server that counts more)")
    serve.add_argument("--count-refused", action="store_true",
                       help="refused requests count against the limits too (as OpenAI says)")
    serve.add_argument("--quiet-limits", action="store_true",
                       help="say nothing about the limits: no rate-limit headers, 429 bodies "
                            "without numbers, only Retry-After (a rate-limiting proxy)")
    serve.add_argument("--latency-ms", type=float, default=0.0)
    serve.add_argument("--jitter-ms", type=float, default=0.0)
    serve.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx/529 answers")
    serve.add_argument("--timeout-rate", type=float, default=0.0,
                       help="share of requests that hang for --hang-s")
    serve.add_argument("--drop-rate", type=float, default=0.0,
                       help="share of connections cut half-way through the body")
    serve.add_argument("--malformed-rate", type=float, default=0.0,
                       help="share of 200 answers whose body is not JSON")
    serve.add_argument("--hang-s", type=float, default=90.0)
    serve.add_argument("--burst-s", type=float, default=1.0,
                       help="bucket capacity in seconds of the limit (default 1)")
    serve.add_argument("--bad-verdict-rate", type=float, default=0.02,
                       help="share of judge answers without a score")
    serve.add_argument("--verbosity", type=float, default=1.0,
                       help="make free-text answers this many times as long (default 1)")
    serve.add_argument("--seed", type=int, default=0)
    caching = serve.add_argument_group("prompt caching and batches")
    caching.add_argument("--no-prompt-cache", dest="prompt_cache", action="store_false",
                         help="report no cached prompt tokens (default: cache as the "
                              "providers do)")
    caching.add_argument("--batch-validate-s", type=float, default=1.0,
                         help="seconds an OpenAI batch spends validating (default 1)")
    caching.add_argument("--batch-delay-s", type=float, default=5.0,
                         help="seconds a batch takes to process all its lines (default 5)")
    caching.add_argument("--batch-finalize-s", type=float, default=1.0,
                         help="seconds an OpenAI batch spends finalizing (default 1)")
    caching.add_argument("--batch-cancel-s", type=float, default=1.0,
                         help="seconds from a cancel request to the end (default 1)")
    caching.add_argument("--batch-window-s", type=float, default=86_400.0,
                         help="a batch unfinished this long after creation expires "
                              "(default 86400, the providers' 24 h)")
    caching.add_argument("--batch-fail-rate", type=float, default=0.0,
                         help="share of batch lines answered with a server error")
    caching.add_argument("--batch-max-requests", type=int,
                         help="lower the requests-per-batch limit (default: the provider's)")
    caching.add_argument("--batch-max-bytes", type=int,
                         help="lower the bytes-per-batch limit (default: the provider's)")
    serve.add_argument("--require-key", default=os.environ.get("MLIFT_SIM_KEY"),
                       help="demand this API key (default: $MLIFT_SIM_KEY; none if unset)")
    serve.set_defaults(handler=_serve)

    demo = sub.add_parser("demo", help="a 10-second tour through the real SDKs")
    demo.set_defaults(handler=_demo)


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(rpm=args.rpm, tpm=args.tpm, itpm=args.itpm, otpm=args.otpm,
                     token_charge=args.charge, charge_factor=args.charge_factor,
                     count_refused=args.count_refused,
                     limit_headers=not args.quiet_limits, latency_ms=args.latency_ms,
                     jitter_ms=args.jitter_ms, error_rate=args.error_rate,
                     timeout_rate=args.timeout_rate, drop_rate=args.drop_rate,
                     malformed_rate=args.malformed_rate, hang_s=args.hang_s,
                     burst_s=args.burst_s, seed=args.seed, require_key=args.require_key,
                     bad_verdict_rate=args.bad_verdict_rate, verbosity=args.verbosity,
                     prompt_cache=args.prompt_cache, batch_validate_s=args.batch_validate_s,
                     batch_delay_s=args.batch_delay_s, batch_finalize_s=args.batch_finalize_s,
                     batch_cancel_s=args.batch_cancel_s, batch_window_s=args.batch_window_s,
                     batch_fail_rate=args.batch_fail_rate,
                     batch_max_requests=args.batch_max_requests,
                     batch_max_bytes=args.batch_max_bytes)


def _serve(args: argparse.Namespace) -> int:
    config = _config(args)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if sys.platform != "win32":
            # Ctrl-C and a process manager's TERM both stop cleanly (on Windows,
            # which has no loop signal handlers, Ctrl-C arrives as KeyboardInterrupt).
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        server = SimServer(config)
        await server.start(args.host, args.port)
        try:
            print(f"mlift sim: serving on {server.base_url} "
                  f"(OpenAI base_url {server.base_url}/v1)", flush=True)
            await stop.wait()
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C before the handlers were set
        asyncio.run(serve())
    print("mlift sim: stopped", file=sys.stderr)
    return 0


# mlift's providers name the prompt a request came from in this header; the
# simulator answers by it (a real server ignores it). The messages themselves
# are exactly what a real model would read.
_TRANSLATE = {ROUTE_HEADER: "translate/to_en@v1 translate source=hi target=en"}
_INSTRUCT = {ROUTE_HEADER: "instruct/question@v1 instruct task=question style=chat"}
_JUDGE = {ROUTE_HEADER: "judge/fit@v2 judge format=json"}
_VERDICT = {"type": "object", "required": ["reason", "score"], "additionalProperties": False,
            "properties": {"reason": {"type": "string"},
                           "score": {"type": "integer", "enum": [1, 2, 3, 4, 5]}}}
_PAIR = ("<instruction>When did the monsoon come?</instruction>"
         "<response>It arrived early this year.</response>")


async def _tour() -> None:
    import anthropic
    import openai

    async with SimServer(SimConfig(seed=7)) as sim:
        print(f"simulator on {sim.base_url}\n")
        oai = openai.AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="sim", max_retries=0)
        ant = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sim", max_retries=0)
        try:
            chat = await oai.chat.completions.create(
                model="gpt-4o-mini", max_tokens=200, extra_headers=_TRANSLATE, messages=[
                    {"role": "system", "content": "You translate text faithfully."},
                    {"role": "user", "content": "<text>मानसून इस साल जल्दी आया।</text>"}])
            print("openai  translate hi→en:", chat.choices[0].message.content)
            print("        usage:", chat.usage.model_dump() if chat.usage else None)
            msg = await ant.messages.create(
                model="claude-3-5-haiku-latest", max_tokens=200, extra_headers=_INSTRUCT,
                system="Write an instruction.",
                messages=[{"role": "user", "content": "<response>The monsoon arrived early; "
                           "farmers planted rice.</response>"}])
            print("anthropic instruct:    ", msg.content[0].text)  # type: ignore[union-attr]
            verdict = await oai.chat.completions.create(
                model="gpt-4o-mini", max_tokens=100, extra_headers=_JUDGE,
                messages=[{"role": "system", "content": "Rate the pair."},
                          {"role": "user", "content": _PAIR}])
            print("openai  judge:         ", verdict.choices[0].message.content)
            strict = await oai.chat.completions.create(
                model="gpt-4o-mini", max_tokens=100, extra_headers=_JUDGE,
                messages=[{"role": "user", "content": _PAIR}],
                response_format={"type": "json_schema", "json_schema": {
                    "name": "judge_fit", "schema": _VERDICT, "strict": True}})
            print("openai  judge, json_schema:", strict.choices[0].message.content)
            tool = await ant.messages.create(
                model="claude-3-5-haiku-latest", max_tokens=100, extra_headers=_JUDGE,
                messages=[{"role": "user", "content": _PAIR}],
                tools=[{"name": "judge_fit", "description": "Record the verdict.",
                        "input_schema": _VERDICT}],
                tool_choice={"type": "tool", "name": "judge_fit"})
            print("anthropic judge, forced tool:",
                  json.dumps(tool.content[0].input))  # type: ignore[union-attr]
            plain = await oai.chat.completions.create(
                model="gpt-4o-mini", max_tokens=60,
                messages=[{"role": "user", "content": "Rate this pair from 1 to 5."}])
            print("openai  no header:     ", plain.choices[0].message.content)
            cut = await oai.chat.completions.create(
                model="gpt-4o-mini", max_tokens=5,
                messages=[{"role": "user", "content": "Tell me a long story about rivers."}])
            print("openai  max_tokens=5:  ", repr(cut.choices[0].message.content),
                  "finish_reason:", cut.choices[0].finish_reason)
            print("anthropic streaming:    ", end="")
            async with ant.messages.stream(
                    model="claude-3-5-haiku-latest", max_tokens=60,
                    messages=[{"role": "user", "content": "Say hello to the reader."}]) as stream:
                async for text in stream.text_stream:
                    print(text, end="", flush=True)
            print("\n\nGET /stats:")
            print(json.dumps(sim.stats(), indent=2))
        finally:
            await oai.close()
            await ant.close()


def _demo(args: argparse.Namespace) -> int:
    asyncio.run(_tour())
    return 0
