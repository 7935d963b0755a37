"""e-conomic's limits survive a restart (DESIGN.md, "Limits survive restarts"): the daemon's
wiring (:mod:`daemon.ops.limits`) over a real event log, a real client and the e-conomic sandbox
on one fake clock. Each "run" opens the log and a client as the daemon does, seeds the limiter
and records while it runs; times asserted are exact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from daemon.core import projections as pj
from daemon.core import ratelimits as rl
from daemon.economic.client import EconomicClient
from daemon.ops import limits
from daemon.sandbox.economic import EconomicSandbox
from daemon.store import eventlog
from tests.clocks import T0, FakeClock
from tests.economic.conftest import make_client

pytestmark = pytest.mark.anyio

#: a real-time guard only: a wait that should end at once fails the test instead of hanging
GUARD_S = 10.0
M = rl.minute_of(T0)  # T0 is 40 s into minute M


@asynccontextmanager
async def daemon_run(path: Path, sb: EconomicSandbox, clock: FakeClock
                     ) -> AsyncIterator[tuple[eventlog.EventLog, EconomicClient]]:
    """What ``moment-sync run`` does with the limits: seed the client from the log, record
    while running, record once more at stop."""
    async with await eventlog.EventLog.open(path, clock=clock) as log, \
            make_client(sb, clock) as client:
        limits.seed(log, client.limiter)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: limits.recording(log, client.limiter, clock=clock))
            yield log, client
            tg.cancel_scope.cancel()


async def until(asked: Callable[[], Awaitable[None]]) -> None:
    with anyio.fail_after(GUARD_S):
        await asked()


async def next_round(clock: FakeClock) -> None:
    """Let the recorder's minute pass and wait until it has recorded and sleeps again."""
    every = limits.RECORD_EVERY_S
    slept = clock.sleeps.count(every)
    await until(lambda: clock.asked(every, times=slept))  # it sleeps now
    clock.advance(every)
    await until(lambda: clock.asked(every, times=slept + 1))


async def test_a_restart_during_a_429_pause_calls_nothing_before_it_ends(
        tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "events.db"
    async with EconomicSandbox.running(clock=clock.now) as sb:
        sb.faults.retry_after_s = 600
        sb.inject("429")
        async with daemon_run(path, sb, clock) as (log, client):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.get_self)
                await until(lambda: clock.asked(600.0))  # the client honours Retry-After
                # the recorder woke on the pause and recorded it before going back to sleep
                await until(lambda: clock.asked(limits.RECORD_EVERY_S, times=2))
                assert pj.rate_limits(log.tables) == (T0 + 600, ((M, 1),))
                tg.cancel_scope.cancel()  # stopped (or killed) while waiting out the pause
        assert [(s.status, s.at) for s in sb.served] == [(429, T0)]

        clock.advance(10.0)
        async with daemon_run(path, sb, clock) as (log, client):
            assert client.limiter.paused_until == T0 + 600
            assert client.stats().calls_today == 1  # the refused call counts too
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.get_self)
                await until(lambda: clock.asked(590.0))
                clock.advance(589.0)  # a second before the pause ends: nothing was sent
                assert [(s.status, s.at) for s in sb.served] == [(429, T0)]
                clock.advance(1.0)
        assert [(s.status, s.at) for s in sb.served] == [(429, T0), (200, T0 + 600)]


async def test_a_restart_keeps_the_rolling_count_and_calls_older_than_a_day_fall_out(
        tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "events.db"
    async with EconomicSandbox.running(clock=clock.now) as sb:
        async with daemon_run(path, sb, clock) as (log, client):
            for _ in range(3):
                await client.get_self()
            assert client.stats().calls_today == 3
        # stopped: the calls since the last record were recorded at stop
        clock.advance(30.0)  # minute M + 1
        async with daemon_run(path, sb, clock) as (log, client):
            assert client.stats().calls_today == 3
            for _ in range(2):
                await client.get_self()
            assert client.stats().calls_today == 5
            # the once-a-minute record, without a stop (a kill after it loses nothing)
            await next_round(clock)
            assert pj.rate_limits(log.tables) == (0.0, ((M, 3), (M + 1, 2)))
            seq = log.last_seq
            await next_round(clock)  # nothing new: nothing appended
            assert log.last_seq == seq
        # minute M's calls count until 24 h after its end (T0 + 1 day + 20 s), not a second less
        clock.advance(rl.DAY_S + 20.0 - 1.0 - 30.0 - 2 * limits.RECORD_EVERY_S)
        async with daemon_run(path, sb, clock) as (log, client):
            assert client.stats().calls_today == 5
            clock.advance(1.0)
            assert client.stats().calls_today == 2
            await client.get_self()
            assert client.stats().calls_today == 3
        clock.advance(60.0)  # M + 1 falls out too
        async with daemon_run(path, sb, clock) as (log, client):
            assert client.stats().calls_today == 1
            # the log's row holds only the last 24 hours: M fell out when M + 1 + 1440 came in
            assert pj.rate_limits(log.tables)[1] == ((M + 1, 2), (M + 1441, 1))
