"""Waiting for an event, or for a while of an injected clock, whichever comes first.

Every loop that idles until "something happened or it is time" (the reconcile worker and
schedule, the alert mailer) waits through :func:`wait_for`, so that its timeout runs on the
component's :class:`daemon.core.clocks.Clock` (virtual time in tests) and never on the event
loop's own timer.

Guarantees: returns as soon as ``event`` is set or ``seconds`` of ``clock`` time have passed, and
leaves no task behind; cancellation passes through. Never sets or replaces the event. A
:class:`Condition` is a predicate turned into an event: waiters await it, never poll it.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from daemon.core import clocks


async def wait_for(event: anyio.Event, *, seconds: float, clock: clocks.Clock) -> bool:
    """Wait until ``event`` is set (True) or ``seconds`` have passed on ``clock`` (False)."""
    if event.is_set():
        return True
    async with anyio.create_task_group() as tg:

        async def expire() -> None:
            await clock.sleep(seconds)
            tg.cancel_scope.cancel()

        tg.start_soon(expire)
        await event.wait()
        tg.cancel_scope.cancel()
    return event.is_set()


class Condition:
    """A predicate waiters await. Its owner calls :meth:`recheck` after anything that may
    change it; :meth:`wait` returns at once while it holds."""

    def __init__(self, holds: Callable[[], bool]) -> None:
        self._holds = holds
        self._event = anyio.Event()

    def recheck(self) -> None:
        if self._holds():
            self._event.set()
        elif self._event.is_set():
            self._event = anyio.Event()

    async def wait(self) -> None:
        while not self._holds():
            await self._event.wait()
            self.recheck()  # set, but stale: it stopped holding before this waiter ran
