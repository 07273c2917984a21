"""User-facing configuration, validated at the edge; the one place that reads the environment.

A TOML file holds named provider profiles (and, later, other sections)::

    [providers.local]                 # --judge local:qwen2.5-7b
    kind = "openai"                   # a registered provider kind
    base_url = "http://127.0.0.1:8000/v1"
    api_key_env = "LOCAL_KEY"         # optional: the variable holding its key
    rpm = 600                         # client-side limits (optional)
    tpm = 200000
    concurrency = 16
    context_tokens = 32768
    prices = { input = 0.0, output = 0.0 }   # USD per 1M tokens
    structured_outputs = true         # the server enforces JSON schemas (llama.cpp, vLLM)
    transport = "auto"                # auto (default) | sdk | aiohttp

The openai kind also takes SDK-only settings — ``organization``, ``project``
(OpenAI-Organization / OpenAI-Project headers) and ``azure_api_version``
(Azure OpenAI: ``base_url`` is the resource endpoint, the model the
deployment name); with any of them set, ``transport = "auto"`` uses the
official SDK instead of mlift's lean client.

Built-in profiles ``openai``, ``anthropic`` and ``sim`` exist without a file; a
file's ``[providers.openai]`` overrides only the fields it sets.

Where things come from:

- the file: ``load_config(path)``, else ``$MLIFT_CONFIG``, else ``./mlift.toml``
  if present, else the built-ins alone;
- base URL: ``--base-url`` flag > the profile's ``base_url`` > for a profile
  without one, ``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL`` (as the SDKs read
  them) > the public API;
- API key: only ever the environment variable the profile names. A profile
  that talks to the public API without ``api_key_env`` reads the kind's usual
  variable (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``). A missing key is an
  ``AuthError`` naming the variable, raised before any request — except when
  the base URL is on this machine or a private network (vLLM, Ollama,
  llama.cpp rarely check keys), where a placeholder key is sent instead; a
  profile with a ``base_url`` and no ``api_key_env`` always sends the placeholder.

Keys are never stored here: they go straight into an ``Endpoint``, whose repr
hides them.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from mlift.errors import AuthError, ConfigError, UnknownNameError
from mlift.providers.base import Endpoint

ENV_CONFIG = "MLIFT_CONFIG"
DEFAULT_FILE = "mlift.toml"
PLACEHOLDER_KEY = "mlift-no-key"  # sent to local servers that ask for no key
SPEC_EXAMPLE = "openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest or sim:default"

# kind -> (public base URL, variable overriding it, usual key variable)
KIND_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_BASE_URL", "OPENAI_API_KEY"),
    "anthropic": ("https://api.anthropic.com", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
}
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "openai": {"kind": "openai"}, "anthropic": {"kind": "anthropic"}, "sim": {"kind": "sim"},
}
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prices(_Strict):
    input: float = Field(ge=0, description="USD per 1M input tokens")
    output: float = Field(ge=0, description="USD per 1M output tokens")


class ProviderProfile(_Strict):
    """One ``[providers.NAME]`` section."""

    kind: str
    base_url: str | None = None
    api_key_env: str | None = None
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, ge=1)
    prices: Prices | None = None
    context_tokens: int | None = Field(default=None, ge=1)
    transport: str = "auto"
    structured_outputs: bool | None = None
    organization: str | None = None
    project: str | None = None
    azure_api_version: str | None = None

    @model_validator(mode="after")
    def _sdk_only_settings_fit_the_kind(self) -> ProviderProfile:
        used = [n for n in ("organization", "project", "azure_api_version")
                if getattr(self, n) is not None]
        if used and self.kind != "openai":
            raise ValueError(f"{', '.join(used)}: only for kind = \"openai\" profiles "
                             f"(this one is {self.kind!r})")
        if self.azure_api_version is not None and self.base_url is None:
            raise ValueError("azure_api_version needs base_url: your Azure OpenAI resource "
                             "endpoint, e.g. https://NAME.openai.azure.com")
        return self

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        from mlift.providers.registry import known_kinds

        if kind not in known_kinds():
            raise ValueError(str(UnknownNameError("provider kind", kind, known_kinds())))
        return kind

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            check_base_url(url)
        return url

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            # The value is not echoed: a user who got this wrong may have pasted the key.
            raise ValueError("not an environment variable name (it must name the "
                             "variable holding the key, e.g. OPENAI_API_KEY, not the key)")
        return name


class Config(_Strict):
    """The whole validated configuration. New sections become new fields here;
    ``run`` is passed through untouched for the pipeline to validate."""

    providers: dict[str, ProviderProfile] = Field(default_factory=dict)
    run: dict[str, Any] = Field(default_factory=dict)
    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The file this configuration was read from (None: built-ins only)."""
        return self._path

    @field_validator("providers")
    @classmethod
    def _profile_names(cls, profiles: dict[str, ProviderProfile]) -> dict[str, ProviderProfile]:
        for name in profiles:
            if not _PROFILE_NAME.match(name):
                raise ValueError(f"profile name {name!r} may use only letters, digits, "
                                 "'_', '-' and '.' (it is the NAME in NAME:MODEL)")
        return profiles


def check_base_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL, else ``ValueError`` saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url {url!r} must be an http:// or https:// URL with a host")
    return url


def is_local_url(url: str | None) -> bool:
    """True for loopback, private-network and ``.local``/``localhost`` hosts."""
    host = (urlsplit(url).hostname or "") if url else ""
    if host == "localhost" or host.endswith((".localhost", ".local")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified


def load_config(path: str | Path | None = None, *,
                env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration (see the module docstring for where from).

    Errors are ``ConfigError``s naming the file, the line where it can be
    found, and the dotted key (``providers.local.rpm``).
    """
    env = os.environ if env is None else env
    source: Path | None = None
    if path is not None:
        source = Path(path)
    elif env.get(ENV_CONFIG):
        source = Path(env[ENV_CONFIG])
        if not source.is_file():
            raise ConfigError(f"{ENV_CONFIG}={source} is set, but that file does not exist")
    elif Path(DEFAULT_FILE).is_file():
        source = Path(DEFAULT_FILE)
    text, raw = "", {}
    if source is not None:
        try:
            text = source.read_text(encoding="utf-8")
            raw = tomllib.loads(text)
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {source} cannot be read: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    where = str(source) if source else "built-in configuration"
    file_profiles = raw.get("providers", {})
    if not isinstance(file_profiles, dict):
        raise ConfigError(f"{_where(where, text, ('providers',))}: providers: must be a table "
                          "of [providers.NAME] sections")
    profiles: dict[str, Any] = {n: dict(p) for n, p in BUILTIN_PROFILES.items()}
    for name, table in file_profiles.items():
        base = profiles.get(name, {})
        profiles[name] = {**base, **table} if isinstance(table, dict) else table
    try:
        config = Config.model_validate({**raw, "providers": profiles})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, where, text)) from None
    config = config.model_copy(update={"providers": {
        name: _with_kind_defaults(p, env) for name, p in config.providers.items()}})
    config._path = source
    return config


def _with_kind_defaults(profile: ProviderProfile, env: Mapping[str, str]) -> ProviderProfile:
    """A profile without ``base_url`` talks to the kind's public API (or the SDK's env URL)."""
    defaults = KIND_DEFAULTS.get(profile.kind)
    if defaults is None or profile.base_url is not None:
        return profile
    url, url_env, key_env = defaults
    base_url = env.get(url_env) or url
    try:
        check_base_url(base_url)
    except ValueError as exc:
        raise ConfigError(f"environment variable {url_env}: {exc}") from None
    return profile.model_copy(update={"base_url": base_url,
                                      "api_key_env": profile.api_key_env or key_env})


def _format_errors(exc: ValidationError, where: str, text: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and loc[-1] == "api_key":
            message = ("keys are never read from the config file: put the key in an "
                       "environment variable and name that variable in api_key_env")
        elif err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}{_suggest(loc)}"
        elif (err["type"] != "missing" and loc[-1] != "api_key_env"
              and not isinstance(err["input"], dict) and repr(err["input"]) not in message):
            message += f" (got {err['input']!r})"
        lines.append(f"{_where(where, text, loc)}: {dotted}: {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _suggest(loc: tuple[str, ...]) -> str:
    model: type[BaseModel] = Config
    if len(loc) >= 3 and loc[0] == "providers":
        model = Prices if len(loc) == 4 and loc[2] == "prices" else ProviderProfile
    known = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return f"{hint} Allowed: {', '.join(known)}"


def _where(where: str, text: str, loc: tuple[str, ...]) -> str:
    """``file:line`` for the deepest part of ``loc`` found in the TOML text."""
    for depth in range(len(loc), 0, -1):
        line = _find_line(text, loc[:depth])
        if line is not None:
            return f"{where}:{line}"
    return where


def _find_line(text: str, loc: tuple[str, ...]) -> int | None:
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        if stripped.startswith("["):
            table = tuple(p.strip().strip("\"'") for p in stripped.strip("[]").split("."))
            if table == loc:
                return number
        elif "=" in stripped:
            key = stripped.split("=", 1)[0].strip().strip("\"'")
            if (*table, key) == loc:
                return number
    return None


def parse_spec(spec: str) -> tuple[str, str]:
    """``"NAME:MODEL"`` -> ``(NAME, MODEL)``; the model may itself contain ``:``."""
    if "," in spec:
        raise ConfigError(f"{spec!r} names several endpoints (NAME:MODEL,NAME:MODEL); only "
                          "the commands that send requests take several, one at a time here")
    name, sep, model = spec.strip().partition(":")
    if not sep or not name.strip() or not model.strip():
        raise ConfigError(f"provider spec {spec!r} must be NAME:MODEL, e.g. {SPEC_EXAMPLE}")
    return name.strip(), model.strip()


def resolve_endpoint(spec: str, config: Config, *, base_url: str | None = None,
                     rpm: float | None = None, tpm: float | None = None,
                     concurrency: int | None = None, transport: str | None = None,
                     env: Mapping[str, str] | None = None) -> Endpoint:
    """The ``Endpoint`` for ``NAME:MODEL``: the profile, flag overrides, and its key.

    Raises ``ConfigError`` for a bad spec, unknown profile or bad override, and
    ``AuthError`` naming the variable when a key is needed but not set — all
    before any request is sent.
    """
    env = os.environ if env is None else env
    name, model = parse_spec(spec)
    profile = config.providers.get(name)
    if profile is None:
        raise UnknownNameError("provider", name, list(config.providers))
    for flag, value in (("--rpm", rpm), ("--tpm", tpm), ("--concurrency", concurrency)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    if base_url is not None:
        try:
            check_base_url(base_url)
        except ValueError as exc:
            raise ConfigError(f"--base-url: {exc}") from None
    url = base_url or profile.base_url
    endpoint = Endpoint(
        name=name, kind=profile.kind, model=model, base_url=url,
        api_key_env=profile.api_key_env,
        api_key=_api_key(name, model, profile, url, env),
        rpm=rpm or profile.rpm, tpm=tpm or profile.tpm,
        concurrency=concurrency or profile.concurrency,
        input_price=profile.prices.input if profile.prices else None,
        output_price=profile.prices.output if profile.prices else None,
        context_tokens=profile.context_tokens, transport=transport or profile.transport,
        organization=profile.organization, project=profile.project,
        azure_api_version=profile.azure_api_version,
        structured_outputs=profile.structured_outputs)
    from mlift.providers.registry import choose_transport

    choose_transport(endpoint)  # an unknown or impossible transport fails now, not mid-run
    return endpoint


def _api_key(name: str, model: str, profile: ProviderProfile, url: str | None,
             env: Mapping[str, str]) -> str | None:
    key_env = profile.api_key_env
    key = (env.get(key_env) or "").strip() if key_env else ""
    if key:
        return key
    if profile.kind == "sim":
        return None  # the simulator needs no key
    if key_env is None or is_local_url(url):
        return PLACEHOLDER_KEY
    raise AuthError(f"no API key for {name}:{model}: set the environment variable {key_env} "
                    f"(profile {name!r} reads its key from it)", provider=name, model=model)
