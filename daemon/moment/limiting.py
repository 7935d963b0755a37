"""The Moment client's rate limiter: its own pace, and the pause every 429 imposes.

Moment publishes no limit (``moment/RESEARCH.md``) and sends no headers saying how much of one
is used; it answers 429 with ``Retry-After`` when it throttles. So the limiter keeps two
things, both as :class:`daemon.core.ratelimits.Bucket` arithmetic over the injected clock
(its wall time): an optional client-side bucket (``limit`` calls per ``window_s``, each call
costing one token) that paces the daemon below the rate it is configured for, and the pause
after a 429, which holds every call of the client, not only the one that got it, until
``Retry-After`` has passed (without one: until a full bucket has drained enough for one call,
at least a second). This module only waits; the arithmetic is :mod:`daemon.core.ratelimits`.

Each call counts, by :data:`daemon.core.callers.CALLER`, from before it waits until it is
answered (:meth:`Limiter.busy`): the watchdog excuses a component while its own Moment calls
wait out a pause or the pace or are in flight (DESIGN.md: waiting on a rate limit is progress).

Invariants: nothing is sent while a 429 pause is in force; with a bucket, no more than
``limit`` calls go out in any stretch in which the bucket could drain ``limit`` tokens (the
mirror charges a call when it is sent); at most ``max_in_flight`` calls are open at once.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from daemon.core import callers, clocks, ratelimits

#: Without a configured pace the bucket is this large: only 429 pauses hold calls back.
UNPACED_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class Pace:
    """At most ``limit`` calls per ``window_s`` seconds, drained continuously."""

    limit: int
    window_s: float

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0:
            raise ValueError(f"a pace needs limit >= 1 and window_s > 0, got {self}")


#: The pace the daemon keeps: Moment publishes no limit, so the daemon stays well under the
#: 600 a minute the sandbox documents for itself, with room for the network's jitter.
DEFAULT_PACE = Pace(limit=500, window_s=60.0)


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot for ``/status`` and ``/metrics``: ``used`` of ``limit`` calls per
    ``window_s`` seconds now (all three 0 without a pace), when the 429 pause in force ends
    (POSIX seconds, None when none is), the 429s seen and the seconds calls were held back by
    the pace or a pause (summed over calls: two calls held a second each are 2)."""

    used: int
    limit: int
    window_s: float
    paused_until: float | None
    rate_limited: int
    waited_s: float


class Limiter:
    """Waits before each Moment call; learns from 429s. See the module docstring."""

    def __init__(self, *, clock: clocks.Clock, pace: Pace | None = None,
                 max_in_flight: int = 8) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.clock = clock
        self.pace = pace
        limit, window = (pace.limit, pace.window_s) if pace else (UNPACED_LIMIT, 1.0)
        self.bucket = ratelimits.Bucket(limit=limit, window_s=window)
        self._slots = asyncio.Semaphore(max_in_flight)
        self.rate_limited = 0  # 429s seen
        self.waited_s = 0.0  # time spent waiting for the pace or a pause
        self._calls = callers.Calls()  # by daemon.core.callers.CALLER, for the watchdog

    @property
    def paused_until(self) -> float | None:
        """When the 429 pause in force ends (POSIX seconds), or None."""
        p = self.bucket.paused_until
        return p if p > self.clock.now() else None

    def busy(self, caller: str) -> bool:
        """Calls of ``caller`` (:data:`daemon.core.callers.CALLER`) wait for their turn (a
        slot, the pace, a Retry-After pause) or are in flight; see
        :meth:`daemon.core.callers.Calls.busy`."""
        return self._calls.busy(caller)

    def stats(self) -> Stats:
        """The limiter as of now (the bucket drained to the clock's time)."""
        b = self.bucket
        used = math.ceil(ratelimits.level(b, self.clock.now()) - ratelimits.EPSILON)
        paced = self.pace is not None
        return Stats(used=max(used, 0) if paced else 0, limit=b.limit if paced else 0,
                     window_s=b.window_s if paced else 0.0, paused_until=self.paused_until,
                     rate_limited=self.rate_limited, waited_s=self.waited_s)

    async def acquire(self) -> None:
        """Wait for the pace and any pause, then take an in-flight slot and charge the call;
        pair with :meth:`release` in the same task."""
        with self._calls.entering():
            await self._slots.acquire()
            try:
                while (wait := ratelimits.delay(self.bucket, self.clock.now(), 1)) > 0:
                    self.waited_s += wait
                    await self.clock.sleep(wait)
            except BaseException:
                self._slots.release()
                raise
        self.bucket = ratelimits.charge(self.bucket, self.clock.now(), 1)

    def release(self) -> None:
        """The call is answered (or failed): its slot is free; its token stays spent."""
        self.bucket = ratelimits.settle(self.bucket, 1)
        self._calls.leave(callers.CALLER.get())  # the task that acquired, so its caller
        self._slots.release()

    def throttled(self, retry_after: float | None) -> float:
        """Record a 429: every call now waits. Returns the seconds until the pause ends."""
        now = self.clock.now()
        self.rate_limited += 1
        self.bucket = ratelimits.pause(self.bucket, now, retry_after, 1)
        return self.bucket.paused_until - now
