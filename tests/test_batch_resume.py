"""Kill-safety of the batch client: crash between any two steps, resume from the journal.

A crash is a ``Crash`` raised at a chosen point of the client seam; the
client and driver objects are then abandoned (as a killed process abandons
them) and a new pair is built on the same journal. The simulator counts what
reached it: no line may be submitted twice, and the results must be the ones
a run without crashes gets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anthropic
import pytest
from batch_helpers import KINDS, Clocked, client, stage_requests

from mlift.batch import BatchClient, BatchJournal, Limits, LineResult, PollPolicy, StageBatches
from mlift.batch.base import OnStep, Status
from mlift.errors import ServerError
from mlift.sim import SimConfig, SimServer
from mlift.types import Request

SimFactory = Callable[..., Awaitable[SimServer]]
CONFIG = SimConfig(batch_validate_s=1, batch_delay_s=20, batch_finalize_s=1)


class Crash(BaseException):
    """The process dies here."""


class Crashing:
    """A real batch client that dies at one point: ``(method, when, nth call)``."""

    def __init__(self, inner: BatchClient, method: str, when: str = "after", nth: int = 1,
                 error: BaseException | None = None) -> None:
        self.inner, self.method, self.when, self.nth = inner, method, when, nth
        self.error = error or Crash(f"{method} {when}")
        self.calls = 0
        self.endpoint, self.limits = inner.endpoint, inner.limits
        self.framing, self.exact_find = inner.framing, inner.exact_find

    def _tick(self, method: str, when: str) -> None:
        if method == self.method and when == self.when:
            self.calls += 1
            if self.calls == self.nth:
                raise self.error

    def encode(self, custom_id: str, request: Request) -> bytes:
        return self.inner.encode(custom_id, request)

    async def submit(self, units: Sequence[bytes], tag: str, on_step: OnStep) -> str:
        async def step(event: str, data: dict[str, str]) -> None:
            await on_step(event, data)
            self._tick("upload", "after")

        self._tick("submit", "before")
        batch_id = await self.inner.submit(units, tag, step)
        self._tick("submit", "after")
        return batch_id

    async def find(self, tag: str, count: int, since: float, known: set[str]) -> str | None:
        return await self.inner.find(tag, count, since, known)

    async def status(self, batch_id: str) -> Status:
        status = await self.inner.status(batch_id)
        self._tick("status", "after")
        return status

    async def results(self, status: Status, requests: Mapping[str, Request]
                      ) -> list[LineResult]:
        self._tick("results", "before")
        lines = await self.inner.results(status, requests)
        self._tick("results", "after")
        return lines

    def absent(self, status: Status) -> Any:
        return self.inner.absent(status)

    async def cancel(self, batch_id: str) -> Status:
        return await self.inner.cancel(batch_id)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def lab(sim: SimFactory, clock: Any, tmp_path: Path
              ) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    opened: list[BatchClient] = []

    async def make(kind: str, config: SimConfig = CONFIG, folder: str = "run") -> Any:
        server = await sim(config, clock=clock)
        sleep = Clocked(clock)

        def fresh(crash: dict[str, Any] | None = None) -> StageBatches:
            """A new client and driver on the same journal, as a restarted process builds."""
            inner = client(kind, server, limits=Limits(max_requests=4, max_bytes=10**8))
            opened.append(inner)
            seam: BatchClient = Crashing(inner, **crash) if crash else inner
            return StageBatches(seam, BatchJournal(tmp_path / folder), stage="instruct",
                                sleep=sleep,
                                poll=PollPolicy(5, 2, 30))

        return server, fresh

    yield make
    for c in opened:
        await c.aclose()


CRASHES = {
    "openai": [{"method": "submit", "when": "before"}, {"method": "upload"},
               {"method": "submit"}, {"method": "submit", "nth": 2}, {"method": "status"},
               {"method": "status", "nth": 3}, {"method": "results", "when": "before"},
               {"method": "results"}],
    "anthropic": [{"method": "submit", "when": "before"}, {"method": "submit"},
                  {"method": "submit", "nth": 2}, {"method": "status"},
                  {"method": "status", "nth": 3}, {"method": "results", "when": "before"},
                  {"method": "results"}],
}


def texts(results: Mapping[str, LineResult], requests: Mapping[str, Request]
          ) -> dict[str | None, str]:
    """Answers by item (custom_ids differ between simulators: the URL is in the key)."""
    return {requests[cid].item_id: line.completion.text for cid, line in results.items()
            if line.completion is not None}


@pytest.mark.parametrize(("kind", "crash"), [(k, c) for k in KINDS for c in CRASHES[k]],
                         ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
async def test_a_crash_at_any_step_resumes_without_sending_anything_twice(
        lab: Any, kind: str, crash: dict[str, Any]) -> None:
    server, fresh = await lab(kind)
    requests = stage_requests(kind, server, 8)  # two batches of 4
    with pytest.raises(Crash):
        await fresh(crash).run(requests)
    results = await fresh().run(requests)
    assert {line.outcome for line in results.values()} == {"succeeded"}
    assert sorted(results) == sorted(requests)
    batch = server.stats()["batch"]
    assert batch["resubmitted"] == 0 and batch["lines_submitted"] == 8
    assert sum(batch["batches"].values()) == 2
    # the same answers a run without a crash gets
    clean_server, clean = await lab(kind, folder="clean")
    clean_requests = stage_requests(kind, clean_server, 8)
    clean_results = await clean().run(clean_requests)
    assert texts(results, requests) == texts(clean_results, clean_requests)
    assert len(texts(results, requests)) == 8


@pytest.mark.parametrize("kind", KINDS)
async def test_three_crashes_then_a_finish_give_the_same_answers_and_no_second_sends(
        lab: Any, kind: str) -> None:
    server, fresh = await lab(kind)
    requests = stage_requests(kind, server, 8)
    for crash in ({"method": "submit"}, {"method": "status", "nth": 2},
                  {"method": "results"}):
        with pytest.raises(Crash):
            await fresh(crash).run(requests)
    results = await fresh().run(requests)
    assert {line.outcome for line in results.values()} == {"succeeded"}
    assert server.stats()["batch"]["resubmitted"] == 0
    assert server.stats()["batch"]["lines_submitted"] == 8


@pytest.mark.parametrize("kind", KINDS)
async def test_a_crash_while_results_are_handed_over_fetches_them_again(
        lab: Any, kind: str) -> None:
    server, fresh = await lab(kind)
    requests = stage_requests(kind, server, 8)
    kept: dict[str, str] = {}

    async def dies_on_the_third(line: LineResult) -> None:
        if len(kept) == 2:
            raise Crash("killed while writing the cache")
        kept[line.custom_id] = line.completion.text if line.completion else ""

    with pytest.raises(Crash):
        await fresh().run(requests, on_result=dies_on_the_third)

    async def keep(line: LineResult) -> None:
        kept[line.custom_id] = line.completion.text if line.completion else ""

    # The pipeline passes again only what it did not keep (its cache holds the rest).
    results = await fresh().run({k: v for k, v in requests.items() if k not in kept},
                                on_result=keep)
    assert sorted(kept) == sorted(requests)
    assert {line.outcome for line in results.values()} == {"succeeded"}
    assert server.stats()["batch"]["lines_submitted"] == 8


@pytest.mark.parametrize("kind", KINDS)
async def test_a_create_whose_answer_is_lost_is_looked_up_not_resent(lab: Any,
                                                                     kind: str) -> None:
    server, fresh = await lab(kind)
    requests = stage_requests(kind, server, 4)
    lost = ServerError("502 after the batch was created", status=502)
    results = await fresh({"method": "submit", "error": lost}).run(requests)
    assert {line.outcome for line in results.values()} == {"succeeded"}
    assert server.stats()["batch"]["lines_submitted"] == 4
    assert server.stats()["batch"]["resubmitted"] == 0


async def test_an_anthropic_batch_found_after_a_crash_is_disowned_if_it_holds_other_requests(
        lab: Any, tmp_path: Path) -> None:
    server, fresh = await lab("anthropic")
    requests = stage_requests("anthropic", server, 4)
    with pytest.raises(Crash):  # dies after journaling, before sending
        await fresh({"method": "submit", "when": "before"}).run(requests)
    # Meanwhile someone else on the same key sends a batch of the same size.
    other = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-test-key",
                                     max_retries=0)
    await other.messages.batches.create(requests=[  # type: ignore[arg-type]
        {"custom_id": f"theirs-{i}", "params": {"model": "claude-3-5-haiku-latest",
                                                "max_tokens": 10, "messages": [
                                                    {"role": "user", "content": "hi"}]}}
        for i in range(4)])
    await other.close()
    results = await fresh().run(requests)
    assert {line.outcome for line in results.values()} == {"succeeded"}
    events = (tmp_path / "run" / "batches.jsonl").read_text()
    assert '"adopted":true' in events and "holds other requests" in events
    batch = server.stats()["batch"]
    assert batch["lines_submitted"] == 8 and batch["resubmitted"] == 0


async def test_an_openai_batch_of_the_same_size_is_never_mistaken_for_ours(
        lab: Any, tmp_path: Path) -> None:
    import json

    import openai

    server, fresh = await lab("openai")
    requests = stage_requests("openai", server, 4)
    with pytest.raises(Crash):
        await fresh({"method": "submit", "when": "before"}).run(requests)
    other = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="sk-test-key",
                               max_retries=0)
    data = b"".join(json.dumps({"custom_id": f"theirs-{i}", "method": "POST",
                                "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "messages": [
                                    {"role": "user", "content": "hi"}]}}).encode() + b"\n"
                    for i in range(4))
    upload = await other.files.create(file=("x.jsonl", data), purpose="batch")
    await other.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                               completion_window="24h")
    await other.close()
    results = await fresh().run(requests)
    assert {line.outcome for line in results.values()} == {"succeeded"}
    assert '"adopted":true' not in (tmp_path / "run" / "batches.jsonl").read_text()
