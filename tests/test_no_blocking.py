"""The ``no_blocking`` fixture (tests/noblock.py) refuses what it should, and only that.

And the commands, run from cold (nothing loaded yet in this process: tokenizer
files, the language-ID model, the price table, the provider registry), make no
blocking call on their event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tiktoken.registry as tiktoken_registry
from blockbuster import BlockingError
from conftest import ThreadedSim
from noblock import forbid_blocking

from mlift.cli import main
from mlift.config import load_config
from mlift.pipeline.select import default_identifier
from mlift.prices import _builtin_text
from mlift.providers.registry import _targets
from mlift.sim import SimConfig
from mlift.tokens import _load

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "mlift.toml"
    path.write_text('[providers.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n',
                    encoding="utf-8")
    return path


async def test_a_blocking_call_mlift_makes_in_a_coroutine_is_refused(config_file: Path) -> None:
    with forbid_blocking() as refused, pytest.raises(BlockingError):
        load_config(config_file)  # reads the file on the running loop
    assert len(refused) == 1
    assert "mlift/config.py" in refused[0] and "load_config" in refused[0]


async def test_the_same_call_in_a_thread_passes(config_file: Path) -> None:
    with forbid_blocking() as refused:
        config = await asyncio.to_thread(load_config, config_file)
    assert "local" in config.providers
    assert refused == []


async def test_a_blocking_call_without_mlift_on_the_stack_is_not_mlifts(
        config_file: Path) -> None:
    with forbid_blocking() as refused:
        # Deliberately blocking, and not through mlift: the test's own, as a library's would be.
        time.sleep(0.001)  # noqa: ASYNC251
        assert config_file.read_text(encoding="utf-8")  # noqa: ASYNC240
    assert refused == []


def test_the_fixture_fails_a_test_whose_blocking_call_was_swallowed(
        pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest("from noblock import no_blocking  # noqa: F401\n")
    pytester.makepyfile(test_inner='''
        import asyncio
        import pytest
        from mlift.config import load_config

        async def swallowed(path):
            try:
                load_config(path)
            except Exception:  # as a worker turning every error into a reject would
                pass

        @pytest.mark.usefixtures("no_blocking")
        def test_blocks(tmp_path):
            path = tmp_path / "mlift.toml"
            path.write_text("")
            asyncio.run(swallowed(path))

        @pytest.mark.usefixtures("no_blocking")
        def test_does_not_block(tmp_path):
            path = tmp_path / "mlift.toml"
            path.write_text("")
            asyncio.run(asyncio.to_thread(load_config, path))
    ''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    # test_blocks passes its call and errors at teardown: the session fails.
    result.assert_outcomes(passed=2, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*blocking calls on the event loop*",
                                 "*from mlift/config.py:* (load_config)*"])


def forget_what_was_loaded() -> None:
    """What earlier tests (and the simulator, which warms its tokenizers) loaded into this
    process is forgotten, so the command loads it all again — and must not on its loop."""
    for cached in (_load, default_identifier, _builtin_text, _targets):
        cached.cache_clear()
    tiktoken_registry.ENCODINGS.clear()  # tiktoken keeps the encodings it has read too


def subset(tmp_path: Path, n: int = 3) -> list[str]:
    files = []
    for lang in ("hi", "es"):
        lines = (SAMPLES / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()[:n]
        path = tmp_path / f"{lang}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(str(path))
    return files


@pytest.mark.usefixtures("no_blocking")
def test_run_and_filter_from_cold_block_nothing_on_the_loop(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    sim = remote_sim(SimConfig(seed=1))
    forget_what_was_loaded()
    out = tmp_path / "out"
    # An OpenAI model name: counting its tokens needs tiktoken's encoding file.
    common = ["--base-url", sim.url + "/v1", "--cache-dir", str(tmp_path / "cache"), "-q"]
    assert main(["run", *subset(tmp_path), "--out", str(out), "--provider",
                 "openai:gpt-4o-mini", *common]) == 0
    assert main(["filter", str(out), "--min-score", "3", *common]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["min_score"] == 3


@pytest.mark.usefixtures("no_blocking")
def test_requests_from_cold_block_nothing_on_the_loop(
        tmp_path: Path, remote_sim: Callable[[SimConfig], ThreadedSim],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    sim = remote_sim(SimConfig(seed=1))
    forget_what_was_loaded()
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Hi {i}"}],
                                       "max_tokens": 8}) + "\n" for i in range(5)))
    assert main(["requests", str(src), "--out", str(out), "--provider", "openai:gpt-4o-mini",
                 "--base-url", sim.url + "/v1", "--cache-dir", str(tmp_path / "cache"),
                 "--stats-json", str(tmp_path / "stats.json"), "-q"]) == 0
    assert len(out.read_text().splitlines()) == 5
