"""The real clock: the host's wall time, its monotonic time, and anyio's sleep.

The composition root builds one :class:`SystemClock` and hands it to every component that reads
or waits on time, as a :class:`daemon.core.clocks.Clock`; no component imports this module, so
each one runs as well on the fake clock the tests pass (``tests/clocks.py``).

Never keeps state and never reads any other source of time.
"""

from __future__ import annotations

import time

import anyio


class SystemClock:
    """Wall time for what is recorded and shown, monotonic time for intervals, anyio to wait."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))
