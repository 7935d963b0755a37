"""Waiting for an event, or for a while of an injected clock, whichever comes first.

Every loop that idles until "something happened or it is time" (the reconcile worker and
schedule, the alert mailer) waits through :func:`wait_for`, so that its timeout runs on the
component's :class:`daemon.core.clocks.Clock` (virtual time in tests) and never on the event
loop's own timer.

Guarantees: returns as soon as ``event`` is set or ``seconds`` of ``clock`` time have passed, and
leaves no task behind; cancellation passes through. Never sets or replaces the event.
"""

from __future__ import annotations

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
