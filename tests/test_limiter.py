"""The rate limiter on virtual time (looptime fast-forwards asyncio's clock)."""

from __future__ import annotations

import asyncio

import pytest

from mlift.engine.limiter import Demand, RateLimiter
from mlift.engine.signals import ServerReport
from mlift.types import RateLimitInfo, Usage

pytestmark = pytest.mark.looptime


async def _admit(limiter: RateLimiter, n: int, tokens: int = 1) -> list[float]:
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def one() -> None:
        await limiter.acquire(tokens)
        stamps.append(loop.time())

    await asyncio.gather(*(one() for _ in range(n)))
    return sorted(stamps)


def _max_in_window(stamps: list[float], width: float, weights: list[float] | None = None) -> float:
    weights = weights or [1.0] * len(stamps)
    best, total, lo = 0.0, 0.0, 0
    for hi, t in enumerate(stamps):
        total += weights[hi]
        while stamps[lo] <= t - width:
            total -= weights[lo]
            lo += 1
        best = max(best, total)
    return best


async def test_rpm_limit_paces_requests_at_the_limit_with_one_second_of_burst() -> None:
    limiter = RateLimiter(rpm=600)  # 10/s
    stamps = await _admit(limiter, 100)
    # 10 go at once (one second of burst), the other 90 at 10/s.
    assert stamps[9] == pytest.approx(0.0)
    assert stamps[-1] == pytest.approx(9.0, abs=0.01)
    assert _max_in_window(stamps, 1.0) <= 10 + 10


async def test_no_sixty_second_window_passes_the_limit_even_with_the_burst() -> None:
    limiter = RateLimiter(rpm=120)  # 2/s, burst 2
    stamps = await _admit(limiter, 300)
    assert _max_in_window(stamps, 60.0) <= 120
    # and it still runs at the limit: 300 requests in about 150 s
    assert stamps[-1] == pytest.approx(150.0, rel=0.02)


async def test_token_limit_reserves_prompt_plus_max_tokens() -> None:
    limiter = RateLimiter(tpm=6000)  # 100 tokens/s, bucket 100
    stamps = await _admit(limiter, 20, tokens=50)
    # 1000 tokens at 100/s, 100 of them at once
    assert stamps[-1] == pytest.approx(9.0, abs=0.01)
    assert _max_in_window(stamps, 1.0, [50.0] * 20) <= 100 + 100


async def test_anthropic_accounting_settles_a_reservation_to_the_real_usage() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(tpm=6000, anthropic=True)  # 100 tokens/s, bucket 100
    ticket = await limiter.acquire(Demand(prompt=60, max_output=40))
    limiter.answered(ticket, None, Usage(60, 0))  # it wrote nothing: 40 come back
    await limiter.acquire(Demand(prompt=40))
    assert loop.time() == pytest.approx(0.0)


async def test_request_larger_than_the_bucket_goes_once_the_bucket_is_full() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(tpm=600)  # 10 tokens/s, bucket 10
    await limiter.acquire(5)
    await limiter.acquire(50)  # waits for a full bucket (0.5 s), then goes into debt
    assert loop.time() == pytest.approx(0.5, abs=0.01)
    await limiter.acquire(1)  # the debt is repaid first
    assert loop.time() == pytest.approx(0.5 + 4.1, abs=0.01)


async def test_cool_down_holds_the_whole_endpoint_for_retry_after() -> None:
    limiter = RateLimiter(rpm=6000)
    await limiter.acquire(1)
    limiter.cool_down(7.0)
    stamps = await _admit(limiter, 3)
    assert min(stamps) == pytest.approx(7.0)


async def test_unlimited_limiter_never_waits() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter()
    await _admit(limiter, 1000, tokens=10_000)
    assert loop.time() == pytest.approx(0.0)


async def answer(limiter: RateLimiter, report: RateLimitInfo | ServerReport | None = None,
                 demand: Demand | int = 1) -> None:
    limiter.answered(await limiter.acquire(demand), report)


async def test_headers_tighten_a_limit_set_too_high_but_never_loosen_it() -> None:
    limiter = RateLimiter(rpm=6000)
    await answer(limiter, RateLimitInfo(limit_requests=3000))
    assert limiter.rpm == 3000
    await answer(limiter, RateLimitInfo(limit_requests=9000))
    assert limiter.rpm == 3000


async def test_headers_set_a_limit_when_none_was_configured() -> None:
    limiter = RateLimiter()
    await answer(limiter, RateLimitInfo(limit_requests=600, remaining_requests=9,
                                        limit_tokens=60000, remaining_tokens=59000))
    assert (limiter.rpm, limiter.tpm) == (600, 60000)
    stamps = await _admit(limiter, 20)
    assert _max_in_window(stamps, 1.0) <= 10 + 10


async def test_remaining_lowers_the_bucket_to_what_the_server_has_left() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(rpm=600)  # 10/s, bucket 10
    # The server says nothing was left after the first request (another
    # client shares the key): the next one waits for a refill, not the bucket.
    await answer(limiter, RateLimitInfo(limit_requests=600, remaining_requests=0))
    await limiter.acquire(1)
    assert loop.time() == pytest.approx(0.1, abs=0.01)


async def test_a_refusal_leaves_the_60s_log_but_its_charge_stays_in_the_bucket() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(rpm=120, burst_s=60.0)  # 2/s; the 60 s log is what binds
    tickets = [await limiter.acquire(1) for _ in range(120)]
    for ticket in tickets[60:]:
        limiter.refused(ticket, ServerReport(refused_by="requests"))
    # 60 refused requests took nothing from the server's window: the next one
    # waits for the bucket's refill (0.5 s), not for the window to roll (60 s).
    await limiter.acquire(1)
    assert loop.time() == pytest.approx(0.5 / 0.85, rel=0.05)  # and the rate stepped down


async def test_retry_after_of_the_refusing_limit_becomes_a_debt_of_that_limit() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(rpm=600, tpm=600_000)
    ticket = await limiter.acquire(10)
    limiter.refused(ticket, ServerReport(refused_by="requests", retry_after_s=2.0))
    await limiter.acquire(10)
    assert loop.time() == pytest.approx(2.0 / 0.85, rel=0.05)


async def test_the_charge_in_a_429_body_corrects_the_token_estimate() -> None:
    limiter = RateLimiter(tpm=60_000)
    ticket = await limiter.acquire(Demand(prompt=80, max_output=20))
    limiter.refused(ticket, ServerReport(refused_by="tokens", requested=150.0))
    assert limiter.multiplier() > 1.25


async def test_refusals_step_the_rate_down_once_per_round_trip_and_it_climbs_back() -> None:
    limiter = RateLimiter(rpm=600)
    tickets = [await limiter.acquire(1) for _ in range(5)]
    for ticket in tickets:  # one burst of refusals
        limiter.refused(ticket, ServerReport(refused_by="requests"))
    assert limiter.describe()["requests"]["share"] == pytest.approx(0.85)
    await asyncio.sleep(60)
    await limiter.acquire(1)
    assert limiter.describe()["requests"]["share"] > 0.98


async def test_gentle_start_holds_requests_until_the_first_answer() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(rpm=60_000, probe=2)
    first = await limiter.acquire(1)
    await limiter.acquire(1)
    third = asyncio.create_task(limiter.acquire(1))
    await asyncio.sleep(5)
    assert not third.done()
    limiter.answered(first, None)
    await third
    assert loop.time() == pytest.approx(5.0)


async def test_failures_keep_their_place_in_the_gentle_start_until_an_answer() -> None:
    limiter = RateLimiter(probe=3)
    tickets = [await limiter.acquire(1) for _ in range(3)]
    fourth = asyncio.create_task(limiter.acquire(1))
    limiter.failed(tickets[0])       # a 404: its place stays taken while others are out
    limiter.abandon(tickets[1])      # no answer (a timeout): its place frees
    await asyncio.sleep(1)
    four = await fourth
    fifth = asyncio.create_task(limiter.acquire(1))
    limiter.failed(tickets[2])
    await asyncio.sleep(1)
    assert not fifth.done()          # 1 out + 2 failed fill the probe's 3
    limiter.failed(four)             # nothing out: one more may go, one at a time
    five = await fifth
    sixth = asyncio.create_task(limiter.acquire(1))
    await asyncio.sleep(1)
    assert not sixth.done()
    limiter.answered(five, None)     # an answer: the failures give their places back
    await sixth
    assert [await limiter.acquire(1) for _ in range(2)]


async def test_cancelled_waiter_takes_nothing() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(rpm=60)  # 1/s, burst 1
    await limiter.acquire(1)
    waiter = asyncio.create_task(limiter.acquire(1))
    await asyncio.sleep(0.5)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await limiter.acquire(1)  # the slot the cancelled waiter wanted is still there
    assert loop.time() == pytest.approx(1.0)
