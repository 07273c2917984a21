"""Shared fixtures: a simulator factory on loopback, a virtual clock, ``no_blocking``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from noblock import no_blocking

from mlift.sim import SimConfig, SimServer

__all__ = ["no_blocking"]  # tests/noblock.py: fails a test where mlift blocks the loop
# pytester: tests/test_no_blocking.py runs a test under the fixture and sees it fail.
pytest_plugins = ["pytester"]

# The tokenizer files shipped next to the repository (offline machines); without
# them tiktoken is unavailable and counting falls back to the approximation.
_TOKENIZERS = Path(__file__).resolve().parents[2] / "shared" / "tokenizers"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _TOKENIZERS.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_TOKENIZERS)


@pytest.fixture(scope="session", autouse=True)
def _main_thread_event_loop() -> Iterator[None]:
    """Give the main thread an event loop for the session, and close it at the end.

    pytest-asyncio (1.5 on Python 3.11) asks ``asyncio.get_event_loop()`` for
    the loop to restore around each async test; with none set, that call
    creates a loop nobody closes, and its ResourceWarning fails a later test
    under ``filterwarnings = error``. A loop set (and closed) here is what it
    finds and restores instead.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


class VirtualClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


SimFactory = Callable[..., Awaitable[SimServer]]


@pytest.fixture
async def sim() -> AsyncIterator[SimFactory]:
    """``await sim(SimConfig(...), clock=...)`` starts a simulator; all are stopped at the end."""
    servers: list[SimServer] = []

    async def start(config: SimConfig | None = None, *,
                    clock: Callable[[], float] = time.monotonic) -> SimServer:
        server = SimServer(config, clock=clock)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


class ThreadedSim:
    """A simulator in its own thread and event loop, like a remote server (for CLI tests)."""

    def __init__(self, config: SimConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = SimServer(config)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(30)

    @property
    def url(self) -> str:
        return self.server.base_url

    def stats(self) -> dict[str, Any]:
        return self.server.stats()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def remote_sim() -> Iterator[Callable[[SimConfig], ThreadedSim]]:
    started: list[ThreadedSim] = []

    def start(config: SimConfig) -> ThreadedSim:
        server = ThreadedSim(config)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
