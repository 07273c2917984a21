"""The simulator: a local stand-in for the OpenAI and Anthropic HTTP APIs.

``SimServer`` is an aiohttp server on loopback that speaks
``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic)
closely enough that the official ``openai`` and ``anthropic`` SDKs work
against it unmodified, error classes and retry-after handling included. It
lets mlift run, be tested and be benchmarked with no key and no network::

    async with SimServer(SimConfig(rpm=600, error_rate=0.01)) as sim:
        client = AsyncOpenAI(base_url=sim.base_url + "/v1", api_key="sim")
        reply = await client.chat.completions.create(model="m", messages=[...])
        print(sim.stats())

From the command line: ``mlift sim serve --port 8000`` and ``mlift sim demo``.

What it does
------------
* Answers deterministically (same seed and request → same answer), chosen by
  the ``X-Mlift-Prompt`` header mlift's providers send (the prompt's id and
  routing hint; nothing in the messages): pseudo-translations in the target
  language's script with realistic length ratios, instructions that vary with
  task and style, judge verdicts (JSON or a ``Score: n`` line) with scores
  spread about 5/10/20/35/30 % over 1..5 and a share of unparseable verdicts.
  A request without the header gets a generic answer. Every answer starts
  with ``[sim]``.
* Honours structured outputs: OpenAI ``response_format`` (``json_schema``,
  ``json_object``) and an Anthropic ``tool_choice`` that forces a tool get a
  JSON object matching the schema (a ``tool_use`` block for the tool); a
  verdict is then always valid, as schema-constrained decoding makes it.
* Reports ``usage`` from :mod:`mlift.tokens` and honours ``max_tokens``
  (``finish_reason="length"`` / ``stop_reason="max_tokens"``); streams both
  dialects as SSE with the real event sequences.
* Enforces per-key ``rpm``/``tpm`` with a continuously refilling bucket and a
  sliding 60-second log, and refuses with the real 429 bodies and headers
  (``x-ratelimit-*`` / ``anthropic-ratelimit-*``, ``retry-after`` and
  ``retry-after-ms``). Successful answers carry the same headers.
* Injects faults at given rates from a seeded RNG: 500/503 (and 529 on the
  Anthropic route), hangs of ``hang_s`` seconds (ended early when the client
  disconnects), connections cut half-way through the body, and 200 answers
  whose body is not JSON. Latency with uniform jitter on top.
* Checks API keys when ``require_key`` is set (401 with the real bodies; the
  key is never echoed whole) and rejects bad requests with 400s in each
  provider's error shape; a path it does not serve (a wrong base URL) gets a
  404 in that shape too (OpenAI's "Invalid URL (POST /chat/completions)"),
  counted at ``/stats`` like any request.
* Caches prompts as the providers do (:mod:`mlift.sim.prompt_cache`) and
  reports ``prompt_tokens_details.cached_tokens`` / ``cache_read_input_tokens``
  and ``cache_creation_input_tokens``.
* Speaks OpenAI's Files and Batch APIs and Anthropic's Message Batches
  (:mod:`mlift.sim.batches` and its dialect modules) on the same clock, with
  their statuses, limits, validation errors, cancel, expiry and failed lines;
  each line is answered by the same path as an online request.
* Counts everything at ``GET /stats`` (reset with ``POST /stats/reset``),
  including the most requests and tokens admitted in any 1 s and 60 s window,
  and batch traffic under ``"batch"``.

What it does not do (know these before reading its numbers)
-----------------------------------------------------------
* Token counts are exact only for OpenAI model names whose tiktoken encoding
  loads (o200k_base / cl100k_base); every other model, including Claude and
  the default ``default``, is counted with the script-aware approximation of
  :func:`mlift.tokens.approx_tokens` (about ±15 % of o200k). Anthropic's
  message framing is approximated with OpenAI's (3 tokens per message + 3).
* Rate limits: by default the ``tpm`` charge at admission is prompt tokens
  (by the tokenizer) plus ``max_tokens`` (1024 when the request gives none)
  and is not refunded by the real usage; ``token_charge="chars"`` counts the
  prompt as characters / 4 instead, ``charge_factor`` scales the charge, and
  ``count_refused`` charges refused requests too, so the simulator can count
  the way real servers are reported to rather than the way mlift estimates.
  ``itpm``/``otpm`` are Anthropic's separate input/output limits (output
  charged ``max_tokens``, settled to what was written). The bucket holds
  ``burst_s`` seconds of the limit, so up to
  ``limit/60 x burst_s`` requests pass at once and any 1 s window admits at
  most ``limit/60 x (1 + burst_s)``; no 60 s window ever admits more than the
  limit. ``remaining`` is what could be admitted right now (Anthropic's token
  families rounded to the nearest thousand, as documented) and ``reset`` the
  time until the bucket is full again. Limits are per API key (the
  ``Authorization`` bearer or ``x-api-key``), not per model or organisation.
* ``retry-after-ms`` is sent on both routes (Anthropic's API sends only
  ``retry-after``; both SDKs read the millisecond form first). Both values
  are rounded up, so waiting them is always enough if nobody else is sending.
* No tool calling beyond a forced tool, no images, logprobs, n > 1, stop
  sequences or temperature effects: those parameters are accepted and
  ignored. Schemas are filled, not validated: keywords beyond types,
  properties, items, enum, const and anyOf are ignored. The answers are not language:
  they are shaped like it, for plumbing, cost and throughput work.
"""

from mlift.sim.config import SimConfig
from mlift.sim.server import SimServer

__all__ = ["SimConfig", "SimServer"]
