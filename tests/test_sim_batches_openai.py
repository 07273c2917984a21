"""The simulator's Files and Batch APIs through the real openai SDK, on a virtual clock."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest

from mlift.sim import SimConfig, SimServer

SimFactory = Callable[..., Awaitable[SimServer]]
MODEL = "gpt-4o-mini"
URL = "/v1/chat/completions"
JUDGE = "Rate the pair.\n<!-- mlift:judge format=json -->"
LONG = " ".join(f"Rule {i}: keep the meaning, the register and every number of the text."
                for i in range(160))


def body(i: int, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 60, "messages": [
        {"role": "system", "content": JUDGE},
        {"role": "user", "content": f"<instruction>Q{i}</instruction><response>A{i}</response>"}],
        **extra}


def line(custom_id: str, payload: dict[str, Any], url: str = URL) -> bytes:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url,
                       "body": payload}).encode() + b"\n"


def jsonl(n: int) -> bytes:
    return b"".join(line(f"req-{i}", body(i)) for i in range(n))


@pytest.fixture
async def setup(sim: SimFactory, clock: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    clients: list[openai.AsyncOpenAI] = []

    async def make(config: SimConfig | None = None) -> tuple[SimServer, openai.AsyncOpenAI]:
        server = await sim(config or SimConfig(batch_validate_s=1, batch_delay_s=10,
                                               batch_finalize_s=1), clock=clock)
        client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="sk-test",
                                    max_retries=0)
        clients.append(client)
        return server, client

    yield make
    for client in clients:
        await client.close()


async def submit(client: openai.AsyncOpenAI, data: bytes, **extra: Any) -> Any:
    upload = await client.files.create(file=("input.jsonl", data, "application/jsonl"),
                                       purpose="batch")
    return await client.batches.create(input_file_id=upload.id, endpoint=URL,
                                       completion_window="24h", **extra)


async def read(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [json.loads(x) for x in content.text.splitlines()]


async def test_a_batch_goes_validating_in_progress_finalizing_completed(
        setup: Any, clock: Any) -> None:
    server, client = await setup()
    batch = await submit(client, jsonl(10), metadata={"stage": "judge"})
    assert batch.status == "validating" and batch.id.startswith("batch_")
    assert batch.request_counts.total == 0 and batch.metadata == {"stage": "judge"}
    assert batch.expires_at - batch.created_at == 86_400
    seen = []
    for step in (0.5, 1.5, 4.0, 5.0, 0.5, 0.5):  # lines finish at 2, 3, …, 11 s
        clock.advance(step)
        batch = await client.batches.retrieve(batch.id)
        seen.append((batch.status, batch.request_counts.completed))
    assert seen == [("validating", 0), ("in_progress", 1), ("in_progress", 5),
                    ("finalizing", 10), ("finalizing", 10), ("completed", 10)]
    assert batch.request_counts.total == 10 and batch.request_counts.failed == 0
    assert batch.error_file_id is None and batch.model == MODEL
    assert batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    out = await read(client, batch.output_file_id)
    assert sorted(r["custom_id"] for r in out) == sorted(f"req-{i}" for i in range(10))
    assert [r["custom_id"] for r in out] != sorted(r["custom_id"] for r in out)  # any order
    assert all(r["error"] is None and r["response"]["status_code"] == 200
               and r["response"]["request_id"].startswith("req_") for r in out)
    stats = server.stats()
    assert stats["requests"] == 0  # not online requests
    assert stats["batch"]["lines_submitted"] == stats["batch"]["lines_processed"] == 10
    assert stats["batch"]["tokens_out"] == batch.usage.output_tokens > 0


async def test_a_batch_line_gets_the_same_answer_as_the_online_request(
        setup: Any, clock: Any) -> None:
    _, client = await setup()
    batch = await submit(client, jsonl(3))
    clock.advance(60)
    out = {r["custom_id"]: r["response"]["body"]
           for r in await read(client, (await client.batches.retrieve(batch.id)).output_file_id)}
    online = await client.chat.completions.create(**body(1))
    assert out["req-1"]["choices"][0]["message"]["content"] == \
        online.choices[0].message.content
    assert out["req-1"]["usage"]["prompt_tokens"] == online.usage.prompt_tokens  # type: ignore[union-attr]
    assert out["req-1"]["usage"]["completion_tokens"] == online.usage.completion_tokens  # type: ignore[union-attr]


async def failed_errors(client: openai.AsyncOpenAI, clock: Any, data: bytes) -> list[Any]:
    batch = await submit(client, data)
    clock.advance(1)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "failed" and batch.failed_at is not None
    assert batch.output_file_id is None and batch.request_counts.total == 0
    return list(batch.errors.data)  # type: ignore[union-attr]


async def test_validation_failures_list_each_broken_line_with_openais_codes(
        setup: Any, clock: Any) -> None:
    _, client = await setup()
    bad = b"".join([line("a", body(0)), b"{not json\n", line("a", body(1)),
                    line("b", body(2), url="/v1/embeddings"),
                    line("c", {**body(3), "model": "gpt-4o"}),
                    json.dumps({"custom_id": "d", "url": URL, "body": body(4)}).encode() + b"\n"])
    errors = await failed_errors(client, clock, bad)
    assert [(e.code, e.line) for e in errors] == [
        ("invalid_json_line", 2), ("duplicate_custom_id", 3), ("url_mismatch", 4),
        ("model_mismatch", 5), ("invalid_request", 6)]
    assert errors[0].message == "This line is not parseable as valid JSON."
    assert "'method'" in errors[4].message
    empty = await failed_errors(client, clock, b"")
    assert [e.code for e in empty] == ["empty_file"]


async def test_the_request_and_size_limits_fail_the_batch(setup: Any, clock: Any) -> None:
    _, client = await setup(SimConfig(batch_max_requests=3, batch_max_bytes=2_000))
    many = await failed_errors(client, clock, jsonl(4))
    assert [e.code for e in many] == ["too_many_tasks"]
    assert "4 requests" in many[0].message
    big = b"".join(line(f"r{i}", body(i, user="x" * 900)) for i in range(2))
    assert len(big) > 2_000
    errors = await failed_errors(client, clock, big)
    assert [e.code for e in errors] == ["file_too_large"]
    assert errors[0].message == ("The batch input file is larger than the 2000 maximum for the "
                                 "gpt-4o-mini model. Please try again with a smaller batch.")


async def test_bad_create_parameters_are_refused_at_once(setup: Any) -> None:
    _, client = await setup()
    upload = await client.files.create(file=("in.jsonl", jsonl(1), "application/jsonl"),
                                       purpose="batch")
    with pytest.raises(openai.BadRequestError, match="Supported values are: '24h'"):
        await client.batches.create(input_file_id=upload.id, endpoint=URL,
                                    completion_window="48h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="Invalid value: '/v1/chat'"):
        await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat",  # type: ignore[arg-type]
                                    completion_window="24h")
    with pytest.raises(openai.NotFoundError, match="No such File object: file-nope"):
        await client.batches.create(input_file_id="file-nope", endpoint=URL,
                                    completion_window="24h")
    other = await client.files.create(file=("x.jsonl", jsonl(1), "application/jsonl"),
                                      purpose="user_data")
    with pytest.raises(openai.BadRequestError, match="purpose 'batch'"):
        await client.batches.create(input_file_id=other.id, endpoint=URL,
                                    completion_window="24h")
    with pytest.raises(openai.BadRequestError, match="metadata"):
        await client.batches.create(input_file_id=upload.id, endpoint=URL,
                                    completion_window="24h",
                                    metadata={f"k{i}": "v" for i in range(17)})


async def test_a_line_the_chat_route_would_refuse_lands_in_the_error_file(
        setup: Any, clock: Any) -> None:
    _, client = await setup()
    data = line("good", body(0)) + line("bad", body(1, max_tokens=0))
    batch = await submit(client, data)
    clock.advance(60)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    [err] = await read(client, batch.error_file_id)
    assert err["custom_id"] == "bad" and err["error"] is None
    assert err["response"]["status_code"] == 400
    assert "max_tokens" in err["response"]["body"]["error"]["message"]


async def test_failed_lines_come_at_the_configured_share_with_server_errors(
        setup: Any, clock: Any) -> None:
    _, client = await setup(SimConfig(batch_fail_rate=0.3, seed=3))
    batch = await submit(client, jsonl(200))
    clock.advance(60)
    batch = await client.batches.retrieve(batch.id)
    out, err = await read(client, batch.output_file_id), await read(client, batch.error_file_id)
    assert len(out) + len(err) == 200 == batch.request_counts.total
    assert 40 <= len(err) <= 80 and batch.request_counts.failed == len(err)
    assert {e["response"]["status_code"] for e in err} == {500}
    assert err[0]["response"]["body"]["error"]["type"] == "server_error"


async def test_a_batch_past_its_window_expires_keeping_what_was_done(
        setup: Any, clock: Any) -> None:
    _, client = await setup(SimConfig(batch_validate_s=0, batch_delay_s=100,
                                      batch_window_s=40))
    batch = await submit(client, jsonl(10))
    clock.advance(39)
    assert (await client.batches.retrieve(batch.id)).status == "in_progress"
    clock.advance(1)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "expired" and batch.expired_at == batch.expires_at
    out, err = await read(client, batch.output_file_id), await read(client, batch.error_file_id)
    assert len(out) == 4 and len(err) == 6  # lines finish every 10 s; 4 done by 40 s
    assert all(e["response"] is None and e["error"]["code"] == "batch_expired" for e in err)
    assert batch.request_counts.completed + batch.request_counts.failed == 10


async def test_cancel_goes_cancelling_then_cancelled_keeping_finished_lines(
        setup: Any, clock: Any) -> None:
    server, client = await setup(SimConfig(batch_validate_s=0, batch_delay_s=10,
                                           batch_cancel_s=2))
    batch = await submit(client, jsonl(10))
    clock.advance(3)
    batch = await client.batches.cancel(batch.id)
    assert batch.status == "cancelling" and batch.cancelling_at is not None
    clock.advance(1)
    assert (await client.batches.retrieve(batch.id)).status == "cancelling"
    clock.advance(1)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None
    out = await read(client, batch.output_file_id)
    assert len(out) == 3 and batch.request_counts.completed == 3
    assert server.stats()["batch"]["results"] == {"canceled": 7, "succeeded": 3}
    with pytest.raises(openai.ConflictError, match="status 'cancelled'"):
        await client.batches.cancel(batch.id)


async def test_cancel_while_validating_runs_nothing(setup: Any, clock: Any) -> None:
    _, client = await setup()
    batch = await submit(client, jsonl(5))
    batch = await client.batches.cancel(batch.id)
    assert batch.status == "cancelling"
    clock.advance(5)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "cancelled" and batch.output_file_id is None
    assert batch.in_progress_at is None


async def test_list_is_newest_first_and_pages_with_after(setup: Any, clock: Any) -> None:
    _, client = await setup()
    ids = [(await submit(client, jsonl(1))).id for _ in range(5)]
    page = await client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id async for b in client.batches.list(limit=2)] == ids[::-1]
    with pytest.raises(openai.BadRequestError, match="limit"):
        await client.batches.list(limit=101)


async def test_files_can_be_read_listed_and_deleted(setup: Any) -> None:
    _, client = await setup()
    data = jsonl(2)
    upload = await client.files.create(file=("input.jsonl", data, "application/jsonl"),
                                       purpose="batch")
    assert (upload.bytes, upload.purpose, upload.filename) == (len(data), "batch",
                                                              "input.jsonl")
    assert (await client.files.retrieve(upload.id)).id == upload.id
    assert (await client.files.content(upload.id)).content == data
    assert upload.id in [f.id async for f in client.files.list(purpose="batch")]
    deleted = await client.files.delete(upload.id)
    assert deleted.deleted and deleted.id == upload.id
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        await client.files.retrieve(upload.id)
    with pytest.raises(openai.BadRequestError, match="purpose"):
        await client.files.create(file=("x.jsonl", data), purpose="nonsense")  # type: ignore[arg-type]


async def test_a_batch_reads_only_cache_entries_written_before_it_started(
        setup: Any, clock: Any) -> None:
    _, client = await setup()

    def cached(i: int) -> bytes:
        return line(f"c{i}", {"model": MODEL, "max_tokens": 10, "messages": [
            {"role": "system", "content": LONG}, {"role": "user", "content": f"item {i}"}]})

    async def run(data: bytes) -> list[int]:
        batch = await submit(client, data)
        clock.advance(60)
        batch = await client.batches.retrieve(batch.id)
        assert batch.status == "completed"
        return [r["response"]["body"]["usage"]["prompt_tokens_details"]["cached_tokens"]
                for r in await read(client, batch.output_file_id)]

    assert await run(b"".join(cached(i) for i in range(5))) == [0] * 5
    assert min(await run(b"".join(cached(i) for i in range(5, 10)))) >= 1024
