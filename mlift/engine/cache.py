"""The response cache: content-addressed, JSON on disk, off the event loop.

Every model answer mlift pays for is kept, so re-running a pipeline, sweeping
λ or resuming after a crash costs nothing for calls already made. The key is
a pure function of what determines the answer (``cachekey.cache_key``); the value is
the completion as JSON text. Only complete successes are stored: errors never
are, and neither are answers stopped for any reason other than ``stop`` or
``length`` (a ``length`` answer is the deterministic result of the same
request with the same ``max_tokens``, which is part of the key, so caching it
is correct).

Storage is diskcache (SQLite plus files), chosen because it is process-safe
and survives kill -9. Three of its defaults are wrong for this use and are
overridden:

- size: its 1 GB ``size_limit`` silently evicts paid answers. Eviction is
  switched off (``eviction_policy="none"``); ``size_limit_bytes`` is kept as
  a soft limit that logs a warning once when passed (``mlift cache clear``
  frees space). Dropping paid-for answers behind the user's back is worse
  than using disk.
- pickle: values are stored as ``str`` only (``_JSONTextDisk``), and a value
  stored in any other mode is refused on read rather than unpickled, so a
  tampered cache directory cannot run code.
- blocking: every SQLite call runs on one dedicated worker thread, which
  serves queued gets and puts in batches; diskcache keeps one connection per
  thread, so this also means exactly one connection, closed by ``close()`` on
  the thread that opened it.

Lookups queued together are answered by one ``SELECT … WHERE key IN (…)``
(``get_many`` asks for many keys in one hop): a cached re-run is bound by
this path, and one query per key cost three times as much.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import diskcache  # type: ignore[import-untyped]  # diskcache ships no type hints
import platformdirs

from mlift.errors import ConfigError
from mlift.records import loads
from mlift.types import Completion

log = logging.getLogger(__name__)

T = TypeVar("T")

VALUE_SCHEMA: Final = 1
CACHEABLE_FINISH: Final = frozenset({"stop", "length"})
DEFAULT_SIZE_LIMIT: Final = 50 * 2**30
# Sentinel for "no entry": distinct from any JSON value a cache could hold.
_MISS: Final = object()
# Keys per SELECT: well under SQLite's smallest limit on bound parameters (999).
_SELECT_CHUNK: Final = 500


def default_cache_dir(cli_value: str | None) -> Path:
    """Where the cache lives: ``--cache-dir``, else ``$MLIFT_CACHE_DIR``, else the user cache dir.

    The one place the cache location is read from the environment.
    """
    chosen = cli_value or os.environ.get("MLIFT_CACHE_DIR") or platformdirs.user_cache_dir("mlift")
    return Path(chosen).expanduser()


class _JSONTextDisk(diskcache.Disk):  # type: ignore[misc]  # untyped base class
    """A diskcache Disk that stores text only and refuses to unpickle on read."""

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if read or not isinstance(value, str):
            raise TypeError("the response cache stores JSON text only")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_TEXT):
            raise ValueError(f"cache entry stored in mode {mode}; only JSON text is read")
        return super().fetch(mode, filename, value, read)


@dataclass(frozen=True, slots=True)
class _Op:
    """One queued lookup of ``keys`` (``text is None``) or put of ``text`` under ``keys[0]``,
    with where to deliver its result."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    keys: tuple[str, ...]
    text: str | None = None


def _deliver(results: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, value in results:
        if future.done():  # the waiter was cancelled
            continue
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)


class ResponseCache:
    """Completions by ``cache_key``: async get/put for the engine, sync admin calls for the CLI.

    A hit comes back with ``cached=True``, ``cost_usd=0``, ``attempts=0`` and
    ``latency_s=0``: nothing was sent, so nothing was paid or waited for. An
    entry that cannot be read (corrupt, foreign, wrong schema) is a logged
    miss, never a crash; the next successful answer for that key replaces it.

    Gets and puts are micro-batched: calls made while the worker thread is
    busy queue up and are served by its next pass, consecutive puts in one
    SQLite transaction. So many concurrent callers cost one thread hop per
    batch, not one per call, and a lone caller still waits only one hop.
    """

    def __init__(self, directory: Path | str, *,
                 size_limit_bytes: int = DEFAULT_SIZE_LIMIT) -> None:
        self.directory = Path(directory).expanduser()
        self.size_limit_bytes = int(size_limit_bytes)
        if self.size_limit_bytes <= 0:
            raise ConfigError(f"cache size limit must be positive, got {size_limit_bytes}")
        self.hits = 0
        self.misses = 0
        self.stores = 0
        self._stored_since_check = 0
        self._warned_full = False
        self._closed = False
        self._lock = threading.Lock()
        self._pending: list[_Op] = []
        self._draining = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlift-cache")
        try:
            self._cache = self._executor.submit(self._open).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    @classmethod
    async def open(cls, directory: Path | str, *,
                   size_limit_bytes: int = DEFAULT_SIZE_LIMIT) -> ResponseCache:
        """Construct without blocking the event loop (opening SQLite touches the disk)."""
        return await asyncio.to_thread(cls, directory, size_limit_bytes=size_limit_bytes)

    def _open(self) -> Any:
        try:
            return diskcache.Cache(str(self.directory), disk=_JSONTextDisk,
                                   size_limit=self.size_limit_bytes, eviction_policy="none",
                                   # every value in SQLite up to 64 KiB: fewer small files
                                   disk_min_file_size=64 * 1024)
        except OSError as exc:
            raise ConfigError(f"cannot open the response cache at {self.directory}: "
                              f"{exc.strerror or exc}; choose another with --cache-dir or "
                              f"MLIFT_CACHE_DIR") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"response cache at {self.directory} is closed")

    # -- the worker thread ---------------------------------------------------

    def _enqueue(self, keys: tuple[str, ...], text: str | None) -> asyncio.Future[Any]:
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            self._pending.append(_Op(loop, future, keys, text))
            start, self._draining = not self._draining, True
        if start:
            self._executor.submit(self._drain)
        return future

    def _drain(self) -> None:
        """Serve queued operations until the queue is empty (runs on the worker thread)."""
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._draining = False
                    return
            results: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
            try:
                values = self._serve(batch)
            except BaseException as exc:  # a bug here must not leave waiters hanging
                values = [exc] * len(batch)
            for op, value in zip(batch, values, strict=True):
                results.setdefault(op.loop, []).append((op.future, value))
            for loop, items in results.items():
                with contextlib.suppress(RuntimeError):  # loop closed: nobody waits
                    loop.call_soon_threadsafe(_deliver, items)

    def _serve(self, batch: list[_Op]) -> list[Any]:
        """Results in queue order; each run of lookups (or of puts) is served at once.

        A lookup queued after a put sees it: runs are served in order.
        """
        values: list[Any] = []
        i = 0
        while i < len(batch):
            lookups = batch[i].text is None
            j = i
            while j < len(batch) and (batch[j].text is None) == lookups:
                j += 1
            if lookups:
                found = self._get_many_blocking([k for op in batch[i:j] for k in op.keys])
                at = 0
                for op in batch[i:j]:
                    values.append(found[at:at + len(op.keys)])
                    at += len(op.keys)
            else:
                values.extend([self._put_blocking(batch[i:j])] * (j - i))
            i = j
        return values

    def _get_many_blocking(self, keys: list[str]) -> list[Any]:
        """The stored text of ``keys`` (None: absent), a few hundred per query; per-key gets
        if that fails. Decoding is left to the caller's side (``_decode``): this thread
        only reads, so it holds the GIL as little as it can.

        diskcache has no multi-get, so this reads its table the way its own
        ``get`` does (a ``str`` key is stored as itself with ``raw = 1``; an
        entry past its expiry time is absent; the value is decoded by the
        Disk, which refuses anything but text). Its connection and Disk are
        private attributes: should a diskcache release change them, the
        fallback is its public ``get``, one key at a time, with the same
        results.
        """
        if len(keys) == 1:
            return [self._get_blocking(keys[0])]
        try:
            rows = self._select(keys)
        except Exception as exc:  # locked database, another diskcache layout: the slow way
            log.debug("response cache %s: batched lookup failed (%s: %s); one key at a time",
                      self.directory, type(exc).__name__, exc)
            return [self._get_blocking(key) for key in keys]
        return [self._fetch(key, rows[key]) if key in rows else None for key in keys]

    def _select(self, keys: list[str]) -> dict[str, tuple[Any, Any, Any]]:
        """(mode, filename, value) of each key present and not expired."""
        rows: dict[str, tuple[Any, Any, Any]] = {}
        now = time.time()
        for start in range(0, len(keys), _SELECT_CHUNK):
            chunk = keys[start:start + _SELECT_CHUNK]
            query = ("SELECT key, mode, filename, value FROM Cache WHERE raw = 1 AND "
                     "(expire_time IS NULL OR expire_time > ?) AND key IN "
                     f"({','.join('?' * len(chunk))})")
            for key, mode, filename, value in self._cache._sql(query, (now, *chunk)):
                rows[key] = (mode, filename, value)
        return rows

    def _fetch(self, key: str, row: tuple[Any, Any, Any]) -> Any:
        mode, filename, value = row
        if mode == diskcache.core.MODE_RAW and filename is None and type(value) is str:
            return value  # what Disk.fetch returns for text kept in SQLite, without the calls
        try:
            return self._cache._disk.fetch(mode, filename, value, False)
        except Exception as exc:  # refused mode, a value file gone: unreadable is a miss
            log.warning("response cache %s: unreadable entry %s… treated as a miss (%s: %s)",
                        self.directory, key[:12], type(exc).__name__, exc)
            return None

    def _get_blocking(self, key: str) -> Any:
        try:
            raw = self._cache.get(key, default=_MISS, retry=True)
        except Exception as exc:  # sqlite/IO/refused mode: unreadable is a miss
            log.warning("response cache %s: unreadable entry %s… treated as a miss (%s: %s)",
                        self.directory, key[:12], type(exc).__name__, exc)
            return None
        return None if raw is _MISS else raw

    def _decode(self, key: str, raw: Any) -> Completion | None:
        """A stored value as a hit (marked cached, free), or None if it is not a valid entry."""
        try:
            data = loads(raw)
            if data.get("schema") != VALUE_SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}")
            hit = Completion.from_json(data["completion"], cached=True, cost_usd=0.0,
                                       latency_s=0.0, attempts=0)
            if hit.finish_reason not in CACHEABLE_FINISH:
                raise ValueError(f"finish_reason {hit.finish_reason!r}")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("response cache %s: corrupt entry %s… treated as a miss (%s: %s)",
                        self.directory, key[:12], type(exc).__name__, exc)
            return None
        return hit

    def _put_blocking(self, ops: list[_Op]) -> bool:
        """Write consecutive puts in one transaction; a failed write is logged, not raised.

        The answer was paid for and is valid whether or not it could be cached,
        so a full disk must not fail the item.
        """
        try:
            with self._cache.transact(retry=True):
                for op in ops:
                    self._cache.set(op.keys[0], op.text, retry=True)
        except Exception as exc:
            log.warning("response cache %s: could not store %d answer(s) (%s: %s)",
                        self.directory, len(ops), type(exc).__name__, exc)
            return False
        self._stored_since_check += len(ops)
        if self._stored_since_check >= 1000 and not self._warned_full:
            self._stored_since_check = 0
            if self._cache.volume() > self.size_limit_bytes:
                self._warned_full = True
                log.warning("response cache %s holds more than its %.1f GB limit; nothing "
                            "is evicted (paid answers are kept). Free space with "
                            "`mlift cache clear`.", self.directory, self.size_limit_bytes / 1e9)
        return True

    # -- the engine's API --------------------------------------------------

    async def get(self, key: str) -> Completion | None:
        """The stored completion for ``key``, or None on a miss."""
        raw: list[Any] = await self._enqueue((key,), None)
        hit = None if raw[0] is None else self._decode(key, raw[0])
        if hit is None:
            self.misses += 1
        else:
            self.hits += 1
        return hit

    async def get_many(self, keys: Sequence[str], *,
                       count_misses: bool = True) -> list[Completion | None]:
        """The stored completion (or None) for each of ``keys``, in one hop to the thread.

        A caller that will ``get`` the misses again (the engine's prefetch)
        passes ``count_misses=False``, so each miss is counted once.
        """
        if not keys:
            return []
        raw: list[Any] = await self._enqueue(tuple(keys), None)
        found = [None if text is None else self._decode(key, text)
                 for key, text in zip(keys, raw, strict=True)]
        hits = sum(hit is not None for hit in found)
        self.hits += hits
        if count_misses:
            self.misses += len(found) - hits
        return found

    async def put(self, key: str, completion: Completion) -> bool:
        """Store a complete success; returns whether it was stored.

        Answers that came from the cache and answers that did not finish with
        ``stop`` or ``length`` (content filter, tool call, …) are not stored.
        """
        if completion.cached or completion.finish_reason not in CACHEABLE_FINISH:
            return False
        text = json.dumps({"schema": VALUE_SCHEMA, "completion": completion.to_json()},
                          ensure_ascii=False, separators=(",", ":"))
        stored: bool = await self._enqueue((key,), text)
        self.stores += stored
        return stored

    # -- admin (CLI, tests) --------------------------------------------------

    def _run_sync(self, fn: Callable[[], T]) -> T:
        self._check_open()
        return self._executor.submit(fn).result()

    def stats(self) -> dict[str, Any]:
        """Entries, bytes on disk, location, limit, and this process's hits/misses/stores."""
        entries, size = self._run_sync(lambda: (len(self._cache), self._cache.volume()))
        return {"directory": str(self.directory), "entries": int(entries),
                "size_bytes": int(size), "size_limit_bytes": self.size_limit_bytes,
                "hits": self.hits, "misses": self.misses, "stores": self.stores}

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        return int(self._run_sync(lambda: self._cache.clear(retry=True)))

    def close(self) -> None:
        """Close the SQLite connection on its own thread and stop the thread. Idempotent.

        Operations already queued are served first (the worker is first in, first out).
        """
        if self._closed:
            return
        try:
            self._run_sync(self._cache.close)
        finally:
            self._closed = True
            self._executor.shutdown(wait=True)

    async def aclose(self) -> None:
        """``close()`` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
