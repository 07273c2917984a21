"""Structured outputs end to end: the judge's schema through the engine to the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from mlift.engine.cachekey import cache_key
from mlift.engine.core import Engine
from mlift.pipeline.stages import Models, StageReject, Stages, Trace, call_model
from mlift.prompts import load_prompts, render
from mlift.providers.base import Endpoint, Provider
from mlift.providers.sim import SimProvider
from mlift.sim import SimConfig
from mlift.types import Message, Request

LIB = load_prompts()
PAIR = {"instruction": "Explain how monsoons form.",
        "response": "Monsoons are seasonal winds driven by land and sea heating."}
EngineFor = Callable[..., Engine]


@pytest.fixture
async def engine_for() -> AsyncIterator[EngineFor]:
    engines: list[Engine] = []

    def make(structured: bool | None, config: SimConfig, transport: str = "auto") -> Engine:
        endpoint = Endpoint("sim", "sim", "default", structured_outputs=structured,
                            transport=transport)

        def factory(ep: Endpoint) -> Provider:
            return SimProvider(ep, sim_config=config)

        engine = Engine(lambda _spec: endpoint, provider_factory=factory)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.aclose()


@pytest.mark.parametrize("transport", ["sdk", "aiohttp"])
async def test_judge_schema_is_enforced_on_the_simulator_and_recorded(
        engine_for: EngineFor, transport: str) -> None:
    template = LIB.get("judge/fit")
    assert template.output_schema is not None  # the bundled judge declares one
    engine = engine_for(None, SimConfig(bad_verdict_rate=1.0), transport)
    done = await call_model(engine, "judge", "sim:default", template,
                            render(template, PAIR), "item-1", Trace())
    assert done.structured
    stages = Stages(engine, LIB, Models("sim:default", "sim:default", "sim:default"))
    verdict = await stages.judge("item-2", PAIR["instruction"], PAIR["response"], Trace())
    assert 1 <= verdict.score <= 5
    assert stages.judge_parse_failures == 0  # a schema-bound answer is never prose


async def test_without_enforcement_the_judge_falls_back_to_the_strict_text_parse(
        engine_for: EngineFor) -> None:
    engine = engine_for(False, SimConfig(bad_verdict_rate=1.0))
    template = LIB.get("judge/fit")
    done = await call_model(engine, "judge", "sim:default", template,
                            render(template, PAIR), "item-1", Trace())
    assert not done.structured
    stages = Stages(engine, LIB, Models("sim:default", "sim:default", "sim:default"))
    with pytest.raises(StageReject) as caught:
        await stages.judge("item-2", PAIR["instruction"], PAIR["response"], Trace())
    assert caught.value.code == "judge_unparsed"
    assert stages.judge_parse_failures == 3  # the first answer and both re-asks


def test_schema_and_its_enforcement_are_in_the_cache_key_and_the_route_is_not() -> None:
    template = LIB.get("judge/fit")
    request = Request("sim:default", render(template, PAIR), prompt=template.ref,
                      output_schema=template.output_schema)
    keys = {cache_key(request, Endpoint("sim", "sim", "default", structured_outputs=s))
            for s in (None, True, False)}
    plain = cache_key(Request("sim:default", request.messages, prompt=template.ref),
                      Endpoint("sim", "sim", "default"))
    assert len(keys | {plain}) == 4
    rerouted = (Message("system", request.messages[0].content, route="other route"),
                *request.messages[1:])
    assert cache_key(Request("sim:default", rerouted, prompt=template.ref),
                     Endpoint("sim", "sim", "default")) == plain  # no model reads the route
