"""e-conomic's limits survive a restart (DESIGN.md, "Limits survive restarts").

:func:`seed` gives a new client's limiter what the log recorded: a 429 pause still running holds
every call until its end, and the calls of the last rolling 24 hours count against the budget.
:func:`recording` appends a ``RateLimitRecorded`` when a 429 starts a pause (at once: a kill
right after it must not forget it), and otherwise at most once every :data:`RECORD_EVERY_S` and
when it stops, with the calls made since the previous record; nothing when nothing changed.
The limiter does no I/O itself (``daemon.economic`` does not import the store): this is the
wiring between the two.

Bound: calls made after the last record of a run that was killed (not stopped) are not counted
after the restart, at most :data:`RECORD_EVERY_S` of them.
"""

from __future__ import annotations

from typing import Final

import anyio
import structlog

from daemon import waiting
from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import projections as pj
from daemon.economic import limiting
from daemon.store import eventlog

_log = structlog.get_logger(__name__)

RECORD_EVERY_S: Final = 60.0


def seed(log: eventlog.EventLog, limiter: limiting.Limiter) -> None:
    """Give ``limiter`` the pause and the calls the log recorded."""
    paused_until, counts = pj.rate_limits(log.tables)
    limiter.restore(paused_until=paused_until, counts=counts)
    if limiter.paused_until is not None:
        _log.info("honouring an e-conomic pause recorded before the restart",
                  paused_until=clocks.iso_posix(limiter.paused_until))


async def record(log: eventlog.EventLog, limiter: limiting.Limiter, recorded: float) -> float:
    """Append what changed since a record of pause end ``recorded``; returns the pause end now
    recorded."""
    calls = limiter.take_unrecorded()
    paused_until = limiter.bucket.paused_until
    if not calls and paused_until <= recorded:
        return recorded
    try:
        await log.append(ev.RateLimitRecorded(paused_until=paused_until, calls=calls),
                         idempotency_key=f"rate_limits:{log.last_seq}")
    except BaseException:
        limiter.untake(calls)
        raise
    return paused_until


async def recording(log: eventlog.EventLog, limiter: limiting.Limiter, *,
                    clock: clocks.Clock, every: float = RECORD_EVERY_S) -> None:
    """Record the limiter's pause and calls until cancelled, then once more."""
    paused = anyio.Event()

    def on_pause(_until: float) -> None:
        paused.set()

    limiter.on_pause = on_pause
    recorded = pj.rate_limits(log.tables)[0]
    try:
        while True:
            if await waiting.wait_for(paused, seconds=every, clock=clock):
                paused = anyio.Event()
            recorded = await record(log, limiter, recorded)
    finally:
        limiter.on_pause = None
        with anyio.CancelScope(shield=True):
            try:
                await record(log, limiter, recorded)
            except Exception as exc:  # stopping anyway: the calls since the last record are lost
                _log.warning("could not record e-conomic's limits at stop", error=str(exc))
