"""Rate limiting on a fake clock shared by the client and the sandbox's bucket: the client
waits instead of earning a 429, honours Retry-After, pauses every call after a 429, keeps the
daily budget's reserve for invoices and bounds calls in flight. Times asserted are exact."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core import callers
from daemon.core import ratelimits as rl
from daemon.economic import errors
from daemon.economic.client import EconomicClient, RateLimitStats
from daemon.sandbox.economic import EconomicSandbox
from tests.clocks import T0, FakeClock
from tests.economic.conftest import limited, make_client

pytestmark = pytest.mark.anyio


async def test_client_paces_to_the_refill_instead_of_a_429(sandbox: EconomicSandbox,
                                                           clock: FakeClock) -> None:
    """10 tokens per 60 s: the full bucket takes 10 calls at once, then one call every 6 s
    as it drains, each sent the moment it fits."""
    sandbox.rate_limit = limited(10, 60)
    async with make_client(sandbox, clock) as client:
        for _ in range(25):
            await client.get_self()
    assert [s.status for s in sandbox.served] == [200] * 25
    assert clock.sleeps == pytest.approx([6.0] * 15)
    assert clock.now() == pytest.approx(T0 + 90)
    assert [s.at - T0 for s in sandbox.served] == pytest.approx([0.0] * 10 + [
        6.0 * i for i in range(1, 16)])


async def test_concurrent_callers_share_the_bucket_without_a_429(
        sandbox: EconomicSandbox, clock: FakeClock) -> None:
    sandbox.rate_limit = limited(10, 60)
    async with make_client(sandbox, clock, max_in_flight=4) as client:
        await client.get_self()  # learn the bucket and the cost first
        await asyncio.gather(*(client.get_self() for _ in range(34)))
    assert {s.status for s in sandbox.served} == {200}
    assert len(sandbox.served) == 35
    # A full bucket's 10 go at once; the other 25 need 25 tokens drained, 6 s each. (How
    # much longer it took is not asserted: virtual time and real loopback I/O interleave.)
    assert [s.at for s in sandbox.served][:10] == [T0] * 10
    assert clock.now() >= T0 + 150 - 1e-6


async def test_429_waits_retry_after_then_succeeds(sandbox: EconomicSandbox,
                                                   clock: FakeClock) -> None:
    sandbox.faults.retry_after_s = 7
    sandbox.inject("429")
    async with make_client(sandbox, clock) as client:
        me = await client.get_self()
        assert me.agreementNumber == sandbox.agreement.agreement_number
        assert client.counters.rate_limited == 1
    assert [(s.status, s.at - T0) for s in sandbox.served] == [(429, 0.0), (200, 7.0)]


async def test_429_without_retry_after_waits_until_a_full_bucket_has_room(
        sandbox: EconomicSandbox, clock: FakeClock) -> None:
    """5 tokens per 60 s drain one token every 12 s: refused at 10 s, the call goes at 22 s."""
    sandbox.rate_limit = limited(5, 60, retry_after=False)
    async with make_client(sandbox, clock) as client:
        await client.get_self()
        clock.advance(10)
        sandbox.rate_limit.fill(5, clock.now())  # another app of the agreement filled it
        await client.get_self()
    assert [(s.status, s.at - T0) for s in sandbox.served] == [(200, 0), (429, 10), (200, 22)]


async def test_a_429_pauses_every_call_to_the_agreement(sandbox: EconomicSandbox,
                                                        clock: FakeClock) -> None:
    sandbox.faults.retry_after_s = 7
    sandbox.inject("429")
    async with make_client(sandbox, clock, rate_limit_retries=0) as client:
        with pytest.raises(errors.RateLimited) as ei:
            await client.get_self()
        assert ei.value.retryable and ei.value.retry_after == 7.0
        assert client.stats().paused_until == T0 + 7
        await client.currencies()  # another endpoint: still waits for the pause
        assert client.stats().paused_until is None
    assert [(s.path, s.status, s.at - T0) for s in sandbox.served] == [
        ("/rest/self", 429, 0.0), ("/rest/currencies", 200, 7.0)]


async def test_a_429_holds_back_concurrent_callers_too(sandbox: EconomicSandbox,
                                                       clock: FakeClock) -> None:
    sandbox.faults.retry_after_s = 7
    sandbox.inject("429")
    async with make_client(sandbox, clock, max_in_flight=3) as client:
        await asyncio.gather(*(client.get_self() for _ in range(9)))
        assert client.counters.rate_limited == 1
    served = list(sandbox.served)
    assert (served[0].status, served[0].at) == (429, T0)
    # Whatever was already on the wire may finish; nothing new is sent before the pause ends.
    late = [s for s in served[1:] if s.at > T0]
    assert len(late) >= 9 - 2 and all(s.at == T0 + 7 and s.status == 200 for s in late)
    assert sum(s.status == 200 for s in served) == 9


async def test_daily_budget_keeps_a_reserve_for_invoices(sandbox: EconomicSandbox,
                                                         clock: FakeClock) -> None:
    async with make_client(sandbox, clock, daily_call_budget=5, invoice_reserve=2) as client:
        for _ in range(3):
            await client.get_self()
        with pytest.raises(errors.BudgetExhausted) as ei:
            await client.get_self()
        assert ei.value.retryable
        # the calls fall out of the rolling 24 hours at the end of their minute's 24 hours
        # (T0 is 40 s into a minute)
        assert ei.value.retry_after == rl.DAY_S + 20.0
        for _ in range(2):  # invoice work may spend the reserve
            assert [e async for e in client.iter_booked_entries()] == []
        with pytest.raises(errors.BudgetExhausted):
            [e async for e in client.iter_booked_entries()]
        assert client.stats().calls_today == 5
        assert len(sandbox.served) == 5
        clock.advance(rl.DAY_S + 19.0)  # a second early: still spent, and nothing was sent
        assert client.stats().calls_today == 5
        with pytest.raises(errors.BudgetExhausted) as ei:
            await client.get_self()
        assert ei.value.retry_after == 1.0 and len(sandbox.served) == 5
        clock.advance(1.0)
        assert client.stats().calls_today == 0
        await client.get_self()
        assert client.stats().calls_today == 1


async def test_calls_in_flight_are_bounded(sandbox: EconomicSandbox, clock: FakeClock) -> None:
    async with make_client(sandbox, clock, max_in_flight=2) as client:
        await asyncio.gather(*(client.get_self() for _ in range(12)))
        assert client.limiter.peak_in_flight == 2
        assert client.limiter.in_flight == 0


async def test_counters_track_calls_tokens_and_errors(sandbox: EconomicSandbox,
                                                      clock: FakeClock) -> None:
    sandbox.rate_limit = limited(100, 60, cost_get=2, cost_write=5)
    sandbox.rate_limit.costs = {"GET /rest/customers/": 7, "GET /rest/c": 99}
    heard: list[tuple[str, str, int | None]] = []
    sandbox.inject("reset", 2)
    async with make_client(sandbox, clock, on_call=lambda *a: heard.append(a)) as client:
        with pytest.raises(errors.TransportError):
            await client.get_self()
        await client.get_self()
        await client.get_self()
        assert await client.find_customer(9) is None
        stats = client.stats()
    assert stats.calls == {"GET /customers/{n} 404": 1, "GET /self 0": 1,
                              "GET /self 200": 2}
    assert heard == [("GET", "/self", None), ("GET", "/self", 200), ("GET", "/self", 200),
                     ("GET", "/customers/{n}", 404)]
    assert stats.tokens_used == 11  # 2 + 2 + 7: the longest prefix sets the cost
    assert stats.rate_limit == RateLimitStats(used=11, limit=100, window_s=60.0)
    assert stats.last_error == "GET /customers/{n} -> 404 [E06000]: Customer not found."
    clock.advance(30)  # half a window drains half the bucket: status shows now, not then
    assert client.stats().rate_limit == RateLimitStats(used=0, limit=100, window_s=60.0)
    sandbox.rate_limit.fill(80, clock.now())
    try:
        await client.get_self()  # another app's use shows in the next answer, ours on top
        assert client.stats().rate_limit == RateLimitStats(used=82, limit=100, window_s=60.0)
    finally:
        await client.aclose()


# ---------------------------------------------------------------- pure arithmetic -----------
def test_rate_header_parsing() -> None:
    assert rl.parse_rate_header("token-limit-10000-per-60-seconds: 147/10000") == \
        rl.Reading(limit=10000, window_s=60.0, used=147)
    assert rl.parse_rate_header("token-limit-5-per-1-seconds:5 / 5") == rl.Reading(5, 1.0, 5)
    assert rl.parse_rate_header("garbage") is None
    assert rl.parse_rate_header(None) is None
    assert rl.parse_cost(" 3 ") == 3 and rl.parse_cost("-1") is None
    assert rl.parse_retry_after("2.5") == 2.5 and rl.parse_retry_after("soon") is None


def test_mirror_drains_like_the_server_and_readings_only_raise_it() -> None:
    b = rl.observe(rl.Bucket(), 100.0, rl.Reading(10, 60.0, 9), 1)
    assert (b.limit, b.window_s, b.used) == (10, 60.0, 9) and rl.delay(b, 100.0) == 0.0
    b = rl.charge(b, 100.0)  # in flight, reserving 1: the bucket is full
    assert rl.delay(b, 100.0) == pytest.approx(6.0)  # one token drains in 6 s
    assert rl.delay(b, 106.0) == 0.0
    assert rl.delay(b, 100.0, cost=3) == pytest.approx(18.0)
    assert rl.level(b, 130.0) == pytest.approx(5.0) and rl.level(b, 999.0) == 0.0
    # A reading that does not yet count the call in flight adds it; one lower than the mirror
    # (a stale answer, or the server charged later than we did) never lowers it.
    assert rl.observe(b, 103.0, rl.Reading(10, 60.0, 10), 1).used == pytest.approx(11.0)
    assert rl.observe(b, 103.0, rl.Reading(10, 60.0, 2), 1).used == pytest.approx(9.5)
    settled = rl.observe(b, 103.0, rl.Reading(10, 60.0, 10), 1, reserved=1)
    assert (settled.used, settled.pending) == (10, 0)
    # The agreement's limit changed: the mirror drains at the new rate.
    bigger = rl.observe(b, 100.0, rl.Reading(20, 10.0, 10), 1, reserved=1)
    assert rl.level(bigger, 101.0) == pytest.approx(8.0)
    # A call costing more than the whole bucket waits for an empty one, not forever.
    assert rl.delay(b, 100.0, cost=50) == pytest.approx(60.0)


def test_pause_honours_retry_after_and_the_drain() -> None:
    b = rl.observe(rl.Bucket(), 0.0, rl.Reading(10, 60.0, 1), 1)
    p = rl.pause(b, 5.0, 7.0)
    assert p.paused_until == 12.0 and rl.delay(p, 5.0) == 7.0 and rl.delay(p, 12.0) == 0.0
    full = rl.pause(b, 5.0, None)  # no Retry-After: full, until one call's tokens drain
    assert full.paused_until == pytest.approx(11.0) and rl.level(full, 5.0) == 10
    assert rl.delay(full, 11.0) == 0.0
    big = rl.observe(rl.Bucket(), 0.0, rl.Reading(10_000, 60.0, 1), 1)
    assert rl.pause(big, 5.0, None).paused_until == 6.0  # a token's 6 ms: at least a second
    assert rl.pause(p, 6.0, 1.0).paused_until == 12.0  # never shortens a pause


def test_budget_is_a_rolling_24_hours() -> None:
    b = rl.Budget(daily=3, reserve=1)
    b = rl.budget_spend(b, T0)  # minute M (40 s in)
    b = rl.budget_spend(b, T0 + 3600)  # an hour later
    assert rl.budget_used(b, T0 + 3600) == 2
    assert not rl.budget_allows(b, T0 + 3600, priority=False)
    assert rl.budget_allows(b, T0 + 3600, priority=True)
    # not at UTC midnight: the first call counts until its minute's 24 hours have passed
    assert rl.budget_frees_in(b, T0 + 3600, priority=False) == rl.DAY_S + 20.0 - 3600
    assert not rl.budget_allows(b, T0 + rl.DAY_S + 19.0, priority=False)
    assert rl.budget_used(b, T0 + rl.DAY_S + 20.0) == 1
    assert rl.budget_allows(b, T0 + rl.DAY_S + 20.0, priority=False)
    assert rl.budget_used(b, T0 + 3600 + rl.DAY_S + 20.0) == 0
    assert rl.budget_window(b, T0 + 3 * rl.DAY_S).counts == ()
    assert rl.budget_frees_in(rl.Budget(daily=1, reserve=1), T0, priority=False) == rl.DAY_S


def test_a_restored_count_merges_by_minute_and_drops_what_is_older_than_a_day() -> None:
    m = rl.minute_of(T0)
    saved = ((m - 1441, 7), (m - 1440, 2), (m - 1, 3), (m, 1))
    b = rl.budget_restore(rl.budget_spend(rl.Budget(), T0), saved, T0)
    assert b.counts == ((m - 1440, 2), (m - 1, 3), (m, 2)) and b.used == 7
    assert rl.budget_used(b, T0 + 20.0) == 5  # the next minute: m - 1440 has fallen out


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(st.floats(0, 30_000, allow_nan=False), min_size=1, max_size=40),
       later=st.floats(0, 2 * rl.DAY_S, allow_nan=False), daily=st.integers(1, 30))
def test_rolling_count_is_the_last_24_hours_to_the_minute(gaps: list[float], later: float,
                                                          daily: int) -> None:
    """Against a list of every call's time: the count is exact to the minute (every call of the
    last 24 hours counts, none older than 24 hours and a minute), the budget stays bounded, and
    the wait it names is exactly when a call fits again."""
    b = rl.Budget(daily=daily, reserve=0)
    times: list[float] = []
    t = T0
    for gap in gaps:
        t += gap
        b = rl.budget_spend(b, t)
        times.append(t)
        assert len(b.counts) <= rl.WINDOW_MINUTES + 1
    now = t + later
    used = rl.budget_used(b, now)
    assert used == sum(rl.minute_of(x) >= rl.minute_of(now) - rl.WINDOW_MINUTES for x in times)
    assert sum(x > now - rl.DAY_S for x in times) <= used
    assert used <= sum(x > now - rl.DAY_S - rl.MINUTE_S for x in times)
    wait = rl.budget_frees_in(b, now, priority=False)
    assert (wait == 0.0) == (used < daily)
    assert rl.budget_allows(b, now + wait, priority=False)
    if wait >= 1.0:
        assert not rl.budget_allows(b, now + wait - 1.0, priority=False)


@settings(max_examples=200, deadline=None)
@given(tokens=st.integers(1, 20), window=st.integers(1, 90), cost=st.integers(1, 5),
       gaps=st.lists(st.floats(0, 120, allow_nan=False), min_size=1, max_size=60))
def test_mirror_never_earns_a_429_and_never_waits_longer_than_a_token(
        tokens: int, window: int, cost: int, gaps: list[float]) -> None:
    """The client's arithmetic against the sandbox's own bucket, on one virtual clock: alone
    on the agreement the client is never refused, and a wait ends when the server has room,
    at most one token's drain late (the header rounds the server's use up)."""
    cost = min(cost, tokens)
    t = [T0]
    sb = EconomicSandbox(clock=lambda: t[0], rate_limit=limited(tokens, window, cost_get=cost))
    bucket = rl.Bucket()
    for gap in gaps:
        t[0] += gap
        wait = rl.delay(bucket, t[0])
        if wait > 0:
            t[0] += wait
            server = sb.rate_limit
            server.drain(t[0])
            assert server.level + cost > tokens - 1 - 1e-6, "the client waited too long"
        reserved = rl.reservation(bucket)
        bucket = rl.charge(bucket, t[0], reserved)
        assert sb._charge(cost) is None, "the client sent a call the server refused"
        reading = rl.parse_rate_header(sb._rate_header())
        bucket = rl.observe(bucket, t[0], reading, cost, reserved)


async def test_the_limiter_is_busy_while_a_caller_waits_out_a_retry_after(
        sandbox: EconomicSandbox, clock: FakeClock) -> None:
    """What the watchdog excuses (DESIGN: waiting on a rate limit is progress): the caller's
    own calls, from the 429 until the call after the pause has its answer, and not after; a
    wait of one component does not excuse another."""
    sandbox.faults.retry_after_s = 600
    sandbox.inject("429")

    async def reconciling(client: EconomicClient) -> None:
        callers.CALLER.set("reconcile")
        await client.get_self()

    async with make_client(sandbox, clock) as client:
        assert not client.limiter.busy("reconcile")
        call = asyncio.ensure_future(reconciling(client))
        await clock.asked(600.0)
        assert client.limiter.busy("reconcile") and not client.limiter.busy("preflight")
        clock.advance(599.0)
        assert client.limiter.busy("reconcile")
        clock.advance(1.0)
        await call
        assert not client.limiter.busy("reconcile")
    assert [(s.status, s.at - T0) for s in sandbox.served] == [(429, 0.0), (200, 600.0)]
