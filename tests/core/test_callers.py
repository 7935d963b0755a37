"""The count of calls by caller that both clients' limiters keep for the watchdog."""

from __future__ import annotations

import contextvars

import pytest

from daemon.core import callers


def test_calls_count_by_the_caller_each_entered_under() -> None:
    calls = callers.Calls()

    def reconciling() -> str:
        callers.CALLER.set("reconcile")
        return calls.enter()

    caller = contextvars.copy_context().run(reconciling)  # a task of its own
    assert caller == "reconcile"
    assert calls.busy("reconcile") and not calls.busy("preflight")
    assert calls.enter() == ""  # this context named no caller
    assert calls.busy("reconcile") and calls.busy("")
    calls.leave("reconcile")
    assert not calls.busy("reconcile") and calls.busy("")
    calls.leave("")
    assert not calls.busy("")
    with pytest.raises(RuntimeError, match="never entered"):
        calls.leave("reconcile")


def test_a_call_that_never_got_its_turn_stops_counting() -> None:
    calls = callers.Calls()
    with pytest.raises(TimeoutError), calls.entering():
        raise TimeoutError  # cancelled or refused while it waited for its turn
    assert not calls.busy("")
    with calls.entering() as caller:
        pass  # got its turn: counted until the limiter's release leaves
    assert calls.busy(caller)
    calls.leave(caller)
    assert not calls.busy(caller)
