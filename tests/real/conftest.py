"""The conformance suite's server: a real llama-server with a real small model.

``scripts/real_server.py`` sets it up and starts it (``make test-real`` does
both). The tests find it through ``$MLIFT_REAL_URL`` or the script's record of
the server it started. Every test here is marked ``real``.

Under ``make test`` a missing server skips this folder with the reason; under
``make test-real`` (``MLIFT_REAL_REQUIRED=1``) it is a failure with the
reason, and so is any other skip: that suite never passes by running nothing.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from mlift.config import load_config, resolve_endpoint
from mlift.engine.accounting import Accounting
from mlift.engine.core import Engine
from mlift.engine.retry import TimeoutPolicy
from real.real_support import ROOT, EngineFactory, RealServer, profiles

REQUIRED = os.environ.get("MLIFT_REAL_REQUIRED") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real: needs the real llama-server "
                                       "(scripts/real_server.py; make test-real)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.real)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    # An expected failure (xfail) is reported as skipped too; it stays what it is.
    if REQUIRED and report.skipped and not hasattr(report, "wasxfail") \
            and Path(__file__).parent in Path(str(item.path)).parents:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"make test-real never skips: {reason}"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("real_server", ROOT / "scripts/real_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("real_server", module)
    spec.loader.exec_module(module)
    return module


def _find_url() -> tuple[str | None, str]:
    """The server's base URL, or None and why not."""
    url = os.environ.get("MLIFT_REAL_URL")
    if url:
        return url.rstrip("/"), f"MLIFT_REAL_URL={url}"
    script = _script()
    layout = script.Layout(script.cache_dir())
    state = script._running(layout)
    if state is None:
        return None, ("no llama-server running (set one up and start it with "
                      "'python scripts/real_server.py start', or run 'make test-real')")
    return str(state["url"]), f"the server recorded in {layout.server}"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> RealServer:
    url, where = _find_url()
    if url is None:
        if REQUIRED:
            pytest.fail(where, pytrace=False)
        pytest.skip(where)
    try:
        with urllib.request.urlopen(url + "/health", timeout=30) as response:
            healthy = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        healthy, where = False, f"{where}: {url}/health failed ({exc})"
    if not healthy:
        if REQUIRED:
            pytest.fail(f"llama-server not healthy at {url} ({where})", pytrace=False)
        pytest.skip(f"llama-server not healthy at {url} ({where})")
    config = tmp_path_factory.mktemp("real") / "mlift.toml"
    config.write_text(profiles(url), encoding="utf-8")
    return RealServer(url, config)


@pytest.fixture
def make_engine(server: RealServer) -> Iterator[EngineFactory]:
    """``make_engine(transport=..., concurrency=..., timeouts=...)``: an engine on the server."""
    config = load_config(server.config_path)

    def make(*, transport: str = "sdk", concurrency: int | None = None,
             timeouts: Callable[[], TimeoutPolicy] = TimeoutPolicy) -> Engine:
        def resolve(target: str) -> Any:
            return resolve_endpoint(target, config, transport=transport,
                                    concurrency=concurrency, env={})
        return Engine(resolve, accounting=Accounting(), timeouts=timeouts)

    yield make
