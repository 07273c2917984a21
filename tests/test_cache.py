"""ResponseCache: JSON on disk, hits free, corrupt entries are misses, nothing evicted."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import diskcache  # type: ignore[import-untyped]
import pytest

from mlift.engine.cache import ResponseCache, default_cache_dir
from mlift.errors import ConfigError
from mlift.types import Completion, Usage

KEY = "a" * 64


def answer(text: str = "Resumen del artículo.", finish: str = "stop") -> Completion:
    return Completion(text=text, finish_reason=finish,  # type: ignore[arg-type]
                      usage=Usage(120, 30), model="gpt-4o-mini-2024-07-18", request_id="req_1",
                      cost_usd=0.0012, latency_s=0.8, attempts=2)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    with ResponseCache(tmp_path / "cache") as opened:
        yield opened


async def test_a_stored_answer_comes_back_cached_and_free(cache: ResponseCache) -> None:
    assert await cache.put(KEY, answer())
    hit = await cache.get(KEY)
    assert hit is not None
    assert (hit.text, hit.finish_reason, hit.usage, hit.model, hit.request_id) == (
        "Resumen del artículo.", "stop", Usage(120, 30), "gpt-4o-mini-2024-07-18", "req_1")
    assert hit.cached and hit.cost_usd == 0.0 and hit.attempts == 0 and hit.latency_s == 0.0


async def test_an_unknown_key_is_a_miss(cache: ResponseCache) -> None:
    assert await cache.get(KEY) is None
    assert (cache.hits, cache.misses) == (0, 1)


async def test_answers_survive_closing_and_reopening(tmp_path: Path) -> None:
    first = await ResponseCache.open(tmp_path)
    await first.put(KEY, answer("persisted"))
    await first.aclose()
    with ResponseCache(tmp_path) as second:
        hit = await second.get(KEY)
    assert hit is not None and hit.text == "persisted"


async def test_answers_cut_at_max_tokens_are_cached(cache: ResponseCache) -> None:
    assert await cache.put(KEY, answer(finish="length"))
    hit = await cache.get(KEY)
    assert hit is not None and hit.finish_reason == "length"


async def test_answers_that_stopped_for_other_reasons_are_not_cached(
        cache: ResponseCache) -> None:
    assert not await cache.put(KEY, answer(finish="other"))
    assert await cache.get(KEY) is None


async def test_a_cache_hit_is_not_written_back(cache: ResponseCache) -> None:
    await cache.put(KEY, answer())
    hit = await cache.get(KEY)
    assert hit is not None
    assert not await cache.put(KEY, hit)
    assert cache.stats()["stores"] == 1


async def test_values_are_stored_as_plain_json_text(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        await cache.put(KEY, answer("नमस्ते"))
    raw = diskcache.Cache(str(tmp_path))
    try:
        value = raw.get(KEY)
    finally:
        raw.close()
    assert isinstance(value, str)
    assert '"text":"नमस्ते"' in value and '"schema":1' in value


async def test_corrupt_text_is_a_logged_miss_and_is_replaced_by_the_next_answer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = diskcache.Cache(str(tmp_path))
    raw.set(KEY, "{not json")
    raw.close()
    with ResponseCache(tmp_path) as cache, caplog.at_level(logging.WARNING):
        assert await cache.get(KEY) is None
        assert await cache.put(KEY, answer("fresh"))
        hit = await cache.get(KEY)
    assert hit is not None and hit.text == "fresh"
    assert "corrupt entry" in caplog.text


@pytest.mark.parametrize("value", ['{"schema": 99, "completion": {}}', '{"schema": 1}',
                                   '[1, 2]', '{"schema": 1, "completion": {"text": "x"}}'])
async def test_entries_of_the_wrong_shape_are_misses(tmp_path: Path, value: str) -> None:
    raw = diskcache.Cache(str(tmp_path))
    raw.set(KEY, value)
    raw.close()
    with ResponseCache(tmp_path) as cache:
        assert await cache.get(KEY) is None


async def test_a_pickled_entry_is_never_unpickled(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('unpickled!')",))

    raw = diskcache.Cache(str(tmp_path))
    raw.set(KEY, Boom())  # diskcache's default Disk pickles arbitrary objects
    raw.close()
    with ResponseCache(tmp_path) as cache, caplog.at_level(logging.WARNING):
        assert await cache.get(KEY) is None
    assert "unreadable entry" in caplog.text


async def test_nothing_is_evicted_even_past_the_size_limit(tmp_path: Path) -> None:
    with ResponseCache(tmp_path, size_limit_bytes=1) as cache:
        for i in range(20):
            await cache.put(f"{i:064x}", answer("x" * 500))
        hits = [await cache.get(f"{i:064x}") for i in range(20)]
        assert all(hit is not None for hit in hits)
        assert cache.stats()["size_bytes"] > cache.size_limit_bytes


def test_the_size_limit_and_no_eviction_are_explicit_on_disk(tmp_path: Path) -> None:
    ResponseCache(tmp_path).close()
    raw = diskcache.Cache(str(tmp_path))  # reads the settings stored by the first open
    try:
        assert raw.size_limit == 50 * 2**30
        assert raw.eviction_policy == "none"
    finally:
        raw.close()


async def test_stats_report_entries_size_location_and_this_process_counts(
        tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        await cache.put(KEY, answer())
        await cache.get(KEY)
        await cache.get("b" * 64)
        stats = cache.stats()
    assert stats["directory"] == str(tmp_path)
    assert stats["entries"] == 1 and stats["size_bytes"] > 0
    assert (stats["hits"], stats["misses"], stats["stores"]) == (1, 1, 1)


async def test_clear_removes_every_entry_and_says_how_many(cache: ResponseCache) -> None:
    for i in range(3):
        await cache.put(f"{i:064x}", answer())
    assert cache.clear() == 3
    assert cache.stats()["entries"] == 0


async def test_many_concurrent_gets_and_puts_are_all_served(cache: ResponseCache) -> None:
    keys = [f"{i:064x}" for i in range(200)]
    await asyncio.gather(*(cache.put(k, answer(k)) for k in keys))
    hits = await asyncio.gather(*(cache.get(k) for k in keys))
    assert [h.text for h in hits if h is not None] == keys


async def test_a_closed_cache_refuses_work(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    await cache.aclose()
    cache.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await cache.get(KEY)


def test_cache_dir_flag_wins_over_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLIFT_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    assert default_cache_dir(None) == tmp_path / "env"


def test_without_flag_or_environment_the_user_cache_folder_is_used(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLIFT_CACHE_DIR", raising=False)
    chosen = default_cache_dir(None)
    assert "mlift" in chosen.parts and chosen.is_absolute()


async def test_a_get_queued_behind_a_put_of_the_same_key_sees_it(cache: ResponseCache) -> None:
    stored, hit = await asyncio.gather(cache.put(KEY, answer("first")), cache.get(KEY))
    assert stored and hit is not None and hit.text == "first"


async def test_a_cancelled_get_does_not_disturb_later_calls(cache: ResponseCache) -> None:
    await cache.put(KEY, answer())
    waiting = asyncio.ensure_future(cache.get(KEY))
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await cache.get(KEY) is not None


def test_a_cache_folder_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="--cache-dir"):
        ResponseCache(blocker / "cache")


# -- many keys at once (the path a cached re-run takes) ------------------------

async def test_get_many_answers_each_key_in_order_hits_and_misses(cache: ResponseCache) -> None:
    keys = [f"{i:064x}" for i in range(1200)]  # more than one SELECT's worth of keys
    await asyncio.gather(*(cache.put(k, answer(k)) for k in keys[::2]))
    asked = [keys[5], keys[4], keys[4], "f" * 64, *keys]
    found = await cache.get_many(asked)
    assert [h.text if h is not None else None for h in found] == [
        None, keys[4], keys[4], None, *(k if i % 2 == 0 else None for i, k in enumerate(keys))]
    assert all(h.cached and h.cost_usd == 0.0 and h.attempts == 0 for h in found if h)
    assert (cache.hits, cache.misses) == (602, 602)


async def test_get_many_can_leave_misses_uncounted(cache: ResponseCache) -> None:
    await cache.put(KEY, answer())
    await cache.get_many([KEY, "b" * 64], count_misses=False)
    assert (cache.hits, cache.misses) == (1, 0)


async def test_get_many_gives_back_the_same_answers_as_get(cache: ResponseCache) -> None:
    big = answer("ж" * 70_000)  # past 64 KiB: diskcache keeps it in a file of its own
    await cache.put(KEY, big)
    await cache.put("b" * 64, answer(finish="length"))
    one_by_one = [await cache.get(KEY), await cache.get("b" * 64)]
    assert await cache.get_many([KEY, "b" * 64]) == one_by_one
    assert one_by_one[0] is not None and one_by_one[0].text == big.text


async def test_get_many_refuses_pickled_and_malformed_entries_like_get(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('unpickled!')",))

    raw = diskcache.Cache(str(tmp_path))
    raw.set("a" * 64, Boom())
    raw.set("b" * 64, '{"schema": 1}')
    raw.close()
    with ResponseCache(tmp_path) as cache, caplog.at_level(logging.WARNING):
        await cache.put("c" * 64, answer("fine"))
        found = await cache.get_many(["a" * 64, "b" * 64, "c" * 64])
    assert [h.text if h else None for h in found] == [None, None, "fine"]
    assert "unreadable entry" in caplog.text and "corrupt entry" in caplog.text


async def test_get_many_falls_back_to_one_get_per_key_if_the_batched_query_fails(
        cache: ResponseCache, monkeypatch: pytest.MonkeyPatch) -> None:
    await cache.put(KEY, answer("kept"))

    def locked(_keys: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(cache, "_select", locked)  # the batched query, and only it
    found = await cache.get_many([KEY, "b" * 64])
    assert [h.text if h else None for h in found] == ["kept", None]


async def test_a_lookup_queued_behind_puts_sees_them(cache: ResponseCache) -> None:
    keys = [f"{i:064x}" for i in range(10)]
    *_, found = await asyncio.gather(*(cache.put(k, answer(k)) for k in keys),
                                     cache.get_many(keys))
    assert [h.text for h in found if h is not None] == keys
