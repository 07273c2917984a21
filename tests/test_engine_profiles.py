"""Two profiles for one server and model: the limits are shared, the client settings are not.

Found against llama-server: a generator profile without structured outputs
and a judge profile with them, both at the same URL and model, sent the
judge's requests through the generator's client, so no schema went out.
"""

from __future__ import annotations

from mlift.engine.core import Engine
from mlift.prompts import load_prompts, render
from mlift.providers.base import Endpoint, Provider
from mlift.providers.sim import SimProvider
from mlift.sim import SimConfig
from mlift.types import Request

PROFILES = {
    "plain": Endpoint("plain", "sim", "default", structured_outputs=False),
    "json": Endpoint("json", "sim", "default", structured_outputs=True),
}


def judge_request(target: str) -> Request:
    template = load_prompts().get("judge/fit")
    messages = render(template, {"instruction": "Explain how monsoons form.",
                                 "response": "Monsoons are seasonal winds."})
    return Request(target=target, messages=messages, max_tokens=200, stage="judge",
                   prompt=template.ref, output_schema=template.output_schema)


async def test_each_profile_keeps_its_own_settings_and_both_share_one_limiter() -> None:
    def factory(endpoint: Endpoint) -> Provider:
        return SimProvider(endpoint, sim_config=SimConfig(bad_verdict_rate=0.0))

    engine = Engine(lambda spec: PROFILES[spec.split(":")[0]], provider_factory=factory)
    async with engine:
        plain = await engine.complete(judge_request("plain:default"))
        structured = await engine.complete(judge_request("json:default"))
        assert (plain.structured, structured.structured) == (False, True)
        assert engine.limiter("plain:default") is engine.limiter("json:default")
