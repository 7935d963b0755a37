"""Time, injected: the one shape of clock every component takes (STYLE.md rule 10).

A :class:`Clock` gives wall time (POSIX seconds, for what is recorded and shown: day budgets,
pauses that survive a restart, timestamps), monotonic time (for intervals and due times, which
must not jump when the host's clock is set) and a way to wait. The daemon runs on the system
clock built by the composition root; tests run on a fake clock and assert exact virtual times.

This module is pure: the protocol and the time arithmetic only. The real clock, which sleeps,
lives in the shell; nothing here reads the host's time.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Wall time, monotonic time, and waiting. Never passed as a bare callable."""

    def now(self) -> float:
        """Wall-clock time as POSIX seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a negative wait is no wait); cancellable."""
        ...


def utc(posix: float) -> dt.datetime:
    """POSIX seconds as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(posix, tz=dt.UTC)


def iso(moment: dt.datetime, *, timespec: str = "auto") -> str:
    """An aware datetime in UTC as ISO 8601 with ``Z`` (``timespec`` as
    :meth:`datetime.isoformat`: the log keeps microseconds, the status socket seconds)."""
    return moment.astimezone(dt.UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_posix(posix: float | None, *, timespec: str = "seconds") -> str | None:
    """POSIX seconds in :func:`iso` form, to the second by default; None stays None."""
    return None if posix is None else iso(utc(posix), timespec=timespec)
