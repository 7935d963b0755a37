"""The work queue: per-key dedupe, due times and backoff, the bound per take, dependencies."""

from __future__ import annotations

from daemon.reconcile.queueing import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_keys_are_deduplicated_and_taken_in_due_order_up_to_the_bound() -> None:
    clock = Clock()
    q = WorkQueue(now=clock)
    for key in ("3", "1", "2", "1", "3"):
        q.add("customer", key)
        clock.t += 1
    assert q.depth("customer") == 3
    assert q.take("customer", 2) == ["3", "1"]
    assert q.take("customer", 2) == ["2"] and q.empty()


def test_backoff_holds_against_adds_but_not_against_an_operator() -> None:
    clock = Clock()
    q = WorkQueue(now=clock)
    q.add("invoice", "7")
    q.defer("invoice", "7", 30.0)
    q.add("invoice", "7")  # a desired-state change does not cut the backoff short
    assert q.take("invoice", 10) == [] and q.next_due() == 130.0
    clock.t = 130.0
    assert q.take("invoice", 10) == ["7"]
    q.defer("invoice", "7", 30.0)
    q.add("invoice", "7", force=True)  # an operator's retry does
    assert q.take("invoice", 10) == ["7"]


def test_hints_travel_with_the_key_once_and_are_dropped_on_backoff() -> None:
    q = WorkQueue(now=Clock())
    q.add("customer", "1", hint=None)
    q.add("customer", "2", hint={"n": 2})
    assert q.hint("customer", "1") == (True, None)
    assert q.hint("customer", "1") == (False, None)
    q.defer("customer", "2", 1.0)
    assert q.hint("customer", "2") == (False, None)


def test_dependents_wait_outside_the_queue_until_released() -> None:
    q = WorkQueue(now=Clock())
    q.wait_on(("customer", "1"), ("invoice", "5"))
    q.wait_on(("customer", "1"), ("project", "2"))
    assert q.empty() and q.waiting() == 2
    q.release("customer", "1")
    assert q.take("project", 9) == ["2"] and q.take("invoice", 9) == ["5"]
    assert q.waiting() == 0
