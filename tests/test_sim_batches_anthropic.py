"""The simulator's Message Batches API through the real anthropic SDK, on a virtual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import pytest

from mlift.sim import SimConfig, SimServer

SimFactory = Callable[..., Awaitable[SimServer]]
MODEL = "claude-3-5-haiku-latest"
SYSTEM = "Write an instruction.\n<!-- mlift:instruct task=question style=chat -->"
LONG = " ".join(f"Rule {i}: keep the meaning, the register and every number of the text."
                for i in range(160))


def params(i: int, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 80, "system": SYSTEM,
            "messages": [{"role": "user", "content": f"<response>Answer {i}.</response>"}],
            **extra}


def requests(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"req-{i}", "params": params(i)} for i in range(n)]


@pytest.fixture
async def setup(sim: SimFactory, clock: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    clients: list[anthropic.AsyncAnthropic] = []

    async def make(config: SimConfig | None = None
                   ) -> tuple[SimServer, anthropic.AsyncAnthropic]:
        server = await sim(config or SimConfig(batch_delay_s=10), clock=clock)
        client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-ant-test",
                                          max_retries=0)
        clients.append(client)
        return server, client

    yield make
    for client in clients:
        await client.close()


async def results(client: anthropic.AsyncAnthropic, batch_id: str) -> dict[str, Any]:
    return {r.custom_id: r.result async for r in await client.messages.batches.results(batch_id)}


async def test_a_batch_runs_in_progress_then_ends_with_results(setup: Any, clock: Any) -> None:
    server, client = await setup()
    batch = await client.messages.batches.create(requests=requests(5))  # type: ignore[arg-type]
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 5
    assert (batch.expires_at - batch.created_at).total_seconds() == 86_400
    clock.advance(9)
    batch = await client.messages.batches.retrieve(batch.id)
    # requests stay "processing" until the whole batch ends
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 5
    assert server.stats()["batch"]["lines_processed"] == 4
    clock.advance(1)
    batch = await client.messages.batches.retrieve(batch.id)
    assert batch.processing_status == "ended" and batch.ended_at is not None
    assert (batch.request_counts.processing, batch.request_counts.succeeded) == (0, 5)
    assert batch.results_url == f"{server.base_url}/v1/messages/batches/{batch.id}/results"
    got = await results(client, batch.id)
    assert sorted(got) == [f"req-{i}" for i in range(5)]
    assert all(r.type == "succeeded" for r in got.values())
    online = await client.messages.create(**params(2))
    message = got["req-2"].message
    assert message.content[0].text == online.content[0].text  # type: ignore[union-attr]
    assert message.usage.input_tokens == online.usage.input_tokens
    assert message.usage.service_tier == "batch"


@pytest.mark.parametrize(("custom_id", "complaint"), [
    ("has space", "requests.1.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"),
    ("x" * 65, "requests.1.custom_id: String should have at most 64 characters"),
    ("", "requests.1.custom_id: String should match pattern"),
    ("req-0", "requests.1.custom_id: custom_id 'req-0' is used by more than one request"),
])
async def test_custom_ids_must_follow_the_rules(setup: Any, custom_id: str,
                                                complaint: str) -> None:
    _, client = await setup()
    batch = [*requests(1), {"custom_id": custom_id, "params": params(1)}]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.batches.create(requests=batch)  # type: ignore[arg-type]
    assert complaint in str(info.value)


async def test_count_and_size_limits_are_refused_with_the_real_errors(setup: Any) -> None:
    _, client = await setup(SimConfig(batch_max_requests=3, batch_max_bytes=3_000))
    with pytest.raises(anthropic.BadRequestError, match="at most 3 items after validation, "
                                                        "not 4"):
        await client.messages.batches.create(requests=requests(4))  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError, match="at least 1 item"):
        await client.messages.batches.create(requests=[])
    big = [{"custom_id": f"r{i}", "params": params(i, system="x" * 1200)} for i in range(3)]
    with pytest.raises(anthropic.RequestTooLargeError, match="Request exceeds the maximum size"):
        await client.messages.batches.create(requests=big)  # type: ignore[arg-type]


async def test_bad_params_end_as_errored_results_not_a_refused_batch(setup: Any,
                                                                     clock: Any) -> None:
    _, client = await setup()
    no_max = {k: v for k, v in params(0).items() if k != "max_tokens"}
    batch = await client.messages.batches.create(  # type: ignore[arg-type]
        requests=[*requests(2), {"custom_id": "no-max", "params": no_max}])
    clock.advance(10)
    batch = await client.messages.batches.retrieve(batch.id)
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (2, 1)
    got = await results(client, batch.id)
    assert got["no-max"].type == "errored"
    assert got["no-max"].error.error.type == "invalid_request_error"
    assert "max_tokens: Field required" in got["no-max"].error.error.message


async def test_failed_lines_come_at_the_configured_share_as_api_errors(setup: Any,
                                                                      clock: Any) -> None:
    _, client = await setup(SimConfig(batch_delay_s=10, batch_fail_rate=0.25, seed=5))
    batch = await client.messages.batches.create(requests=requests(80))  # type: ignore[arg-type]
    clock.advance(10)
    batch = await client.messages.batches.retrieve(batch.id)
    got = await results(client, batch.id)
    errored = [r for r in got.values() if r.type == "errored"]
    assert batch.request_counts.errored == len(errored)
    assert batch.request_counts.succeeded + len(errored) == 80
    assert 10 <= len(errored) <= 30
    assert {r.error.error.type for r in errored} == {"api_error"}


async def test_cancel_goes_canceling_then_ended_with_canceled_results(
        setup: Any, clock: Any) -> None:
    _, client = await setup(SimConfig(batch_delay_s=10, batch_cancel_s=2))
    batch = await client.messages.batches.create(requests=requests(10))  # type: ignore[arg-type]
    clock.advance(4)
    batch = await client.messages.batches.cancel(batch.id)
    assert batch.processing_status == "canceling" and batch.cancel_initiated_at is not None
    clock.advance(2)
    batch = await client.messages.batches.retrieve(batch.id)
    assert batch.processing_status == "ended"
    counts = batch.request_counts
    assert (counts.succeeded, counts.canceled, counts.processing) == (4, 6, 0)
    got = await results(client, batch.id)
    assert sum(r.type == "canceled" for r in got.values()) == 6
    with pytest.raises(anthropic.BadRequestError, match="can no longer be canceled"):
        await client.messages.batches.cancel(batch.id)


async def test_a_batch_past_24_hours_ends_with_expired_results(setup: Any, clock: Any) -> None:
    _, client = await setup(SimConfig(batch_delay_s=100, batch_window_s=30))
    batch = await client.messages.batches.create(requests=requests(10))  # type: ignore[arg-type]
    clock.advance(30)
    batch = await client.messages.batches.retrieve(batch.id)
    assert batch.processing_status == "ended"
    assert (batch.request_counts.succeeded, batch.request_counts.expired) == (3, 7)
    assert batch.ended_at == batch.expires_at
    got = await results(client, batch.id)
    assert sorted(r.type for r in got.values()) == ["expired"] * 7 + ["succeeded"] * 3


async def test_results_are_there_only_once_ended(setup: Any) -> None:
    _, client = await setup()
    batch = await client.messages.batches.create(requests=requests(1))  # type: ignore[arg-type]
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        await client.messages.batches.results(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve("msgbatch_nope")


async def test_list_pages_newest_first_and_ended_batches_can_be_deleted(
        setup: Any, clock: Any) -> None:
    _, client = await setup()
    ids = [(await client.messages.batches.create(requests=requests(1))).id  # type: ignore[arg-type]
           for _ in range(4)]
    page = await client.messages.batches.list(limit=3)
    assert [b.id for b in page.data] == ids[::-1][:3] and page.has_more
    assert [b.id async for b in client.messages.batches.list(limit=3)] == ids[::-1]
    with pytest.raises(anthropic.BadRequestError, match="still processing"):
        await client.messages.batches.delete(ids[0])
    clock.advance(60)
    deleted = await client.messages.batches.delete(ids[0])
    assert deleted.type == "message_batch_deleted"
    assert [b.id async for b in client.messages.batches.list()] == ids[:0:-1]


async def test_batch_lines_write_the_cache_for_the_next_batch_not_for_each_other(
        setup: Any, clock: Any) -> None:
    _, client = await setup()
    marked = [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]

    async def run(first: int) -> list[tuple[int, int]]:
        batch = await client.messages.batches.create(requests=[  # type: ignore[arg-type]
            {"custom_id": f"c{i}", "params": params(i, system=marked)}
            for i in range(first, first + 4)])
        clock.advance(10)
        return [(r.message.usage.cache_read_input_tokens,
                 r.message.usage.cache_creation_input_tokens)
                for r in (await results(client, batch.id)).values()]

    cold = await run(0)
    assert all(read == 0 and write > 2048 for read, write in cold)
    warm = await run(10)
    assert all(read == cold[0][1] and write == 0 for read, write in warm)
