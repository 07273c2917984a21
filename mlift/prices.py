"""The price table: what a model call costs, in US dollars.

Prices live in a dated, versioned data file (``mlift/data/prices.toml``),
not in code, so updating them is a data change a reviewer can check against
the providers' pages. A model without a price is a ``ConfigError`` that says
how to supply one — never a silent $0, which would make ``--max-cost`` and
``mlift estimate`` lie.

Precedence, highest first (``PriceTable.price_for``):

1. the profile's ``input_price`` / ``output_price`` (config file);
2. ``overrides`` given to ``PriceTable.load`` (a ``[prices]`` config table or
   ``--price``), keyed ``"KIND:MODEL"``;
3. the shipped table.

Model ids resolve to an entry by exact name, a declared alias, or the longest
entry name followed only by a snapshot suffix (``-latest``, ``-20241022``,
``-2024-07-18``, ``-0125``). A plain longest-prefix match would price
``gpt-4o-audio-preview`` or a future ``claude-opus-4-9`` like their
namesakes; refusing is safer than guessing. ``"*"`` as a model name matches
every model of that kind (used for the fictitious ``sim`` prices).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from mlift.errors import ConfigError
from mlift.providers.base import Endpoint
from mlift.types import Usage

PER_TOKENS = 1_000_000  # prices are quoted per 1M tokens
_SNAPSHOT_SUFFIX = re.compile(r"-(latest|\d{8}|\d{4}-\d{2}-\d{2}|\d{4})")
_PRICE_FIELDS = ("input", "output", "cached_input", "cache_write", "batch_input",
                 "batch_output", "batch_cached_input", "batch_cache_write")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens for one model, and where the numbers came from.

    Each kind of token has its own rate: fresh input, input read from the
    provider's prompt cache (``cached_input``), input written to it
    (``cache_write``: Anthropic bills writes at a premium, OpenAI not at all),
    output; and the same four through the provider's Batch API. A price the
    source does not give falls back to one that never under-estimates:

    ========================  =========================================
    missing                   billed at
    ========================  =========================================
    ``cached_input``          ``input``
    ``cache_write``           ``input``
    ``batch_input/_output``   ``input`` / ``output``
    ``batch_cached_input``    ``batch_input`` (a batch may not discount
                              cached tokens: OpenAI's older models don't)
    ``batch_cache_write``     ``cache_write``
    ========================  =========================================
    """

    input: float
    output: float
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    cache_write: float | None = None
    batch_cached_input: float | None = None
    batch_cache_write: float | None = None
    model: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        for name in _PRICE_FIELDS:
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"price {name!r} must be a finite number >= 0, got {value!r}")

    @property
    def cached_input_rate(self) -> float:
        return self.input if self.cached_input is None else self.cached_input

    @property
    def cache_write_rate(self) -> float:
        return self.input if self.cache_write is None else self.cache_write

    @property
    def batch_input_rate(self) -> float:
        return self.input if self.batch_input is None else self.batch_input

    @property
    def batch_output_rate(self) -> float:
        return self.output if self.batch_output is None else self.batch_output

    @property
    def batch_cached_input_rate(self) -> float:
        return self.batch_input_rate if self.batch_cached_input is None \
            else self.batch_cached_input

    @property
    def batch_cache_write_rate(self) -> float:
        return self.cache_write_rate if self.batch_cache_write is None \
            else self.batch_cache_write

    def rates(self, *, batch: bool = False) -> tuple[float, float, float, float]:
        """(fresh input, cache read, cache write, output) in USD per 1M tokens."""
        if batch:
            return (self.batch_input_rate, self.batch_cached_input_rate,
                    self.batch_cache_write_rate, self.batch_output_rate)
        return self.input, self.cached_input_rate, self.cache_write_rate, self.output

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """Dollars for one call: each kind of token of ``usage`` at its own rate.

        ``usage.input_tokens`` counts every input token; of those,
        ``cached_input_tokens`` were read from the prompt cache and
        ``cache_write_tokens`` written to it, the rest are fresh. A provider
        that reports more cached than input tokens has the excess ignored
        rather than crash a run (fresh tokens never go below zero).
        """
        fresh_rate, read_rate, write_rate, out_rate = self.rates(batch=batch)
        read = max(0, min(usage.cached_input_tokens, usage.input_tokens))
        write = max(0, min(usage.cache_write_tokens, usage.input_tokens - read))
        fresh = usage.input_tokens - read - write
        return (fresh * fresh_rate + read * read_rate + write * write_rate
                + usage.output_tokens * out_rate) / PER_TOKENS

    def max_cost(self, input_tokens: int, max_output_tokens: int, *, batch: bool = False) -> float:
        """The most one call can cost: every prompt token at the dearer of fresh input and
        cache write (a marked prefix may be written), the answer at max_tokens.

        This is what the engine reserves against ``--max-cost`` before sending.
        """
        fresh_rate, _, write_rate, out_rate = self.rates(batch=batch)
        return (input_tokens * max(fresh_rate, write_rate)
                + max_output_tokens * out_rate) / PER_TOKENS

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str, model: str = "") -> Price:
        """Build from a TOML/JSON table, naming ``where`` (file and table) in every error."""
        unknown = sorted(set(data) - {*_PRICE_FIELDS, "source", "aliases"})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
                              f"expected {', '.join(_PRICE_FIELDS)}")
        values: dict[str, float | None] = {}
        for name in _PRICE_FIELDS:
            raw = data.get(name)
            if raw is None:
                if name in ("input", "output"):
                    raise ConfigError(f"{where}: field {name!r} is required")
                values[name] = None
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float) \
                    or not math.isfinite(raw) or raw < 0:
                raise ConfigError(f"{where}: field {name!r} must be a number >= 0 "
                                  f"(USD per 1M tokens), got {raw!r}")
            values[name] = float(raw)
        source = data.get("source", "")
        if not isinstance(source, str):
            raise ConfigError(f"{where}: field 'source' must be a string")
        optional = {name: values[name] for name in _PRICE_FIELDS[2:]}
        return cls(input=values["input"] or 0.0, output=values["output"] or 0.0, **optional,
                   model=model, source=source or where)

    @classmethod
    def parse(cls, text: str, *, where: str = "--price") -> Price:
        """Parse ``"IN,OUT"`` (USD per 1M input and output tokens), as ``--price`` takes it."""
        parts = [p.strip() for p in text.split(",")]
        try:
            if len(parts) != 2:
                raise ValueError
            inp, out = float(parts[0]), float(parts[1])
        except ValueError:
            raise ConfigError(f"{where}: expected IN,OUT in USD per 1M tokens "
                              f"(e.g. 0.15,0.60), got {text!r}") from None
        if not (math.isfinite(inp) and math.isfinite(out)) or inp < 0 or out < 0:
            raise ConfigError(f"{where}: prices must be finite and >= 0, got {text!r}")
        return cls(input=inp, output=out, source=where)


@functools.cache  # the shipped table, read once per process (engines are made on the loop)
def _builtin_text() -> tuple[str, str]:
    res = resources.files("mlift") / "data" / "prices.toml"
    return res.read_text(encoding="utf-8"), "mlift/data/prices.toml"


def _match(entries: Mapping[str, Price], model: str) -> Price | None:
    """Exact name, else longest entry followed by a snapshot suffix, else ``"*"``."""
    if model in entries:
        return entries[model]
    best: str | None = None
    for name in entries:
        if (name != "*" and model.startswith(name)
                and _SNAPSHOT_SUFFIX.fullmatch(model[len(name):])
                and (best is None or len(name) > len(best))):
            best = name
    if best is not None:
        return entries[best]
    return entries.get("*")


class PriceTable:
    """Prices by provider kind and model, plus user overrides."""

    def __init__(self, entries: Mapping[str, Mapping[str, Price]], *, version: int,
                 updated: str, source: str,
                 overrides: Mapping[str, Price] | None = None) -> None:
        self.version, self.updated, self.source = version, updated, source
        self._entries = {kind: dict(models) for kind, models in entries.items()}
        self._overrides: dict[str, dict[str, Price]] = {}
        for key, price in (overrides or {}).items():
            kind, sep, model = key.partition(":")
            if not sep or not kind or not model:
                raise ConfigError(f"price override key {key!r}: expected KIND:MODEL, "
                                  f"e.g. 'openai:gpt-4o-mini' or 'openai:*'")
            self._overrides.setdefault(kind, {})[model] = price

    @classmethod
    def load(cls, path: Path | str | None = None, *,
             overrides: Mapping[str, Price] | None = None) -> PriceTable:
        """Read a price file (default: the shipped one); every error names the file and table."""
        if path is None:
            text, where = _builtin_text()
        else:
            where = str(path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read price table: {exc.strerror}") from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: invalid TOML: {exc}") from exc
        version, updated = data.pop("version", None), data.pop("updated", None)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"{where}: top-level 'version' must be an integer")
        if not isinstance(updated, str):
            raise ConfigError(f"{where}: top-level 'updated' must be a date string")
        for key, expected in (("currency", "USD"), ("unit", "per 1M tokens")):
            if data.pop(key, expected) != expected:
                raise ConfigError(f"{where}: only {key} = {expected!r} is supported")
        entries: dict[str, dict[str, Price]] = {}
        for kind, models in data.items():
            if not isinstance(models, dict):
                raise ConfigError(f"{where}: [{kind}] must be a table of models")
            table = entries.setdefault(kind, {})
            for model, fields in models.items():
                at = f'{where}: [{kind}."{model}"]'
                if not isinstance(fields, dict):
                    raise ConfigError(f"{at} must be a table with input and output prices")
                price = Price.from_mapping(fields, where=at, model=model)
                aliases = fields.get("aliases", [])
                if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                    raise ConfigError(f"{at}: field 'aliases' must be a list of model ids")
                for name in [model, *aliases]:
                    if name in table:
                        raise ConfigError(f"{at}: model id {name!r} is priced twice")
                    table[name] = price
        return cls(entries, version=version, updated=updated, source=where, overrides=overrides)

    def lookup(self, kind: str, model: str, *, profile: str | None = None) -> Price:
        """The price of ``model`` served by a provider of ``kind``, or a ``ConfigError``.

        ``profile`` names the provider profile in the message (``local:qwen``,
        not ``openai:qwen``) and in the fix it offers.
        """
        for table in (self._overrides.get(kind, {}), self._entries.get(kind, {})):
            found = _match(table, model)
            if found is not None:
                return found
        name = profile or kind
        known = self.models(kind)
        close = difflib.get_close_matches(model, known, n=1)
        hint = f" (did you mean {kind} model {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"no price for {name}:{model}{hint}: the price table ({self.source}, updated "
            f"{self.updated}) has no {kind} model of that name. To fix, add "
            f"`prices = {{ input = IN, output = OUT }}` (USD per 1M tokens) to the "
            f"[providers.{name}] section of your config file (--config FILE or ./mlift.toml), "
            f"or pass --price IN,OUT for this run; use 0 for a free local server. "
            f"mlift never assumes $0.")

    def price_for(self, endpoint: Endpoint) -> Price:
        """The price for a resolved profile: its configured prices win over the table.

        A profile with both ``input_price`` and ``output_price`` needs no table
        entry (cached, cache-write and batch prices then equal the plain ones);
        with only one, the other comes from the table.
        """
        inp, out = endpoint.input_price, endpoint.output_price
        where = f"profile {endpoint.name!r}"
        if inp is not None and out is not None:
            return Price(input=inp, output=out, model=endpoint.model, source=f"config {where}")
        if inp is None and out is None:
            return self.lookup(endpoint.kind, endpoint.model, profile=endpoint.name)
        try:
            base = self.lookup(endpoint.kind, endpoint.model, profile=endpoint.name)
        except ConfigError:
            missing = "output_price" if out is None else "input_price"
            raise ConfigError(f"{where} sets only one price for {endpoint.spec} and the table "
                              f"has none: add {missing} too") from None
        changed = {"input": inp} if inp is not None else {"output": out}
        return replace(base, **changed, source=f"config {where} + {base.source}")

    def models(self, kind: str) -> list[str]:
        """Model ids the table prices for ``kind`` (for help texts and 'did you mean')."""
        return sorted(set(self._entries.get(kind, {})) | set(self._overrides.get(kind, {})))
