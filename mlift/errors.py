"""The one exception hierarchy of mlift.

Every error mlift raises on purpose is a ``MliftError``; the CLI maps the
branches onto exit codes (usage 2, auth 3, partial failure 4)::

    MliftError
    ├── ConfigError (ValueError)         bad flags or config; fails before any request   → exit 2
    │   ├── UnknownNameError (KeyError)  unknown provider, model, prompt or language
    │   └── RunFolderError               a run folder made otherwise, or damaged; says what to do
    ├── PromptError                      a prompt file is invalid
    │   ├── MissingVariablesError        render() lacked variables (all listed at once)
    │   └── PromptLockError              a released prompt changed without a version bump
    ├── InputError                       one bad input record (file, line, field)
    ├── BudgetExceeded                   --max-cost would be passed; the run stops cleanly
    └── ProviderError                    a model call failed (provider, model, status, request id)
        ├── EndpointUnusable             no request to this endpoint can succeed: stops the run,
        │   │                            leaving unprocessed items for the next one
        │   ├── AuthError                401/403: names the env var                  → exit 3
        │   └── EndpointMisconfigured    every request failed the same permanent way
        │       │                        (404 on a wrong base URL, 400 on everything) → exit 5
        │       └── EndpointUnreachable  no server ever answered (wrong port, not running)
        ├── PermanentError               400/404/413/422…: fails the item, never retried
        └── TransientError               retried with backoff by the engine
            ├── RateLimited              429 (carries retry_after)
            ├── ServerError              5xx, 529 overloaded
            ├── ProviderTimeout (TimeoutError)
            ├── ConnectionFailed (ConnectionError)
            └── MalformedResponse        the body could not be parsed

Errors carry context so a message can name what failed without the caller
re-assembling it; no error message ever contains an API key.
"""

from __future__ import annotations


class MliftError(Exception):
    """Base of every error mlift raises on purpose."""


class ConfigError(MliftError, ValueError):
    """Invalid configuration or flags, caught before any request is sent."""


class UnknownNameError(ConfigError, KeyError):
    """A name (provider, model, prompt, language) that mlift does not know."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        import difflib

        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(self.known) if self.known else "(none)"
        super().__init__(f"unknown {kind} {name!r}.{hint} Known: {listing}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class RunFolderError(ConfigError):
    """A run folder cannot be used as asked: made with other settings, or damaged.

    The message says what differs (or which file and line is broken) and what
    to do about it.
    """


class PromptError(MliftError):
    """A prompt file is invalid or cannot be rendered."""


class MissingVariablesError(PromptError):
    def __init__(self, prompt_id: str, missing: list[str]) -> None:
        self.prompt_id, self.missing = prompt_id, sorted(missing)
        super().__init__(f"prompt {prompt_id}: missing variables: {', '.join(self.missing)}")


class PromptLockError(PromptError):
    """A released prompt version's content changed without a version bump."""


class InputError(MliftError):
    """One bad input record; the rest of the input still runs.

    ``record_id`` is the record's own id when it could be read (a readable
    record with a bad field), so its reject can be filed under that id.
    """

    def __init__(self, message: str, *, file: str, line: int | None, field: str | None = None,
                 code: str = "bad_input", record_id: str | None = None) -> None:
        self.file, self.line, self.field, self.code = file, line, field, code
        self.record_id = record_id
        where = f"{file}:{line}" if line is not None else file
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {message}")


class BudgetExceeded(MliftError):
    """Starting another request could pass ``--max-cost``."""


class ProviderError(MliftError):
    """A model call failed. Carries enough context to say which and why."""

    retryable = False

    def __init__(self, message: str, *, provider: str = "", model: str = "",
                 status: int | None = None, request_id: str | None = None,
                 retry_after: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.provider, self.model, self.status = provider, model, status
        self.request_id, self.retry_after = request_id, retry_after
        self.headers = headers or {}
        self.item_id: str | None = None
        super().__init__(message)

    def __str__(self) -> str:
        parts = [p for p in (self.provider and f"{self.provider}:{self.model}",
                             self.status and f"HTTP {self.status}",
                             self.request_id and f"request {self.request_id}") if p]
        prefix = f"[{', '.join(parts)}] " if parts else ""
        return prefix + super().__str__()


class EndpointUnusable(ProviderError):
    """Every request to this endpoint would fail: the run stops instead of burning items.

    Not the item's fault, so stages never turn it into a reject; items not yet
    finished stay unprocessed for the next run.
    """


class AuthError(EndpointUnusable):
    """401/403: the key is missing or wrong. Stops the whole run."""


class EndpointMisconfigured(EndpointUnusable):
    """Every request to the endpoint failed with the same permanent error (the circuit breaker).

    A wrong base URL (404 on every path) or a model or parameter the server
    refuses for every request; the message names the URL and model and what
    to check. Stops the run like an authentication error.
    """


class PermanentError(ProviderError):
    """The request itself is wrong (400/404/422…); retrying cannot help."""


class TransientError(ProviderError):
    """May succeed if tried again later."""

    retryable = True


class RateLimited(TransientError):
    """HTTP 429."""


class ServerError(TransientError):
    """HTTP 5xx or Anthropic's 529 overloaded."""


class ProviderTimeout(TransientError, TimeoutError):
    """No (complete) answer within the request timeout."""


class ConnectionFailed(TransientError, ConnectionError):
    """The connection failed or was dropped mid-response."""


class MalformedResponse(TransientError):
    """The server answered with a body that could not be parsed."""


class EndpointUnreachable(EndpointMisconfigured):
    """No server ever answered at the endpoint's URL: every connection failed for a while.

    A wrong host or port, or a local server that is not running. Only before
    the endpoint's first answer: a server that answered once and then drops
    connections is retried as a transient failure.
    """


def status_error(status: int, message: str, **context: object) -> ProviderError:
    """Classify an HTTP error status into the hierarchy (by status, never by SDK class)."""
    cls: type[ProviderError]
    if status in (401, 403):
        cls = AuthError
    elif status == 429:
        cls = RateLimited
    elif status in (408, 409) or status >= 500:
        cls = ServerError if status >= 500 else TransientError
    else:
        cls = PermanentError
    return cls(message, status=status, **context)  # type: ignore[arg-type]
