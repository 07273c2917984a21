"""Batch lines answered as online: the route an online request sends as a header rides in
the line's ``mlift_route`` field, which only mlift's sim-kind client sets."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import openai

from mlift.batch import batch_client
from mlift.batch.openai import OpenAIBatchClient
from mlift.providers.base import Endpoint
from mlift.sim import SimConfig, SimServer
from mlift.types import ROUTE_FIELD, ROUTE_HEADER, Message, Request

SimFactory = Callable[..., Awaitable[SimServer]]
ROUTE = "translate/to_en@v1 translate source=hi target=en"
TEXT = "<text>नमस्ते दुनिया, यह एक परीक्षण है।</text>"
QUICK = SimConfig(batch_validate_s=1, batch_delay_s=2, batch_finalize_s=1)


def request() -> Request:
    return Request(target="sim:default", stage="to_en", max_tokens=60, messages=(
        Message("system", "Translate into English.", route=ROUTE), Message("user", TEXT)))


async def test_only_the_sim_kind_puts_the_route_on_its_lines() -> None:
    real = OpenAIBatchClient(Endpoint(name="openai", kind="openai", model="gpt-4o-mini",
                                      api_key="sk-test"))
    sim = batch_client(Endpoint(name="sim", kind="sim", model="default",
                                base_url="http://127.0.0.1:1"))
    assert ROUTE_FIELD not in json.loads(real.encode("c1", request()))
    line = json.loads(sim.encode("c1", request()))
    assert line[ROUTE_FIELD] == ROUTE
    assert ROUTE not in json.dumps(line["body"])  # nothing of it in what the model reads
    await real.aclose()
    await sim.aclose()


async def test_an_openai_batch_line_with_the_route_gets_the_online_answer(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(QUICK, clock=clock)
    client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="sk-t",
                                max_retries=0)
    body = {"model": "gpt-4o-mini", "max_tokens": 60,
            "messages": [{"role": "user", "content": TEXT}]}
    online = await client.chat.completions.create(**body, extra_headers={ROUTE_HEADER: ROUTE})
    lines = [{"custom_id": "routed", "method": "POST", "url": "/v1/chat/completions",
              "body": body, ROUTE_FIELD: ROUTE},
             {"custom_id": "plain", "method": "POST", "url": "/v1/chat/completions",
              "body": body}]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    upload = await client.files.create(file=("in.jsonl", data), purpose="batch")
    batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                        completion_window="24h")
    clock.advance(10)
    batch = await client.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.output_file_id
    out = (await client.files.content(batch.output_file_id)).text
    answers = {r["custom_id"]: r["response"]["body"]["choices"][0]["message"]["content"]
               for r in map(json.loads, out.splitlines())}
    assert answers["routed"] == online.choices[0].message.content
    assert answers["plain"] != answers["routed"]  # no route: the generic answer
    await client.close()


async def test_an_anthropic_batch_request_with_the_route_gets_the_online_answer(
        sim: SimFactory, clock: Any) -> None:
    server = await sim(QUICK, clock=clock)
    client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="sk-ant-t",
                                      max_retries=0)
    params: Any = {"model": "claude-3-5-haiku-latest", "max_tokens": 60,
                   "messages": [{"role": "user", "content": TEXT}]}
    online = await client.messages.create(**params, extra_headers={ROUTE_HEADER: ROUTE})
    batch = await client.messages.batches.create(requests=[  # type: ignore[list-item]
        {"custom_id": "routed", "params": params, ROUTE_FIELD: ROUTE},
        {"custom_id": "plain", "params": params}])
    clock.advance(10)
    answers = {r.custom_id: r.result.message.content[0].text  # type: ignore[union-attr]
               async for r in await client.messages.batches.results(batch.id)}
    assert answers["routed"] == online.content[0].text  # type: ignore[union-attr]
    assert answers["plain"] != answers["routed"]
    await client.close()
