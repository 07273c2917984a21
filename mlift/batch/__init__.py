"""Batch APIs: a stage's requests at half price, crash-safe.

* :mod:`mlift.batch.openai` — OpenAI's Files + Batch API (JSONL input file).
* :mod:`mlift.batch.anthropic` — Anthropic's Message Batches.
* :mod:`mlift.batch.split` — batches within the limits, measured on bytes sent.
* :mod:`mlift.batch.journal` — every batch written down before it is polled.
* :mod:`mlift.batch.stage` — ``StageBatches``: submit, resume, poll, collect, cancel.

How a pipeline drives it, per stage that runs in batch mode::

    client = batch_client(endpoint)                  # the endpoint the engine resolved
    journal = BatchJournal(run_folder)               # one file for the whole run
    driver = StageBatches(client, journal, stage="judge", price=engine.price(target),
                          budget=engine.budget, accounting=engine.accounting,
                          on_progress=display.batches)
    todo = {line_id(r, endpoint): r for r in stage_requests if not cached(r)}
    results = await driver.run(todo, on_result=cache_and_route)   # resumes after a crash
    # results[custom_id].outcome: succeeded (completion priced at batch rates) /
    # failed (error mapped like online; transient ones were resent once) / expired / canceled

Custom ids are the requests' cache keys (``line_id``): stable across runs, so a
resumed run recognises its own requests, and 64 characters of hex, which both
providers accept.
"""

from __future__ import annotations

from mlift.batch.base import BatchClient, Framing, Limits, LineResult, Status
from mlift.batch.journal import BatchJournal, ChunkRecord
from mlift.batch.stage import BatchView, PollPolicy, StageBatches
from mlift.engine.cachekey import cache_key
from mlift.errors import ConfigError
from mlift.providers.base import Endpoint
from mlift.types import Request

__all__ = [
    "BatchClient",
    "BatchJournal",
    "BatchView",
    "ChunkRecord",
    "Framing",
    "Limits",
    "LineResult",
    "PollPolicy",
    "StageBatches",
    "Status",
    "batch_client",
    "line_id",
]


def line_id(request: Request, endpoint: Endpoint) -> str:
    """A request's custom_id: its cache key (sha256 hex, 64 characters)."""
    return cache_key(request, endpoint)


def batch_client(endpoint: Endpoint) -> BatchClient:
    """The batch client for an endpoint's kind (``openai``, ``anthropic``; ``sim`` speaks
    OpenAI's dialect at ``base_url`` + ``/v1``, so it needs a running simulator's URL, and
    its lines carry their prompt's route for the simulator to answer as it does online)."""
    if endpoint.kind == "openai":
        from mlift.batch.openai import OpenAIBatchClient

        return OpenAIBatchClient(endpoint)
    if endpoint.kind == "anthropic":
        from mlift.batch.anthropic import AnthropicBatchClient

        return AnthropicBatchClient(endpoint)
    if endpoint.kind == "sim":
        import dataclasses

        from mlift.batch.openai import OpenAIBatchClient
        from mlift.providers.sim import NO_KEY

        if not endpoint.base_url:
            raise ConfigError(f"{endpoint.spec}: batch mode on the simulator needs its URL "
                              "(start one with `mlift sim serve` and set base_url)")
        # As the online sim provider: the simulator enforces schemas unless told not to.
        return OpenAIBatchClient(dataclasses.replace(
            endpoint, base_url=endpoint.base_url.rstrip("/") + "/v1",
            api_key=endpoint.api_key or NO_KEY,
            structured_outputs=endpoint.structured_outputs is not False), route_lines=True)
    raise ConfigError(f"{endpoint.spec}: provider kind {endpoint.kind!r} has no batch API "
                      "in mlift (batches work with kinds openai and anthropic)")
