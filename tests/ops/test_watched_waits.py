"""The watchdog and Moment's Retry-After (DESIGN.md, Limits survive restarts: waiting on a rate
limit is progress, a wedge is not): a reconciler whose expense write waits out a 429's
Retry-After of 600 s, earned by another caller, keeps its pulse fresh the whole time; a wedged
reconciler goes stale although Moment calls of another caller wait on the same pause. Both
sandboxes, both clients and the reconciler run on one fake clock; no wall-clock waits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

from daemon.core import callers
from daemon.moment import client as moment_client
from daemon.moment import errors as moment_errors
from daemon.ops import notifying
from daemon.reconcile import hooks
from tests.clocks import FakeClock
from tests.reconcile.conftest import settle
from tests.reconcile.expensing import World, world

pytestmark = pytest.mark.anyio

FRESHNESS = 1.0
RETRY_AFTER = 600


@contextlib.asynccontextmanager
async def watched() -> AsyncIterator[tuple[World, notifying.Watchdog]]:
    """The expense world (tests/reconcile/expensing.py) with project 1 in both services, and a
    watchdog on its clock whose ``reconcile`` pulse the reconciler beats, excused as
    daemon.app.reconciler excuses it: while its own calls wait on either client's limiter."""
    clock = FakeClock()
    watchdog = notifying.Watchdog(notifying.Notifier({}), interval=FRESHNESS, clock=clock)
    pulse = watchdog.pulse("reconcile")
    async with world(clock=clock, beat=pulse.beat, idle_beat_s=watchdog.beat_every) as w:
        pulse.excused = notifying.waiting_on("reconcile", w.client.limiter,
                                             w.moment_client.limiter)
        await w.project(1)
        await settle(w.rec)
        yield w, watchdog


async def throttled_by_ingest(w: World) -> float:
    """Ingest's poll earns a 429 with Retry-After 600 s: every call of the client now waits.
    Returns the wait a call now asks the clock for (600 s, in floating point at this wall
    time)."""
    w.moment.faults.add(429, retry_after=RETRY_AFTER, path_contains="/customers")
    with pytest.raises(moment_errors.RateLimited):
        await w.moment_client.customers_page()
    wait = w.moment_client.limiter.bucket.paused_until - w.clock.now()
    assert wait == pytest.approx(RETRY_AFTER)
    return wait


async def waiting_out(w: World, wait: float, caller: str) -> None:
    """Return once a call of ``caller`` waits out the pause (asked the clock for ``wait``; the
    reconciler's own timers may ask for as long)."""
    limiter = w.moment_client.limiter
    with anyio.fail_after(30):
        while not limiter.busy(caller):
            await w.clock.asked(wait, times=w.clock.sleeps.count(wait) + 1)


async def polling(client: moment_client.MomentClient) -> None:
    callers.CALLER.set("ingest")
    await client.customers_page()


async def test_a_reconciler_waiting_out_a_moment_retry_after_keeps_its_pulse_fresh() -> None:
    async with watched() as (w, watchdog):
        clock = w.clock
        wait = await throttled_by_ingest(w)
        w.cost("1450.00", 1)
        assert (await w.reader.read_new()).recorded == 1
        await waiting_out(w, wait, "reconcile")  # the worker's expense write
        started = clock.monotonic()
        for _ in range(RETRY_AFTER // 5 - 1):  # 5 s steps, each far beyond the freshness
            clock.advance(5.0)
            await clock.settled()
            assert watchdog.stale() == []
            assert w.moment.count(method="POST", path_contains="/projectExpenses") == 0
        # the pause ends, the write goes out and its outcome beats (the watchdog would have
        # ticked every interval in between: the excuse is not asked for across this step)
        clock.advance(5.0)
        assert clock.monotonic() == started + RETRY_AFTER
        await settle(w.rec)
        assert watchdog.stale() == []
        assert w.moment.count(method="POST", path_contains="/projectExpenses") == 1
        assert len(w.expenses()) == 1
        assert not w.moment_client.limiter.busy("reconcile")


async def test_a_wedged_reconciler_goes_stale_while_another_caller_waits_on_moment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async with watched() as (w, watchdog):
        clock = w.clock
        wait = await throttled_by_ingest(w)
        monkeypatch.setenv(hooks.WEDGE_ENV, "1")
        w.cost("1450.00", 1)
        assert (await w.reader.read_new()).recorded == 1  # wakes the worker: it wedges
        async with anyio.create_task_group() as tg:
            tg.start_soon(polling, w.moment_client)  # ingest's next poll waits on the pause
            await waiting_out(w, wait, "ingest")
            assert not w.moment_client.limiter.busy("reconcile")
            clock.advance(FRESHNESS / 2)
            await clock.settled()
            assert watchdog.stale() == []  # beaten just before it wedged
            clock.advance(FRESHNESS)
            await clock.settled()
            assert watchdog.stale() == ["reconcile"]
            assert w.moment_client.limiter.busy("ingest")
            tg.cancel_scope.cancel()
        assert w.moment.count(method="POST", path_contains="/projectExpenses") == 0
