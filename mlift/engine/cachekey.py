"""The response cache's key: a pure function of exactly what determines an answer.

``cache_key`` is the sha256 of a canonical JSON payload (provider kind,
normalised base URL, model, generation settings, messages, prompt version,
output schema). The bytes hashed must never change for the same request, or
every paid answer in users' caches is orphaned: ``KEY_SCHEMA`` is bumped on
purpose instead. orjson writes the payload wherever its bytes are the standard
library's (``_plain``), the standard library everywhere else.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import orjson

from mlift.errors import ConfigError
from mlift.providers.base import Endpoint
from mlift.types import Request

KEY_SCHEMA: Final = "mlift-cache-v1"  # bump to invalidate every key at once
# A base URL of None means the SDK default; spell it out so that a profile
# naming the default URL explicitly shares answers with one that does not.
_DEFAULT_BASE_URLS: Final = {"openai": "https://api.openai.com/v1",
                             "anthropic": "https://api.anthropic.com"}
# The key's encoding (one encoder, not one per call: json.dumps builds one each time).
_KEY_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                    allow_nan=False)


@functools.lru_cache(maxsize=64)  # pure, and called once per request with the same few URLs
def _normalise_base_url(kind: str, base_url: str | None) -> str:
    """Scheme and host lower-cased, no trailing slash; the simulator's URL is dropped.

    The in-process simulator listens on a new ephemeral port each run and its
    answers depend only on the request, so its URL must not split the cache.
    """
    if kind == "sim":
        return ""
    url = base_url or _DEFAULT_BASE_URLS.get(kind, "")
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def _plain(value: Any) -> bool:
    """Whether orjson writes ``value`` exactly as ``_KEY_JSON`` does: plain JSON types only,
    and no float under 1e-4 (orjson writes 1e-05 as 0.00001 and 1e-07 as 1e-7)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value) and (value == 0 or not -1e-4 < value < 1e-4)
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def _check_params(params: tuple[tuple[str, Any], ...]) -> None:
    for name, value in params:
        try:
            json.dumps(value, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError):
            raise ConfigError(f"generation parameter {name!r}={value!r} is not plain JSON "
                              f"(str, number, bool, null, list, object; no NaN)") from None


def _key_json(payload: dict[str, Any], plain: bool) -> bytes:
    """``payload`` as sorted, compact UTF-8 JSON: byte for byte what ``_KEY_JSON`` writes.

    orjson writes those bytes about ten times faster (a cached re-run keys every
    line) when the payload is ``plain``; it refuses an integer past 64 bits
    and a lone surrogate, which go to the standard library as before.
    """
    if plain:
        try:
            return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError
            pass
    return _KEY_JSON.encode(payload).encode("utf-8")


def cache_key(request: Request, endpoint: Endpoint) -> str:
    """The sha256 hex of everything that determines the answer, and nothing else.

    Keyed: provider kind, normalised base URL, model, max_tokens,
    temperature, extra params (order-insensitive), the rendered messages and
    the prompt's ``id@version#hash``; with an output schema, the schema and
    the profile's ``structured_outputs`` setting (an enforced schema changes
    the answer; kind and base URL already fix what "auto" means). Not keyed:
    the API key, the profile name (two profiles for the same server and model
    share answers), the stage, the item id (identical requests from different
    items are one call) and the messages' routing metadata (no model sees it).
    """
    if not math.isfinite(request.temperature):
        raise ConfigError(f"temperature must be a finite number, got {request.temperature!r}")
    temperature = float(request.temperature)
    plain = _plain(temperature) and _plain(request.params)
    if not plain:
        _check_params(request.params)  # raises ConfigError naming a parameter that is not JSON
    payload = {
        "schema": KEY_SCHEMA,
        "kind": endpoint.kind,
        "base_url": _normalise_base_url(endpoint.kind, endpoint.base_url),
        "model": endpoint.model,
        "max_tokens": int(request.max_tokens),
        "temperature": temperature,
        "params": dict(request.params),
        "messages": [[m.role, m.content] for m in request.messages],
        "prompt": request.prompt,
    }
    if request.output_schema is not None:  # absent otherwise: older keys stay valid
        schema = request.output_schema.to_json()
        payload["output_schema"] = schema
        payload["structured_outputs"] = endpoint.structured_outputs
        plain = plain and _plain(schema)
    return hashlib.sha256(_key_json(payload, plain)).hexdigest()
