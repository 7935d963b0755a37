"""The one fake clock of the tests: virtual wall and monotonic time, and sleepers that wake at
exactly their deadlines, so a test asserts exact virtual times instead of sleeping.

:class:`FakeClock` implements :class:`daemon.core.clocks.Clock`. Time moves in one of two ways,
both deterministic:

- ``autojump=True`` (one caller waiting at a time, as in the e-conomic client's rate-limit
  tests): a sleeper yields once, then takes the clock to its own deadline (never back);
  callers that go to sleep at the same moment for the same time wake together.
- otherwise time moves only when the test moves it: :meth:`advance` (now, waking every sleeper
  that fell due), or :meth:`run` and :meth:`run_until`, which reach each deadline on the way in
  order and, after each wake, let the system settle before time moves on.

Settling is "nothing can happen any more without time passing": every callback the event loop
has ready has run (the woken tasks went as far as they could), and then the system's own idle
event (``settle``, e.g. :meth:`Reconciler.until_idle`) is set. Both are needed because the
tests talk to the sandboxes over real loopback sockets and to SQLite on aiosqlite's thread: a
task awaiting its answer looks blocked to the event loop while the answer is on its way, so
"every task is blocked" (trio's autojump, ``anyio.wait_all_tasks_blocked``) would let time jump
at a moment that depends on the machine's load. The system under test says when it is idle;
the clock never guesses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

from daemon.core import clocks

T0 = 1_780_000_000.0  # a POSIX time well inside a UTC day (2026-05-28T20:26:40Z)

Settle = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


class FakeClock:
    """Virtual time from ``start`` (wall, POSIX seconds) and 0.0 (monotonic); see the module
    docstring. ``sleeps`` lists every wait asked for, in order."""

    def __init__(self, start: float = T0, *, autojump: bool = False) -> None:
        self.start = start
        self.elapsed = 0.0
        self.autojump = autojump
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()
        self._asked = anyio.Event()

    # --- the Clock protocol -------------------------------------------------------------------
    def now(self) -> float:
        return self.start + self.elapsed

    def monotonic(self) -> float:
        return self.elapsed

    def utcnow(self) -> dt.datetime:
        """:meth:`now` as an aware datetime: the sandboxes' clocks take datetimes."""
        return clocks.utc(self.now())

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._asked.set()
        self._asked = anyio.Event()
        deadline = self.elapsed + max(0.0, seconds)
        if self.autojump:
            await anyio.lowlevel.checkpoint()
            self._move_to(deadline)
            return
        if deadline <= self.elapsed:
            await anyio.lowlevel.checkpoint()
            return
        woken = anyio.Event()
        entry = (deadline, next(self._order), woken)
        heapq.heappush(self._sleepers, entry)
        try:
            await woken.wait()
        finally:
            if not woken.is_set():  # cancelled: no longer a sleeper
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def asked(self, seconds: float, *, times: int = 1) -> None:
        """Return once tasks have asked ``times`` times to sleep ``seconds`` (time stands
        still: this waits for the tasks, not for the clock)."""
        while self.sleeps.count(seconds) < times:
            await self._asked.wait()

    # --- moving time --------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """The monotonic time the earliest sleeper wakes at, or None when nobody sleeps."""
        return self._sleepers[0][0] if self._sleepers else None

    def advance(self, seconds: float) -> float:
        """Move time ``seconds`` on at once, waking every sleeper that fell due; returns now()."""
        if seconds < 0:
            raise ValueError("time does not go back: shift() sets the wall clock")
        self._move_to(self.elapsed + seconds)
        return self.now()

    def shift(self, seconds: float) -> float:
        """Set the wall clock ``seconds`` on or back, as when the host's clock is set: monotonic
        time and the sleepers are untouched. Returns now()."""
        self.start += seconds
        return self.now()

    async def run(self, seconds: float, *, settle: Settle = _nothing) -> None:
        """Let ``seconds`` pass: every sleeper due on the way wakes at exactly its deadline, in
        order, and the system settles before time moves on."""
        end = self.elapsed + seconds
        await self.settled(settle)
        while (due := self.next_deadline()) is not None and due <= end:
            self._move_to(due)
            await self.settled(settle)
        self._move_to(end)
        await self.settled(settle)

    async def run_until(self, done: Callable[[], bool], *, settle: Settle = _nothing,
                        within: float = 86_400.0) -> float:
        """Let time pass, deadline by deadline, until ``done()`` holds once the system has
        settled; returns the monotonic time it held at. Fails when nobody sleeps any more, or
        ``within`` seconds passed, and ``done()`` still does not hold."""
        end = self.elapsed + within
        while True:
            await self.settled(settle)
            if done():
                return self.elapsed
            due = self.next_deadline()
            if due is None or due > end:
                raise AssertionError(f"still not done at +{self.elapsed} s with "
                                     f"{'no sleeper' if due is None else f'the next at +{due} s'}")
            self._move_to(due)

    async def settled(self, settle: Settle = _nothing) -> None:
        """Return once every ready callback has run and ``settle()`` returned with nothing new
        made ready meanwhile."""
        while True:
            await _drain()
            await settle()
            if not _ready():
                return

    def _move_to(self, elapsed: float) -> None:
        self.elapsed = max(self.elapsed, elapsed)
        while self._sleepers and self._sleepers[0][0] <= self.elapsed:
            _deadline, _n, woken = heapq.heappop(self._sleepers)
            woken.set()


def _ready() -> int:
    """How many callbacks the event loop has ready to run (asyncio's run queue)."""
    return len(asyncio.get_running_loop()._ready)  # type: ignore[attr-defined]


async def _drain(limit: int = 100_000) -> None:
    """Yield until the loop has nothing ready besides this task: every task that can run has
    run as far as it can (to an await on I/O, a thread, an event or the clock)."""
    for _ in range(limit):
        await asyncio.sleep(0)
        if not _ready():
            return
    raise AssertionError("the event loop never ran dry: something is spinning")
