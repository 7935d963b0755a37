"""The work queue: per-key dedupe, due times and backoff, the bound per take, dependencies."""

from __future__ import annotations

import anyio
import pytest

from daemon.reconcile.queueing import WorkQueue
from tests.clocks import FakeClock


def test_keys_are_deduplicated_and_taken_in_due_order_up_to_the_bound() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    for key in ("3", "1", "2", "1", "3"):
        q.add("customer", key)
        clock.advance(1)
    assert q.depth("customer") == 3
    assert q.take("customer", 2) == ["3", "1"]
    assert q.take("customer", 2) == ["2"] and q.empty()


def test_backoff_holds_against_adds_but_not_against_an_operator() -> None:
    clock = FakeClock()
    clock.advance(100)
    q = WorkQueue(clock=clock)
    q.add("invoice", "7")
    q.defer("invoice", "7", 30.0)
    q.add("invoice", "7")  # a desired-state change does not cut the backoff short
    assert q.take("invoice", 10) == [] and q.next_due() == 130.0
    clock.advance(30)
    assert q.take("invoice", 10) == ["7"]
    q.defer("invoice", "7", 30.0)
    q.add("invoice", "7", force=True)  # an operator's retry does
    assert q.take("invoice", 10) == ["7"]


def test_hints_travel_with_the_key_once_and_are_dropped_on_backoff() -> None:
    q = WorkQueue(clock=FakeClock())
    q.add("customer", "1", hint=None)
    q.add("customer", "2", hint={"n": 2})
    assert q.hint("customer", "1") == (True, None)
    assert q.hint("customer", "1") == (False, None)
    q.defer("customer", "2", 1.0)
    assert q.hint("customer", "2") == (False, None)


def test_dependents_wait_outside_the_queue_until_released() -> None:
    q = WorkQueue(clock=FakeClock())
    q.wait_on(("customer", "1"), ("invoice", "5"))
    q.wait_on(("customer", "1"), ("project", "2"))
    assert q.empty() and q.waiting() == 2
    q.release("customer", "1")
    assert q.take("project", 9) == ["2"] and q.take("invoice", 9) == ["5"]
    assert q.waiting() == 0


@pytest.mark.anyio
async def test_an_idle_wait_ends_at_its_time_on_the_clock_or_at_the_first_add() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    woke: list[float] = []

    async def waiter(seconds: float) -> None:
        await q.wait(seconds)
        woke.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, 5.0)
        await clock.run(5.0)
        assert woke == [5.0]  # nothing was added: the wait ran its five seconds
        tg.start_soon(waiter, 5.0)
        await clock.run(2.0)
        q.add("customer", "1")
        await clock.settled()
        assert woke == [5.0, 7.0]  # woken by the add, two seconds in
        assert clock.next_deadline() is None  # and its timer is gone
