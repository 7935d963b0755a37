"""Waiting on the injected clock (daemon/waiting.py): an event or a while, whichever is first;
a condition waiters await instead of polling it."""

from __future__ import annotations

import anyio
import pytest

from daemon import waiting
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio


async def test_wait_for_ends_at_the_event_or_at_its_time_on_the_clock() -> None:
    clock = FakeClock()
    event = anyio.Event()
    results: list[tuple[bool, float]] = []

    async def waiter() -> None:
        results.append((await waiting.wait_for(event, seconds=3.0, clock=clock),
                        clock.monotonic()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await clock.run(3.0)
        tg.start_soon(waiter)
        await clock.run(1.0)
        event.set()
        await clock.settled()
    assert results == [(False, 3.0), (True, 4.0)]
    assert clock.next_deadline() is None  # the second one's timer went with it


async def test_a_condition_wakes_its_waiters_once_it_holds_and_not_on_a_stale_wake() -> None:
    clock = FakeClock()
    n = [0]
    condition = waiting.Condition(lambda: n[0] >= 2)
    woke: list[int] = []

    async def waiter() -> None:
        await condition.wait()
        woke.append(n[0])

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await clock.settled()
        n[0] = 2
        condition.recheck()
        n[0] = 1  # stopped holding before the waiter ran: it waits on
        await clock.settled()
        assert woke == []
        n[0] = 3
        condition.recheck()
        await clock.settled()
    assert woke == [3]
