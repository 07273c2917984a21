"""StageBatches through the real SDKs against the simulator's batch APIs, on virtual time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from batch_helpers import (
    JUDGE,
    KINDS,
    MODELS,
    Clocked,
    client,
    endpoint,
    request,
    stage_requests,
)

from mlift.batch import BatchJournal, Limits, LineResult, PollPolicy, StageBatches, line_id
from mlift.engine.accounting import Accounting, Budget
from mlift.errors import BudgetExceeded, PermanentError, ServerError, TransientError
from mlift.prices import PriceTable
from mlift.providers.anthropic import AnthropicProvider
from mlift.providers.openai import OpenAIProvider
from mlift.sim import SimConfig, SimServer

SimFactory = Callable[..., Awaitable[SimServer]]
PRICES = PriceTable.load()
QUICK = SimConfig(batch_validate_s=1, batch_delay_s=30, batch_finalize_s=1)
LONG = " ".join(f"Rule {i}: keep the meaning, the register and every number of the text."
                for i in range(160))


@pytest.fixture
async def world(sim: SimFactory, clock: Any, tmp_path: Path
                ) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await world(kind, config)`` -> (server, client, driver factory)."""
    clients: list[Any] = []

    async def make(kind: str, config: SimConfig = QUICK, **options: Any) -> Any:
        server = await sim(config, clock=clock)
        batch_client = client(kind, server, **options)
        clients.append(batch_client)
        sleep = Clocked(clock)

        def driver(**kw: Any) -> StageBatches:
            kw.setdefault("price", PRICES.lookup(kind, MODELS[kind]))
            kw.setdefault("sleep", sleep)
            return StageBatches(batch_client, BatchJournal(tmp_path), stage="judge",
                                poll=PollPolicy(5, 2, 60), **kw)

        return server, batch_client, driver

    yield make
    for c in clients:
        await c.aclose()


def journal_events(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (tmp_path / "batches.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stage_gets_the_online_answers_at_half_the_price(
        world: Any, kind: str, tmp_path: Path) -> None:
    server, _, driver = await world(kind)
    requests = stage_requests(kind, server, 12)
    arrived: list[LineResult] = []

    async def on_result(line: LineResult) -> None:
        arrived.append(line)

    accounting = Accounting()
    results = await driver(accounting=accounting).run(requests, on_result=on_result)
    assert sorted(results) == sorted(requests) == sorted(r.custom_id for r in arrived)
    assert {r.outcome for r in results.values()} == {"succeeded"}
    online_cls = OpenAIProvider if kind == "openai" else AnthropicProvider
    online = online_cls(endpoint(kind, server))
    price = PRICES.lookup(kind, MODELS[kind])
    try:
        for cid, req in list(requests.items())[:3]:
            answer = await online.complete(req)
            got = results[cid].completion
            assert got is not None and got.text == answer.text and got.usage == answer.usage
            assert got.cost_usd == pytest.approx(price.cost(answer.usage) / 2, rel=1e-12)
    finally:
        await online.aclose()
    stats = server.stats()
    assert stats["batch"]["lines_submitted"] == 12 and stats["batch"]["resubmitted"] == 0
    assert stats["requests"] == 3  # only the online comparisons
    totals = accounting.snapshot()["totals"]
    assert (totals["batch_requests"], totals["successes"]) == (12, 12)
    assert totals["cost_usd"] == pytest.approx(
        sum(r.completion.cost_usd for r in results.values() if r.completion))
    events = [e["event"] for e in journal_events(tmp_path) if e["event"] != "uploaded"]
    assert events[:2] == ["submitting", "created"] and events[-2:] == ["ended", "collected"]
    assert "state" in events[2:-2]  # every change polling saw, before the end


@pytest.mark.parametrize("kind", KINDS)
async def test_batches_are_split_on_the_bytes_actually_sent(world: Any, kind: str,
                                                           tmp_path: Path) -> None:
    probe_server, probe, _ = await world(kind)
    requests = stage_requests(kind, probe_server, 12, start=10)  # lines of equal length
    units = [len(probe.encode(cid, r)) for cid, r in requests.items()]
    exact = probe.framing.size(3, sum(units[:3]))  # three lines fit exactly, four don't
    # The simulator enforces the limit on what it receives, as the providers do.
    server, _, driver = await world(kind, SimConfig(batch_max_bytes=exact, batch_delay_s=10),
                                    limits=Limits(max_requests=1000, max_bytes=exact))
    requests = stage_requests(kind, server, 12, start=10)
    results = await driver().run(requests)
    assert {r.outcome for r in results.values()} == {"succeeded"}
    submitted = [e for e in journal_events(tmp_path) if e["event"] == "submitting"]
    assert [len(e["custom_ids"]) for e in submitted] == [3, 3, 3, 3]
    assert max(e["bytes"] for e in submitted) <= exact
    if kind == "openai":
        sdk = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="sk-test-key",
                                 max_retries=0)
        uploaded = [f async for f in sdk.files.list(purpose="batch")]
        await sdk.close()
        assert sorted(f.bytes for f in uploaded) == sorted(e["bytes"] for e in submitted)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_request_too_big_for_any_batch_fails_without_being_sent(
        world: Any, kind: str) -> None:
    server, _, driver = await world(kind, limits=Limits(max_requests=10, max_bytes=2_000))
    requests = stage_requests(kind, server, 3)
    big = request(kind, 99, system=JUDGE + "x" * 3_000)
    requests[line_id(big, endpoint(kind, server))] = big
    results = await driver().run(requests)
    failed = [r for r in results.values() if r.outcome == "failed"]
    assert len(failed) == 1 and isinstance(failed[0].error, PermanentError)
    assert "more than a whole batch may hold" in str(failed[0].error)
    assert failed[0].error.item_id == "item-99"
    assert server.stats()["batch"]["lines_submitted"] == 3


@pytest.mark.parametrize("kind", KINDS)
async def test_failed_lines_are_resent_once_then_given_up_with_the_reason(
        world: Any, kind: str, tmp_path: Path) -> None:
    server, _, driver = await world(kind, SimConfig(batch_delay_s=10, batch_fail_rate=0.4,
                                                    seed=11))
    requests = stage_requests(kind, server, 30)
    results = await driver().run(requests)
    collected = [e for e in journal_events(tmp_path) if e["event"] == "collected"]
    first_failures = collected[0]["retry"]
    assert len(collected) == 2 and 4 <= len(first_failures) <= 20
    resent = [e for e in journal_events(tmp_path) if e["event"] == "submitting"][1]
    assert sorted(resent["custom_ids"]) == sorted(first_failures)
    gave_up = [r for r in results.values() if r.outcome == "failed"]
    assert 0 < len(gave_up) < len(first_failures)
    assert all(isinstance(r.error, ServerError) and r.error.status == 500 for r in gave_up)
    assert sum(r.outcome == "succeeded" for r in results.values()) == 30 - len(gave_up)
    batch = server.stats()["batch"]
    # every request went out once, and only the failed ones a second time
    assert batch["lines_submitted"] == 30 + len(first_failures)
    assert batch["resubmitted"] == len(first_failures)


@pytest.mark.parametrize("kind", KINDS)
async def test_expired_lines_are_resent_once_then_end_expired(world: Any, kind: str) -> None:
    server, _, driver = await world(kind, SimConfig(batch_validate_s=0, batch_delay_s=100,
                                                    batch_window_s=40, batch_finalize_s=0))
    requests = stage_requests(kind, server, 10)
    results = await driver().run(requests)
    # each batch does 40 % of its lines before it expires: 4 of 10, then 2 of the other 6
    outcomes = sorted(r.outcome for r in results.values())
    assert outcomes == ["expired"] * 4 + ["succeeded"] * 6
    expired = [r for r in results.values() if r.outcome == "expired"]
    assert all(isinstance(r.error, TransientError) and "expired" in str(r.error)
               for r in expired)
    assert server.stats()["batch"]["lines_submitted"] == 16


@pytest.mark.parametrize("kind", KINDS)
async def test_a_line_the_provider_refuses_is_not_resent(world: Any, kind: str) -> None:
    server, _, driver = await world(kind)
    requests = stage_requests(kind, server, 4)
    bad = request(kind, 7, max_tokens=0)  # the chat route refuses max_tokens 0 with a 400
    requests[line_id(bad, endpoint(kind, server))] = bad
    results = await driver().run(requests)
    refused = results[line_id(bad, endpoint(kind, server))]
    assert refused.outcome == "failed" and isinstance(refused.error, PermanentError)
    assert refused.error.status == 400 and "max_tokens" in str(refused.error)
    assert server.stats()["batch"]["lines_submitted"] == 5


@pytest.mark.parametrize("kind", KINDS)
async def test_a_request_the_online_provider_would_refuse_is_never_sent(
        world: Any, kind: str) -> None:
    server, _, driver = await world(kind)
    reserved = request(kind, 1, params=(("stream", True),))
    results = await driver().run({line_id(reserved, endpoint(kind, server)): reserved})
    [line] = results.values()
    assert line.outcome == "failed" and "mlift sends them itself" in str(line.error)
    assert server.stats()["batch"]["lines_submitted"] == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_cancel_is_explicit_and_unrun_lines_end_canceled(world: Any, kind: str,
                                                               clock: Any,
                                                               tmp_path: Path) -> None:
    server, _, driver = await world(kind, SimConfig(batch_validate_s=0, batch_delay_s=100,
                                                    batch_cancel_s=1))
    requests = stage_requests(kind, server, 10)
    waiting, go = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:  # the run waits after its first poll
        clock.advance(seconds)
        waiting.set()
        await go.wait()

    task = asyncio.create_task(driver(sleep=sleep).run(requests))
    await waiting.wait()
    clock.advance(20)  # 25 s in: 2 of the 10 lines (one per 10 s) have run
    statuses = await driver().cancel()  # as `mlift batches --cancel` would, from the journal
    assert [s.state for s in statuses] == (["cancelling"] if kind == "openai"
                                           else ["canceling"])
    go.set()
    results = await task
    outcomes = sorted(r.outcome for r in results.values())
    assert outcomes == ["canceled"] * 8 + ["succeeded"] * 2
    assert server.stats()["batch"]["lines_submitted"] == 10  # nothing resent after a cancel
    assert any(e["event"] == "cancel" for e in journal_events(tmp_path))


@pytest.mark.parametrize("kind", KINDS)
async def test_the_budget_stops_before_a_batch_that_could_pass_the_cap(
        world: Any, kind: str) -> None:
    server, _, driver = await world(kind)
    requests = stage_requests(kind, server, 5)
    budget = Budget(1e-6)
    with pytest.raises(BudgetExceeded, match="at batch prices"):
        await driver(budget=budget).run(requests)
    assert server.stats()["batch"]["batches"] == {}
    ok = Budget(1.0)
    await driver(budget=ok).run(requests)
    assert ok.reserved == 0 and 0 < ok.spent < 1.0


async def test_anthropic_cache_reads_in_a_batch_are_priced_at_the_batch_cache_rate(
        world: Any) -> None:
    server, _, driver = await world("anthropic")
    marked = (("cache_control", {"type": "ephemeral"}),)
    price = PRICES.lookup("anthropic", MODELS["anthropic"])

    def stage(first: int) -> dict[str, Any]:
        # The same prompt (a top-level mark caches all of it), distinct requests by max_tokens.
        ep = endpoint("anthropic", server)
        reqs = [request("anthropic", i, system=LONG, user="the same question", params=marked,
                        max_tokens=50 + i) for i in range(first, first + 3)]
        return {line_id(r, ep): r for r in reqs}

    cold = await driver().run(stage(0))
    warm = await driver().run(stage(10))
    for line in cold.values():
        assert line.completion is not None
        usage = line.completion.usage
        assert usage.cache_write_tokens > 2048 and usage.cached_input_tokens == 0
    for line in warm.values():
        assert line.completion is not None
        usage = line.completion.usage
        assert usage.cached_input_tokens > 2048 and usage.cache_write_tokens == 0
        # batch rates for claude-3-5-haiku: fresh 0.40, cache read 0.04, output 2.00 per 1M
        fresh = usage.input_tokens - usage.cached_input_tokens
        expected = (fresh * 0.40 + usage.cached_input_tokens * 0.04
                    + usage.output_tokens * 2.00) / 1e6
        assert line.completion.cost_usd == pytest.approx(expected, rel=1e-12)
        assert line.completion.cost_usd == pytest.approx(price.cost(usage, batch=True))


async def test_a_stage_of_60000_requests_goes_out_as_two_openai_batches(
        world: Any, clock: Any, tmp_path: Path) -> None:
    server, batch_client, driver = await world("openai")  # the real limits: 50,000 / 200 MB
    ep = endpoint("openai", server)
    requests = {}
    for i in range(60_000):
        req = request("openai", i, system="x")
        requests[line_id(req, ep)] = req

    class Sent(Exception):
        pass

    def stop(views: Any) -> None:
        raise Sent

    with pytest.raises(Sent):  # stop once both batches are created
        await driver(on_progress=stop).run(requests)
    submitted = [e for e in journal_events(tmp_path) if e["event"] == "submitting"]
    assert [len(e["custom_ids"]) for e in submitted] == [50_000, 10_000]
    clock.advance(2)  # past validation: the simulator checks the 50,000 limit itself
    created = [e["batch_id"] for e in journal_events(tmp_path) if e["event"] == "created"]
    statuses = [await batch_client.status(b) for b in created]
    assert [(s.state, s.total) for s in statuses] == [("in_progress", 50_000),
                                                      ("in_progress", 10_000)]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_request_an_earlier_run_gave_up_on_is_sent_again_when_asked_for(
        world: Any, kind: str, tmp_path: Path) -> None:
    # The caller turned the failure into a reject to retry: the next run asks again.
    server, _, driver = await world(kind, SimConfig(batch_delay_s=10, batch_fail_rate=0.5,
                                                    seed=3))
    requests = stage_requests(kind, server, 30)
    first = await driver().run(requests)
    gave_up = {cid for cid, r in first.items() if r.outcome == "failed"}
    assert gave_up
    sent, planned = server.stats()["batch"]["lines_submitted"], len(journal_events(tmp_path))
    again = await driver().run({cid: requests[cid] for cid in gave_up})
    assert sorted(again) == sorted(gave_up)
    events = journal_events(tmp_path)[planned:]
    submitted = [set(e["custom_ids"]) for e in events if e["event"] == "submitting"]
    retried = next(set(e["retry"]) for e in events if e["event"] == "collected")
    # sent afresh, each with a second chance of its own, and nothing else sent
    assert submitted[0] == gave_up
    assert server.stats()["batch"]["lines_submitted"] == sent + len(gave_up) + len(retried)
    assert sum(r.outcome == "succeeded" for r in again.values()) > 0
    # a request answered in an earlier run is fetched again, never sent again
    done = next(cid for cid, r in first.items() if r.outcome == "succeeded")
    before = server.stats()["batch"]["lines_submitted"]
    refetched = await driver().run({done: requests[done]})
    assert refetched[done].outcome == "succeeded"
    assert server.stats()["batch"]["lines_submitted"] == before


@pytest.mark.parametrize("kind", KINDS)
async def test_cancel_can_name_the_batches_to_cancel(world: Any, kind: str, clock: Any,
                                                     tmp_path: Path) -> None:
    server, batch_client, driver = await world(
        kind, SimConfig(batch_validate_s=0, batch_delay_s=100), limits=Limits(5, 10**8))
    requests = stage_requests(kind, server, 10)  # two batches of five
    waiting, go = asyncio.Event(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        waiting.set()
        await go.wait()

    task = asyncio.create_task(driver(sleep=sleep).run(requests))
    await waiting.wait()
    ids = [e["batch_id"] for e in journal_events(tmp_path) if e["event"] == "created"]
    assert len(ids) == 2
    statuses = await driver().cancel(only={ids[1]})
    assert [s.batch_id for s in statuses] == [ids[1]]
    assert (await batch_client.status(ids[0])).state == "in_progress"
    task.cancel()
    go.set()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("kind", KINDS)
async def test_the_journal_keeps_each_batchs_final_counts(world: Any, kind: str,
                                                          tmp_path: Path) -> None:
    server, _, driver = await world(kind, SimConfig(batch_delay_s=10, batch_fail_rate=0.3,
                                                    seed=5))
    await driver(max_attempts=1).run(stage_requests(kind, server, 20))
    [chunk] = BatchJournal(tmp_path).load_sync()
    assert chunk.ended and chunk.total == 20
    assert chunk.done + chunk.failed == 20 and 0 < chunk.failed < 20
    assert chunk.done == server.stats()["batch"]["results"]["succeeded"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_batchs_answers_are_booked_and_made_durable_before_they_are_handed_over(
        world: Any, kind: str) -> None:
    server, _, driver = await world(kind)
    requests = stage_requests(kind, server, 6)
    accounting = Accounting()
    seen: list[str] = []

    async def booked() -> None:
        # every answer is in the accounting, none handed over yet
        assert accounting.snapshot()["totals"]["successes"] == 6
        seen.append("booked")

    async def on_result(line: LineResult) -> None:
        seen.append("handed")

    await driver(accounting=accounting, on_booked=booked).run(requests, on_result=on_result)
    assert seen == ["booked"] + ["handed"] * 6
