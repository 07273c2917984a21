"""cache_key: a pure function of exactly what determines the answer."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlift.engine.cachekey import cache_key
from mlift.errors import ConfigError
from mlift.providers.base import Endpoint
from mlift.types import Message, OutputSchema, Request, Role

texts = st.text(max_size=40)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                      allow_infinity=False) | texts
params_st = st.dictionaries(st.text(min_size=1, max_size=10), json_scalars, max_size=4)
messages_st = st.lists(st.builds(Message, role=st.sampled_from(["system", "user", "assistant"]),
                                 content=texts), min_size=1, max_size=4)


@st.composite
def calls(draw: st.DrawFn) -> tuple[Request, Endpoint]:
    params = draw(params_st)
    request = Request(target="p:m", messages=tuple(draw(messages_st)),
                      max_tokens=draw(st.integers(1, 100_000)),
                      temperature=draw(st.floats(0, 2)),
                      params=tuple(params.items()),
                      prompt=draw(st.none() | st.just("instruct/summary@v1#abc123")))
    endpoint = Endpoint(name="p", kind=draw(st.sampled_from(["openai", "anthropic"])),
                        model=draw(st.text(min_size=1, max_size=20)),
                        base_url=draw(st.none() | st.just("http://127.0.0.1:8000/v1")))
    return request, endpoint


@given(calls())
def test_equal_inputs_give_equal_hex_sha256_keys(call: tuple[Request, Endpoint]) -> None:
    request, endpoint = call
    copy_request = dataclasses.replace(request, messages=tuple(
        Message(m.role, m.content) for m in request.messages))
    key = cache_key(request, endpoint)
    assert key == cache_key(copy_request, dataclasses.replace(endpoint))
    assert len(key) == 64 and int(key, 16) >= 0


@given(calls(), st.randoms())
def test_param_order_does_not_change_the_key(call: tuple[Request, Endpoint],
                                             rnd: Any) -> None:
    request, endpoint = call
    shuffled = list(request.params)
    rnd.shuffle(shuffled)
    assert cache_key(request, endpoint) == cache_key(
        dataclasses.replace(request, params=tuple(shuffled)), endpoint)


@given(calls(), st.data())
def test_changing_any_keyed_field_changes_the_key(call: tuple[Request, Endpoint],
                                                  data: st.DataObject) -> None:
    request, endpoint = call
    before = cache_key(request, endpoint)
    field = data.draw(st.sampled_from(["kind", "base_url", "model", "max_tokens", "temperature",
                                       "params", "message", "role", "prompt"]))
    if field == "kind":
        endpoint = dataclasses.replace(
            endpoint, kind="anthropic" if endpoint.kind == "openai" else "openai")
    elif field == "base_url":
        endpoint = dataclasses.replace(endpoint, base_url="http://10.0.0.1:9000/v1")
    elif field == "model":
        endpoint = dataclasses.replace(endpoint, model=endpoint.model + "x")
    elif field == "max_tokens":
        request = dataclasses.replace(request, max_tokens=request.max_tokens + 1)
    elif field == "temperature":
        request = dataclasses.replace(request, temperature=request.temperature + 0.5)
    elif field == "params":
        request = dataclasses.replace(request, params=(*request.params, ("\x00new", 1)))
    elif field == "message":
        first = request.messages[0]
        request = dataclasses.replace(request, messages=(
            Message(first.role, first.content + "."), *request.messages[1:]))
    elif field == "role":
        first = request.messages[0]
        role: Role = "user" if first.role != "user" else "assistant"
        request = dataclasses.replace(request, messages=(Message(role, first.content),
                                                         *request.messages[1:]))
    else:
        request = dataclasses.replace(request, prompt=(request.prompt or "") + "#changed")
    assert cache_key(request, endpoint) != before


@given(calls())
def test_api_key_profile_name_stage_and_item_are_not_keyed(
        call: tuple[Request, Endpoint]) -> None:
    request, endpoint = call
    other_request = dataclasses.replace(request, target="other:m", stage="judge", item_id="i9")
    other_endpoint = dataclasses.replace(endpoint, name="other", api_key="sk-secret",
                                         api_key_env="OTHER_KEY", rpm=10.0, input_price=9.0)
    assert cache_key(request, endpoint) == cache_key(other_request, other_endpoint)


def make(**endpoint: Any) -> tuple[Request, Endpoint]:
    request = Request(target="x:m", messages=(Message("user", "hola"),))
    return request, Endpoint(**{"name": "x", "kind": "openai", "model": "m", **endpoint})


def test_trailing_slash_and_host_case_in_the_base_url_do_not_matter() -> None:
    a = cache_key(*make(base_url="http://LocalHost:8000/v1/"))
    assert a == cache_key(*make(base_url="http://localhost:8000/v1"))


def test_the_default_base_url_spelled_out_shares_answers_with_none() -> None:
    assert cache_key(*make(base_url=None)) == cache_key(
        *make(base_url="https://api.openai.com/v1/"))


def test_the_simulators_ephemeral_port_does_not_split_the_cache() -> None:
    assert cache_key(*make(kind="sim", base_url="http://127.0.0.1:41234/v1")) == cache_key(
        *make(kind="sim", base_url="http://127.0.0.1:50123/v1"))


def test_integral_temperature_and_float_temperature_share_a_key() -> None:
    request, endpoint = make()
    assert cache_key(dataclasses.replace(request, temperature=1), endpoint) == cache_key(
        dataclasses.replace(request, temperature=1.0), endpoint)


@pytest.mark.parametrize("value", [object(), float("nan"), {1, 2}])
def test_a_param_that_is_not_plain_json_is_a_config_error_naming_it(value: Any) -> None:
    request, endpoint = make()
    with pytest.raises(ConfigError, match="'weird'"):
        cache_key(dataclasses.replace(request, params=(("weird", value),)), endpoint)


def test_non_ascii_content_is_keyed_by_its_text() -> None:
    request, endpoint = make()
    hindi = dataclasses.replace(request, messages=(Message("user", "नमस्ते दुनिया"),))
    telugu = dataclasses.replace(request, messages=(Message("user", "హలో ప్రపంచం"),))
    assert cache_key(hindi, endpoint) != cache_key(telugu, endpoint)


SCHEMA = OutputSchema("verdict", {"type": "object", "properties": {
    "score": {"type": "integer"}, "reason": {"type": "string"}},
    "required": ["score", "reason"], "additionalProperties": False}, "a verdict")


@pytest.mark.parametrize(("request_", "endpoint", "key"), [
    (Request(target="openai:gpt-4o-mini",
             messages=(Message("system", "Translate to English."),
                       Message("user", 'नमस्ते "दुनिया"\n\t\\ \x01 é')),
             max_tokens=300, temperature=0.7,
             params=(("seed", 7), ("stop", ["\n", "END"]), ("top_p", 0.9)),
             prompt="translate/to_en@v1#abc123"),
     Endpoint(name="openai", kind="openai", model="gpt-4o-mini",
              base_url="HTTP://API.Example.com/v1/"),
     "a1bfebeb3faf761c19d16a4949f28ca9e7fafda09a0d00e60b6b42bf939e5863"),
    (Request(target="sim:default", messages=(Message("user", "Hi"),)),
     Endpoint(name="sim", kind="sim", model="default", base_url="http://127.0.0.1:5555/v1"),
     "3ff4faedbe2034921324b55cb4586666a45159413c99052de90f308e0a223a69"),
    (Request(target="anthropic:claude", messages=(Message("user", "Judge this."),),
             max_tokens=64, output_schema=SCHEMA),
     Endpoint(name="anthropic", kind="anthropic", model="claude-3-5-haiku-latest",
              structured_outputs=True),
     "974e366e033e6bad81411fb80d12dbe34778cf882bcbc0b8f384c3d8c62bbc1c"),
])
def test_keys_stay_what_earlier_versions_stored_answers_under(
        request_: Request, endpoint: Endpoint, key: str) -> None:
    # Pinned: a change here orphans every answer users have paid for (bump KEY_SCHEMA
    # on purpose instead, so old entries are plainly invalidated, never misread).
    assert cache_key(request_, endpoint) == key


# What every key was before orjson wrote them: the payload through the standard library.
# cache_key must give these bytes for every request, or paid answers are orphaned.
def stdlib_key(request: Request, endpoint: Endpoint) -> str:
    from mlift.engine.cachekey import KEY_SCHEMA, _normalise_base_url

    payload: dict[str, Any] = {
        "schema": KEY_SCHEMA, "kind": endpoint.kind,
        "base_url": _normalise_base_url(endpoint.kind, endpoint.base_url),
        "model": endpoint.model, "max_tokens": int(request.max_tokens),
        "temperature": float(request.temperature), "params": dict(request.params),
        "messages": [[m.role, m.content] for m in request.messages], "prompt": request.prompt}
    if request.output_schema is not None:
        payload["output_schema"] = request.output_schema.to_json()
        payload["structured_outputs"] = endpoint.structured_outputs
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Where orjson's bytes could differ from the standard library's: floats of every size
# (1e-05 vs 0.00001, 1e+16), integers past 64 bits, nested objects to sort, any text.
any_float = st.floats(allow_nan=False, allow_infinity=False)
tiny_float = st.floats(min_value=1e-12, max_value=1e-3) | st.floats(min_value=-1e-3,
                                                                    max_value=-1e-12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(2**62, 2**70) | any_float
    | tiny_float | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=3),
    max_leaves=8)


@settings(max_examples=300)
@given(params=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3),
       temperature=st.floats(0, 2) | tiny_float.map(abs),
       content=st.text(max_size=60), schema=st.booleans())
def test_keys_are_the_standard_librarys_bytes_for_any_request(
        params: dict[str, Any], temperature: float, content: str, schema: bool) -> None:
    request = Request(target="p:m", messages=(Message("user", content),), max_tokens=9,
                      temperature=temperature, params=tuple(params.items()),
                      output_schema=OutputSchema("v", {"type": "object", "minimum": temperature,
                                                       "x": params}) if schema else None)
    endpoint = Endpoint(name="p", kind="openai", model="m", structured_outputs=True)
    try:
        expected = stdlib_key(request, endpoint)
    except UnicodeEncodeError:  # a lone surrogate: refused before, refused now
        with pytest.raises(UnicodeEncodeError):
            cache_key(request, endpoint)
        return
    assert cache_key(request, endpoint) == expected
