"""`mlift cache stats` and `mlift cache clear` through the real command line entry point."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mlift.cli import EXIT_USAGE, main
from mlift.engine.cache import ResponseCache
from mlift.types import Completion, Usage


def fill(directory: Path, n: int) -> None:
    async def put_all() -> None:
        with ResponseCache(directory) as cache:
            for i in range(n):
                await cache.put(f"{i:064x}", Completion("t", "stop", Usage(1, 1), "m"))

    # A private loop, not asyncio.run(): that would unset the test's current loop.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(put_all())
    finally:
        loop.close()


def test_stats_show_entries_size_and_location(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path, 3)
    assert main(["cache", "stats", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"location: {tmp_path}" in out
    assert "entries:  3" in out
    assert "KiB" in out


def test_stats_on_a_missing_cache_report_zero_without_creating_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "never-made"
    assert main(["cache", "stats", "--cache-dir", str(missing)]) == 0
    assert "entries:  0" in capsys.readouterr().out
    assert not missing.exists()


def test_stats_use_the_environment_when_no_flag_is_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path, 2)
    monkeypatch.setenv("MLIFT_CACHE_DIR", str(tmp_path))
    assert main(["cache", "stats"]) == 0
    assert "entries:  2" in capsys.readouterr().out


def test_clear_with_yes_removes_every_entry(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path, 4)
    assert main(["cache", "clear", "--cache-dir", str(tmp_path), "--yes"]) == 0
    assert "removed 4 cached answers" in capsys.readouterr().out
    with ResponseCache(tmp_path) as cache:
        assert cache.stats()["entries"] == 0


def test_clear_without_yes_and_without_a_terminal_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill(tmp_path, 2)
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == EXIT_USAGE
    assert "--yes" in capsys.readouterr().err
    with ResponseCache(tmp_path) as cache:
        assert cache.stats()["entries"] == 2


def test_clear_on_a_missing_cache_is_a_no_op(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "clear", "--cache-dir", str(tmp_path / "none"), "--yes"]) == 0
    assert "nothing to clear" in capsys.readouterr().out


def test_cache_without_an_action_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["cache"])
    assert info.value.code == 2
