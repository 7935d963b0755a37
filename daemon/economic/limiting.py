"""The client's rate limiter: the agreement's token bucket, the daily budget, calls in flight.

One :class:`Limiter` per agreement, shared by every call the client makes. Before a call it
waits (through the injected :class:`~daemon.core.clocks.Clock`, its wall time: the bucket and
the rolling day are e-conomic's) until the bucket mirror has room and no 429 pause
is in force, checks the daily budget and takes an in-flight slot; after the answer it re-syncs
the mirror from the headers. A 429 pauses every caller until Retry-After has passed (without
one, until a full bucket has drained enough for the next call). The arithmetic is
:mod:`daemon.core.ratelimits`; this module only waits.

The daily budget is a rolling 24 hours. The limiter does no I/O of its own: the daemon records
its pause and the calls it counted in the log (:meth:`Limiter.take_unrecorded`, ``on_pause``)
and seeds a new limiter from the log on start (:meth:`Limiter.restore`), so a restart honours a
pause still running and the last 24 hours' count.

Invariants: nothing is sent while ``paused_until`` is in the future; no more than
``max_in_flight`` calls are open; non-priority calls never spend the invoice reserve.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import replace

from daemon.core import callers, clocks, ratelimits
from daemon.economic import errors


class Limiter:
    """Waits before calls and learns from answers; see the module docstring."""

    def __init__(self, *, clock: clocks.Clock, daily_call_budget: int = 50_000,
                 invoice_reserve: int | None = None, max_in_flight: int = 4,
                 bucket: ratelimits.Bucket | None = None) -> None:
        reserve = daily_call_budget // 10 if invoice_reserve is None else invoice_reserve
        if not 0 <= reserve <= daily_call_budget:
            raise ValueError("invoice_reserve must lie between 0 and daily_call_budget")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.clock = clock
        self.bucket = bucket or ratelimits.Bucket()
        self.budget = ratelimits.Budget(daily=daily_call_budget, reserve=reserve)
        self._slots = asyncio.Semaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.peak_in_flight = 0
        self.waited_s = 0.0
        self._calls = callers.Calls()  # by daemon.core.callers.CALLER, for the watchdog
        #: calls counted since the last :meth:`take_unrecorded`, by minute
        self._unrecorded: collections.Counter[int] = collections.Counter()
        #: called (with the pause's end) when a 429 starts or lengthens a pause
        self.on_pause: Callable[[float], None] | None = None

    @property
    def paused_until(self) -> float | None:
        """When a 429 pause ends, or None when no pause is in force."""
        p = self.bucket.paused_until
        return p if p > self.clock.now() else None

    def busy(self, caller: str) -> bool:
        """Calls of ``caller`` (:data:`daemon.core.callers.CALLER`) wait for their turn (a
        slot, the bucket, a Retry-After pause) or are in flight; see
        :meth:`daemon.core.callers.Calls.busy`."""
        return self._calls.busy(caller)

    def calls_today(self) -> int:
        """Calls made in the last rolling 24 hours (to the minute)."""
        return ratelimits.budget_used(self.budget, self.clock.now())

    def take_unrecorded(self) -> ratelimits.Counts:
        """The calls counted since the last take, by minute, and forget them (the daemon has
        recorded them); give them back with :meth:`untake` when recording failed."""
        taken = tuple(sorted(self._unrecorded.items()))
        self._unrecorded.clear()
        return taken

    def untake(self, counts: ratelimits.Counts) -> None:
        """Calls a :meth:`take_unrecorded` returned that could not be recorded after all."""
        for minute, calls in counts:
            self._unrecorded[minute] += calls

    def restore(self, *, paused_until: float, counts: ratelimits.Counts) -> None:
        """Seed from what an earlier run recorded: a pause still running holds every call until
        its end (never shortened), and its calls count in the rolling 24 hours."""
        now = self.clock.now()
        if paused_until > self.bucket.paused_until:
            self.bucket = replace(self.bucket, paused_until=paused_until)
        self.budget = ratelimits.budget_restore(self.budget, counts, now)

    async def acquire(self, *, priority: bool) -> int:
        """Take a slot for one call: wait for the bucket and any 429 pause, spend the budget,
        bound the calls in flight. Returns the tokens reserved for the call (its ticket); pair
        with :meth:`observe` when an answer came and always with :meth:`release`. Raises
        :class:`errors.BudgetExhausted` (with retry_after, holding no slot) when today's
        budget is spent."""
        with self._calls.entering():
            await self._slots.acquire()
            try:
                while True:
                    wait = ratelimits.delay(self.bucket, self.clock.now())
                    if wait <= 0:
                        break
                    self.waited_s += wait
                    await self.clock.sleep(wait)
                now = self.clock.now()
                if not ratelimits.budget_allows(self.budget, now, priority=priority):
                    why = "" if priority else " (the rest is kept for invoices)"
                    raise errors.BudgetExhausted(
                        "daily call budget spent" + why,
                        retry_after=ratelimits.budget_frees_in(self.budget, now,
                                                               priority=priority))
            except BaseException:
                self._slots.release()
                raise
        self.budget = ratelimits.budget_spend(self.budget, now)
        self._unrecorded[ratelimits.minute_of(now)] += 1
        if len(self._unrecorded) > ratelimits.WINDOW_MINUTES + 1:  # nobody records: stay bounded
            del self._unrecorded[min(self._unrecorded)]
        reserved = ratelimits.reservation(self.bucket)
        self.bucket = ratelimits.charge(self.bucket, now, reserved)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return reserved

    def release(self, unsettled: int = 0) -> None:
        """Give back the slot taken by :meth:`acquire`; ``unsettled``: the reservation of a
        call that got no answer (its tokens are no longer expected to land)."""
        self.bucket = ratelimits.settle(self.bucket, unsettled)
        self.in_flight -= 1
        self._calls.leave(callers.CALLER.get())  # the task that acquired, so its caller
        self._slots.release()

    def observe(self, rate_header: str | None, cost_header: str | None,
                ticket: int) -> None:
        """Re-sync the bucket mirror from an answer's headers; ``ticket`` is what
        :meth:`acquire` returned for the call."""
        self.bucket = ratelimits.observe(self.bucket, self.clock.now(),
                                         ratelimits.parse_rate_header(rate_header),
                                         ratelimits.parse_cost(cost_header), ticket)

    def throttled(self, retry_after: float | None) -> float:
        """Record a 429; every caller now waits. Returns the seconds until the pause ends."""
        now = self.clock.now()
        before = self.bucket.paused_until
        self.bucket = ratelimits.pause(self.bucket, now, retry_after)
        if self.bucket.paused_until > before and self.on_pause is not None:
            self.on_pause(self.bucket.paused_until)
        return self.bucket.paused_until - now
