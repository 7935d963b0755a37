"""Un-parking: which parked items are tried again, and when.

A parked item is tried again when its Moment data changed (ingest recorded a new fact for it),
when an operator retries it, on a full reconcile, and when what it waited on is retried (a
customer takes its parked projects along, a project its parked invoices). The reconciler's
intake notes the first two and the worker calls :meth:`Unparker.round` before each pass; each
un-park is an :class:`~daemon.core.events.Unparked` event, which the intake queues.

Use::

    unparker = Unparker(log)
    unparker.changed("customer", "C-1")       # from the intake
    await unparker.round(pull=intake.pull)    # before a pass
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import anyio.lowlevel

from daemon.core import events as ev
from daemon.store.eventlog import EventLog

SCAN_YIELD_EVERY = 5000  # states scanned between checkpoints (a long scan lets the loop breathe)
APPEND_CHUNK = 2000  # un-parks committed per transaction


UNPARK_BATCH = 1000  # un-parks a transaction (a full reconcile un-parks every parked item)


class Unparker:
    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._retried: list[tuple[str, str]] = []
        self._changed: list[tuple[str, str]] = []

    @property
    def pending(self) -> bool:
        """An un-park is noted and not yet done."""
        return bool(self._retried or self._changed)

    def changed(self, kind: str, key: str) -> None:
        """A parked item's Moment data changed: try it again (fixed in Moment, perhaps)."""
        self._changed.append((kind, key))

    def retried(self, kind: str, key: str) -> None:
        """``kind:key`` was retried or un-parked: what waited on it goes along."""
        self._retried.append((kind, key))

    async def unpark(self, items: list[tuple[str, str]], by: str) -> None:
        """Un-park the parked ones among ``items``, a transaction per
        :data:`UNPARK_BATCH` of them (each un-park stands alone: one not committed when the
        daemon stops stays parked until the next full reconcile), yielding to the event loop
        between them: a full reconcile un-parks every parked item at once."""
        states = self.log.tables
        todo = [(kind, key) for kind, key in dict.fromkeys(items)
                if states.state(kind, key).parked]
        for start in range(0, len(todo), UNPARK_BATCH):
            await self.log.append_many([
                (ev.Unparked(kind=kind, key=key, by=by),
                 f"unparked:{kind}:{key}:{uuid.uuid4().hex}", None)
                for kind, key in todo[start:start + UNPARK_BATCH]])

    async def round(self, *, pull: Callable[[], Awaitable[object]]) -> None:
        """Un-park what changed in Moment, then what waited on a retried item. One scan of the
        states per round, whatever the number retried (a full reconcile retries every parked
        item at once); the round's un-parks commit together, and may retry more (a customer,
        its project, the project's invoices): ``pull`` lets the intake see them."""
        changed, self._changed = self._changed, []
        await self.unpark(changed, "changed in Moment")
        while self._retried:
            retried, self._retried = self._retried, []
            markers = {f"waiting on {kind}:{key}": f"{kind} {key} retried"
                       for kind, key in retried}
            found: list[tuple[ev.Event, str, None]] = []
            for n, st in enumerate(list(self.log.tables.states().values())):
                if n % SCAN_YIELD_EVERY == SCAN_YIELD_EVERY - 1:
                    await anyio.lowlevel.checkpoint()
                by = markers.get(st.last_error) if st.parked else None
                if by is not None:
                    found.append((ev.Unparked(kind=st.kind, key=st.key, by=by),
                                  f"unparked:{st.kind}:{st.key}:{uuid.uuid4().hex}", None))
            for start in range(0, len(found), APPEND_CHUNK):
                await self.log.append_many(found[start:start + APPEND_CHUNK])
            if found:
                await pull()
