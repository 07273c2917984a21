"""Fail a test when mlift blocks the running event loop: the ``no_blocking`` fixture.

Built on blockbuster, which wraps the usual blocking calls (``time.sleep``,
file reads and writes, ``os.stat`` and friends, blocking sockets, SQLite,
a contended ``threading.Lock.acquire``) and raises ``BlockingError`` when one
is made while an event loop runs in that thread. Its own exemptions stand
(imports, starting a thread, writes to stderr, non-blocking sockets).

What counts is narrower than blockbuster's module scoping gives. Its
``scanned_modules`` looks at *every* frame of the stack, and when the CLI runs
in-process the ``asyncio.run`` that starts the loop is itself mlift code (in
``mlift/cli``): every call on the loop would count, aiohttp's and the SDKs'
internals included. Here only the frames between the blocking call and the
loop's dispatch (``asyncio.events.Handle._run``) are looked at, and the call is
mlift's when one of them is in the ``mlift`` package. So a blocking call that
mlift makes, directly or through a library it calls, fails the test; one a
library makes on its own, in a callback or task of its own, does not.

The simulator (``mlift/sim``) is the test double and is scoped out: a call with
a simulator frame above the loop is allowed, whatever it calls.

Every call refused is also recorded, and the fixture fails the test at
teardown if there was any: a ``BlockingError`` that some ``except Exception``
turned into a reject row or a 500 still fails the test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from blockbuster import BlockBuster, BlockBusterFunction

import mlift

# As the code objects name their files (not resolved: mlift/_prompts is a link).
MLIFT = str(Path(mlift.__file__).parent) + "/"
SIM = MLIFT + "sim/"


def _above_the_loop() -> Iterator[FrameType]:
    """The caller's frames, innermost first, down to the loop's dispatch of a callback."""
    frame = inspect.currentframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_run" and code.co_filename.endswith("asyncio/events.py"):
            return
        yield frame
        frame = frame.f_back


def mlift_site(exempt: Iterable[tuple[str, Iterable[str]]] = ()) -> str | None:
    """Where mlift (outside the simulator) makes the current call on the loop, else None.

    ``exempt`` are blockbuster's ``(file suffix, function names)`` under which the
    call is allowed (an import reading its module, a thread being started).
    """
    site: str | None = None
    for frame in _above_the_loop():
        name, func = frame.f_code.co_filename, frame.f_code.co_name
        if name.startswith(SIM):
            return None
        if any(name.endswith(suffix) and func in funcs for suffix, funcs in exempt):
            return None
        if site is None and name.startswith(MLIFT):
            site = f"{name[len(MLIFT):]}:{frame.f_lineno} ({func})"
    return site


def _rule(function: BlockBusterFunction, refused: list[str]) -> Callable[..., bool]:
    """blockbuster's predicate for ``function``: allowed unless mlift makes the call."""
    allowed, exempt = function.can_block_predicate, list(function.can_block_functions)

    def predicate(*args: Any, **kwargs: Any) -> bool:
        if allowed(*args, **kwargs):  # a non-blocking socket, stderr, a free lock…
            return True
        site = mlift_site(exempt)
        if site is None:
            return True
        refused.append(f"{function.full_name} from mlift/{site}")
        return False

    return predicate


@contextmanager
def forbid_blocking() -> Iterator[list[str]]:
    """Inside, a blocking call mlift makes on a running event loop raises ``BlockingError``.

    Yields the list of calls refused so far ("os.stat from mlift/config.py:209 (load_config)").
    """
    refused: list[str] = []
    # No scanned modules: blockbuster then refuses every call its predicate does
    # not allow, and the predicate is where the scope above is drawn.
    buster = BlockBuster()
    for function in buster.functions.values():
        function.can_block_predicate = _rule(function, refused)
    buster.activate()
    try:
        yield refused
    finally:
        buster.deactivate()


@pytest.fixture
def no_blocking() -> Iterator[None]:
    """The test fails where mlift makes a blocking call on a running event loop.

    Use it on tests that run real commands end to end (in-process, so the loop
    is in the test's process); see the module docstring for what counts.
    """
    with forbid_blocking() as refused:
        yield
    if refused:
        pytest.fail("blocking calls on the event loop (move them to a thread, or before "
                    "asyncio.run):\n  " + "\n  ".join(dict.fromkeys(refused)), pytrace=False)
