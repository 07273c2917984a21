"""Both kinds through every transport against llama-server: answers, stop reasons, usage, errors.

mlift never streams (its providers send ``stream`` nowhere and refuse it as
a param), so what is checked here is what mlift sends and reads back.
"""

from __future__ import annotations

import time

import pytest

from mlift.errors import PermanentError
from mlift.types import Message, Request
from real.real_support import CONTEXT_PER_SLOT, WIRES, EngineFactory, RealServer, spec

SYSTEM = "You are a terse assistant."
COUNT = "Count from 1 to 50, one number per line."


def request(kind: str, content: str, max_tokens: int, **extra: object) -> Request:
    return Request(target=spec(kind), max_tokens=max_tokens, temperature=0.0,
                   messages=(Message("system", SYSTEM), Message("user", content)),
                   **extra)  # type: ignore[arg-type]


def as_dicts(req: Request) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in req.messages]


@pytest.mark.parametrize(("kind", "transport"), WIRES)
async def test_every_kind_and_transport_gets_an_answer(make_engine: EngineFactory, kind: str,
                                                       transport: str) -> None:
    async with make_engine(transport=transport) as engine:
        done = await engine.complete(request(kind, "Say hello in one short sentence.", 24))
    assert done.text.strip()
    assert done.finish_reason in ("stop", "length")
    assert 0 < done.usage.output_tokens <= 24
    assert done.request_id  # llama-server's id, carried through for error reports
    assert done.attempts == 1


@pytest.mark.parametrize(("kind", "transport"), WIRES)
async def test_an_answer_cut_at_max_tokens_has_finish_reason_length(
        make_engine: EngineFactory, kind: str, transport: str) -> None:
    # openai: finish_reason "length"; anthropic: stop_reason "max_tokens". The anthropic
    # kind sends a temperature only in params (as for a server that takes one): asked for
    # here, the answer is greedy and cannot end on its own before the cut (sampled, it did
    # about one run in 40).
    extra: dict[str, object] = {"params": (("temperature", 0.0),)} if kind == "anthropic" else {}
    async with make_engine(transport=transport) as engine:
        done = await engine.complete(request(kind, COUNT, 6, **extra))
    assert done.finish_reason == "length"
    assert done.usage.output_tokens == 6
    assert engine.accounting.snapshot()["totals"]["retries"] == 0  # a result, not a retry


@pytest.mark.parametrize(("kind", "transport"), WIRES)
async def test_usage_is_what_the_servers_tokenizer_counts(
        make_engine: EngineFactory, server: RealServer, kind: str, transport: str) -> None:
    req = request(kind, COUNT, 12)
    async with make_engine(transport=transport) as engine:
        done = await engine.complete(req)
    # The prompt as the server's chat template renders it (anthropic: its cache
    # reads included, which mlift counts as input).
    assert done.usage.input_tokens == server.prompt_tokens(as_dicts(req))
    if done.finish_reason == "length":
        assert done.usage.output_tokens == 12
    else:  # the anthropic kind sends no temperature: sampled, it may stop anywhere up to 12
        assert done.finish_reason == "stop" and 0 <= done.usage.output_tokens <= 12
    # Re-tokenizing decoded text may merge a token or two at the seams, never more.
    assert abs(len(server.tokens(done.text)) - done.usage.output_tokens) <= 2


@pytest.mark.parametrize(("kind", "transport"), WIRES)
async def test_a_prompt_longer_than_the_context_is_a_clear_permanent_error(
        make_engine: EngineFactory, kind: str, transport: str) -> None:
    long_text = "word " * (CONTEXT_PER_SLOT + 500)
    started = time.monotonic()
    async with make_engine(transport=transport) as engine:
        with pytest.raises(PermanentError) as caught:
            await engine.complete(request(kind, long_text, 8))
        totals = engine.accounting.snapshot()["totals"]
    assert caught.value.status == 400
    assert "context size" in str(caught.value)  # llama-server's own words reach the user
    assert f"({CONTEXT_PER_SLOT} tokens)" in str(caught.value)
    assert totals["retries"] == 0 and totals["failures"] == 1
    assert time.monotonic() - started < 60  # answered at once, not retried until it gives up
