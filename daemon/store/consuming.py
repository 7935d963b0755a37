"""Consumers of the event log: each pulls what committed after a position it keeps.

The log calls nobody: an append returns once its batch is durable, and nothing a consumer does
can delay or fail it. A :class:`Consumer` is a task that reads the events committed after its
position (:meth:`~daemon.store.eventlog.EventLog.committed`), hands them to its handler in
order, in batches, and moves its position past each batch the handler returned from; then it
sleeps until the next commit wakes it (an event, not a poll). Anyone may also :meth:`pull` to
bring a consumer up to the log's head now (the reconciler does, before each pass).

Guarantees:

* In order, at least once: a handler sees every event after the starting position, in sequence
  order. A handler that raises is logged, the position stays where the last good batch left
  it, and the consumer starts again from there (the same events again) after a backoff that
  grows with consecutive failures; handlers must therefore be idempotent.
* One pull at a time per consumer, so a handler never runs twice at once.
* Where a consumer's effect is durable, it is the consumer's job to record the position it has
  processed with that effect (a tracking record, as eventsourcing's process applications keep)
  and to start from it; a consumer whose effect lives in memory starts at the log's head, since
  its owner rebuilds that memory from the projections.

Must never: run inside the log's writer, or let a handler's error reach an appender.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import anyio
import anyio.abc
import structlog

from daemon.core import backoff, clocks
from daemon.store import eventlog, records

_log = structlog.get_logger(__name__)

Handler = Callable[[Sequence[records.Committed]], Awaitable[None]]
#: Restarts after a failure: 1 s, 2 s, 4 s ... up to a minute between attempts (no jitter).
RESTARTS: Final = backoff.Policy(base_s=2.0, cap_s=120.0)


class Consumer:
    """One named consumer of ``log``; run it with ``await tg.start(consumer.run)``."""

    def __init__(self, *, name: str, log: eventlog.EventLog, handle: Handler,
                 clock: clocks.Clock, position: int | None = None, batch: int = 1000,
                 restarts: backoff.Policy = RESTARTS,
                 on_moved: Callable[[], None] | None = None) -> None:
        self.name = name
        self.log = log
        #: Every event with ``seq <=`` this has been handed to the handler, which returned.
        self.position = log.last_seq if position is None else position
        self.failures = 0
        self.last_error: str | None = None
        self._handle = handle
        self._clock = clock
        self._batch = batch
        self._restarts = restarts
        self._pulling = anyio.Lock()
        self._moved = anyio.Event()
        self._on_moved = on_moved or (lambda: None)  # told each time the position moves

    @property
    def lag(self) -> int:
        """Committed events the handler has not seen yet."""
        return max(0, self.log.last_seq - self.position)

    async def pull(self) -> bool:
        """Hand everything committed after the position to the handler; True once caught up
        with the head, False when the handler raised (logged; the position stays at the last
        batch it returned from)."""
        async with self._pulling:
            while True:
                batch = await self.log.committed(after=self.position, limit=self._batch)
                if not batch:
                    self.failures = 0
                    return True
                try:
                    await self._handle(batch)
                except Exception as exc:
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    _log.exception("log consumer failed; it starts again from its position",
                                   consumer=self.name, position=self.position,
                                   failures=self.failures)
                    return False
                self.position = batch[-1].seq
                self._moved.set()
                self._moved = anyio.Event()
                self._on_moved()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Pull, then sleep until the next commit, until cancelled; after a failure, wait out
        the restart backoff first. Started at once: catching up happens in this task."""
        task_status.started()
        while True:
            if await self.pull():
                await self.log.wait_for(self.position + 1)
            else:
                # one consumer has no herd to spread: no jitter
                await self._clock.sleep(backoff.delay(self._restarts, self.failures, 0.0))

    async def caught_up(self) -> None:
        """Return once the handler has seen every event committed when this was called (or
        later)."""
        target = self.log.last_seq
        while self.position < target:
            await self._moved.wait()
