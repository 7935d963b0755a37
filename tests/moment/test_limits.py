"""The Moment client's rate limiting, idempotency keys and error classes, and the sandbox's
throttle and its (documented) indifference to idempotency keys, over real loopback HTTP on the
fake clock: every wait is asserted in exact virtual seconds."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator

import aiohttp
import anyio
import pytest
from aiohttp import web

from daemon.core import callers, secrets
from daemon.moment import client as moment_client
from daemon.moment import errors, shapes
from daemon.moment import limiting as moment_limiting
from daemon.sandbox import moment as moment_sandbox
from daemon.sandbox import moment_faults
from tests.clocks import FakeClock
from tests.moment.conftest import API_KEY, make_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def jumping() -> FakeClock:
    """A clock whose sleepers jump it to their deadline (one waiter at a time)."""
    return FakeClock(autojump=True)


@pytest.fixture
async def throttled(jumping: FakeClock) -> AsyncIterator[moment_sandbox.MomentSandbox]:
    """A sandbox on the jumping clock that takes 2 requests per 10 s."""
    async with moment_sandbox.MomentSandbox.running(
            port=0, company="acme", api_key=API_KEY, now=jumping.utcnow,
            rate_limit=(2, 10.0)) as sb:
        yield sb


def expense(external_id: str = "economic:2026:entry:4711") -> shapes.ProjectExpense:
    return shapes.ProjectExpense(
        external_id=external_id, project=shapes.ExpenseProjectRef(project_number="1"),
        description="Rejse", amount_including_vat="1450.00", currency="DKK",
        date=dt.date(2026, 11, 18))


def paid(amount: str, *, fully: bool) -> shapes.PaymentStatus:
    return shapes.PaymentStatus(paid_amount=amount, fully_paid=fully,
                                paid_date=dt.date(2026, 11, 28),
                                external_id="economic:2026:invoice:1")


# --- the sandbox's throttle -----------------------------------------------------------------

async def test_sandbox_answers_429_with_retry_after_over_its_limit(
        throttled: moment_sandbox.MomentSandbox, jumping: FakeClock) -> None:
    async with make_client(throttled, clock=jumping) as client:
        await client.customers_page()
        await client.customers_page()
        with pytest.raises(errors.RateLimited) as caught:
            await client.customers_page()
    # 2 in the bucket, draining 0.2 a second: one more fits in 5 s
    assert caught.value.retry_after == 5.0
    assert [r.status for r in throttled.requests] == [200, 200, 429]
    jumping.advance(4.0)
    assert throttled.throttle is not None and throttled.throttle.admit(jumping.now()) == 1
    jumping.advance(1.0)
    assert throttled.throttle.admit(jumping.now()) is None  # a refused request is not counted


def test_throttle_arithmetic() -> None:
    t = moment_faults.Throttle(600, 60.0)
    assert all(t.admit(100.0) is None for _ in range(600))
    assert t.admit(100.0) == 1 and t.refused == 1
    assert t.admit(100.05) == 1  # half a token drained: Retry-After is whole seconds
    assert t.admit(100.1) is None  # 10 a second: 0.1 s made room for one
    with pytest.raises(ValueError):
        moment_faults.Throttle(0, 60.0)
    assert moment_faults.DOCUMENTED_LIMIT == (600, 60.0)


async def test_rate_limit_through_the_admin_surface(
        sandbox: moment_sandbox.MomentSandbox) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{sandbox.admin_url}/rate-limit",
                            json={"limit": 1, "windowS": 30}) as r:
            assert r.status == 200 and await r.json() == {"limit": 1, "windowS": 30.0}
        async with http.put(f"{sandbox.admin_url}/rate-limit", json={"limit": 0}) as r:
            assert r.status == 400
        token = base64.b64encode(f"apikey:{API_KEY}".encode()).decode()
        auth = {"Authorization": f"Basic {token}"}
        url = f"{sandbox.api_url}/companies/acme/customers"
        async with http.get(url, headers=auth) as r:
            assert r.status == 200
        async with http.get(url, headers=auth) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "30"
        async with http.put(f"{sandbox.admin_url}/rate-limit", data=b"null") as r:
            assert r.status == 200 and await r.json() is None
        async with http.get(url, headers=auth) as r:
            assert r.status == 200


# --- the client's limiter -------------------------------------------------------------------

async def test_a_paced_client_never_meets_the_throttle(
        throttled: moment_sandbox.MomentSandbox, jumping: FakeClock) -> None:
    pace = moment_limiting.Pace(limit=2, window_s=10.0)
    async with make_client(throttled, clock=jumping, pace=pace) as client:
        for _ in range(6):
            await client.customers_page()
    assert [r.status for r in throttled.requests] == [200] * 6
    assert jumping.sleeps == [5.0, 5.0, 5.0, 5.0]
    assert jumping.now() == jumping.start + 20.0


async def test_a_429_pauses_every_call_of_the_client(
        sandbox: moment_sandbox.MomentSandbox, jumping: FakeClock) -> None:
    sandbox.faults.add(429, retry_after=5, path_contains="/customers")
    async with make_client(sandbox, clock=jumping) as client:
        with pytest.raises(errors.RateLimited):
            await client.customers_page()
        assert client.limiter.paused_until == jumping.now() + 5.0
        started = jumping.now()
        async with anyio.create_task_group() as tg:  # two callers, both held by the pause
            tg.start_soon(client.customers_page)
            tg.start_soon(client.projects_page)
    assert jumping.now() == started + 5.0
    assert [r.status for r in sandbox.requests] == [429, 200, 200]
    assert client.limiter.rate_limited == 1
    assert client.limiter.paused_until is None


async def test_a_429_without_retry_after_pauses_a_second(
        sandbox: moment_sandbox.MomentSandbox, jumping: FakeClock) -> None:
    sandbox.faults.add(429)
    async with make_client(sandbox, clock=jumping) as client:
        with pytest.raises(errors.RateLimited) as caught:
            await client.customers_page()
        assert caught.value.retry_after is None
        await client.customers_page()
    assert jumping.sleeps == [1.0]


async def test_the_limiter_is_busy_for_a_caller_while_its_own_calls_wait_out_a_pause(
        sandbox: moment_sandbox.MomentSandbox, clock: FakeClock) -> None:
    """What the watchdog excuses (DESIGN: waiting on a rate limit is progress): a caller's own
    calls, from before they wait out a 429's Retry-After of 600 s until they have their answer,
    and not after; a 429 another caller earned excuses only those that wait on it."""
    sandbox.faults.add(429, retry_after=600, path_contains="/customers")

    async def reconciling(client: moment_client.MomentClient) -> None:
        callers.CALLER.set("reconcile")
        await client.projects_page()

    async with make_client(sandbox, clock=clock) as client:
        with pytest.raises(errors.RateLimited):
            await client.customers_page()  # ingest's poll: no caller named
        assert not client.limiter.busy("reconcile") and not client.limiter.busy("")
        async with anyio.create_task_group() as tg:
            tg.start_soon(reconciling, client)
            await clock.asked(600.0)
            assert client.limiter.busy("reconcile") and not client.limiter.busy("preflight")
            assert not client.limiter.busy("")
            clock.advance(599.0)
            assert client.limiter.busy("reconcile")
            clock.advance(1.0)
        assert not client.limiter.busy("reconcile")
    assert [r.status for r in sandbox.requests] == [429, 200]
    assert clock.sleeps == [600.0]


def test_pace_must_be_positive() -> None:
    with pytest.raises(ValueError, match="pace"):
        moment_limiting.Pace(limit=0, window_s=1.0)
    with pytest.raises(ValueError, match="max_in_flight"):
        moment_limiting.Limiter(clock=FakeClock(), max_in_flight=0)


# --- idempotency keys -------------------------------------------------------------------------

async def test_every_write_carries_its_idempotency_key(
        client: moment_client.MomentClient, sandbox: moment_sandbox.MomentSandbox) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    sandbox.add_project(name="Havnebadet", customer_id=customer.id, project_number="1")
    invoice = sandbox.add_invoice(customer_id=customer.id, total_excluding_vat="100.00",
                                  finalize=True)
    await client.create_project_expense(expense(), idempotency_key="intent-1")
    await client.set_payment_status(invoice.id, paid("125.00", fully=True),
                                    idempotency_key="intent-2")
    await client.get_payment_status(invoice.id)
    assert [(r.method, r.idempotency_key) for r in sandbox.requests] == [
        ("POST", "intent-1"), ("PUT", "intent-2"), ("GET", None)]
    with pytest.raises(ValueError, match="idempotency_key"):
        await client.create_project_expense(expense(), idempotency_key="")
    assert len(sandbox.requests) == 3  # refused before sending


async def test_moment_ignores_the_idempotency_key_as_documented(
        client: moment_client.MomentClient, sandbox: moment_sandbox.MomentSandbox) -> None:
    """API.md: Moment ignores ``Idempotency-Key``; the same key twice creates twice, so only
    the lookup by ``externalId`` keeps an expense single."""
    customer = sandbox.add_customer(name="Nordlys")
    sandbox.add_project(name="Havnebadet", customer_id=customer.id, project_number="1")
    first = await client.create_project_expense(expense(), idempotency_key="same")
    second = await client.create_project_expense(expense(), idempotency_key="same")
    assert first.id != second.id and len(sandbox.expenses) == 2


# --- payment status -------------------------------------------------------------------------

async def test_payment_status_round_trip(client: moment_client.MomentClient,
                                         sandbox: moment_sandbox.MomentSandbox) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    invoice = sandbox.add_invoice(customer_id=customer.id, total_excluding_vat="100.00",
                                  finalize=True)
    never = await client.get_payment_status(invoice.id)
    assert never == shapes.PaymentStatus(paid_amount="0.00", fully_paid=False)
    half = await client.set_payment_status(invoice.id, paid("50.00", fully=False),
                                           idempotency_key="a")
    assert half == paid("50.00", fully=False)
    again = await client.set_payment_status(invoice.id, paid("50.00", fully=False),
                                            idempotency_key="a")
    assert again == half == await client.get_payment_status(invoice.id)
    with pytest.raises(errors.NotFound):
        await client.get_payment_status(999999)


# --- unknown outcomes -----------------------------------------------------------------------

@pytest.fixture
async def garbling() -> AsyncIterator[str]:
    """A server that applies writes and answers 200 with a body that is not JSON."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"{\"paidAmount\": ", content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/api/1.0/companies/acme/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/api/1.0"
    finally:
        await runner.cleanup()


async def test_a_write_whose_answer_cannot_be_read_has_an_unknown_outcome(
        garbling: str) -> None:
    async with moment_client.MomentClient(api_url=garbling, company="acme",
                                          api_key=secrets.Secret("k"),
                                          clock=FakeClock()) as client:
        with pytest.raises(errors.UnknownOutcome, match="looked up") as caught:
            await client.set_payment_status(1, paid("1.00", fully=True), idempotency_key="k")
        assert caught.value.retryable and isinstance(caught.value, errors.RetryableError)
        with pytest.raises(errors.UnknownOutcome):
            await client.create_project_expense(expense(), idempotency_key="k")
        with pytest.raises(errors.BadResponse) as read:  # a read is a bad answer, not unknown
            await client.get_payment_status(1)
        assert not read.value.retryable


async def test_stats_show_the_pace_the_429s_and_the_pause(
        sandbox: moment_sandbox.MomentSandbox, jumping: FakeClock) -> None:
    """What ``/status`` (``moment.rate_limit``, ``paused_until``, ``rate_limited``) and
    ``/metrics`` (``moment_sync_moment_*``) show of the limiter, in exact virtual time."""
    sandbox.faults.add(429, retry_after=5, path_contains="/customers")
    pace = moment_limiting.Pace(limit=2, window_s=10.0)
    async with make_client(sandbox, clock=jumping, pace=pace) as client:
        t0 = jumping.now()
        assert client.stats() == moment_limiting.Stats(
            used=0, limit=2, window_s=10.0, paused_until=None, rate_limited=0, waited_s=0.0)
        with pytest.raises(errors.RateLimited):
            await client.customers_page()
        assert client.stats() == moment_limiting.Stats(
            used=1, limit=2, window_s=10.0, paused_until=t0 + 5.0, rate_limited=1,
            waited_s=0.0)
        await client.customers_page()  # held by the pause, 5 s
        assert jumping.now() == t0 + 5.0
        # 1 token drained in the 5 s, 1 charged now
        assert client.stats() == moment_limiting.Stats(
            used=1, limit=2, window_s=10.0, paused_until=None, rate_limited=1, waited_s=5.0)


async def test_an_unpaced_client_reports_no_pace(
        sandbox: moment_sandbox.MomentSandbox, jumping: FakeClock) -> None:
    async with make_client(sandbox, clock=jumping) as client:
        await client.customers_page()
        assert client.stats() == moment_limiting.Stats(
            used=0, limit=0, window_s=0.0, paused_until=None, rate_limited=0, waited_s=0.0)
