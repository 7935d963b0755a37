"""What the reconciler does with e-conomic's webhook hints (:class:`~daemon.core.events.
EconomicHintReceived`): read the records named now, and repair or report them.

A customer or project hint names up to two numbers (``old`` and ``new``: a creation has no old
one, a deletion no new one, a renumbering both). A number the daemon manages queues its entity
at once (due now), so the next pass reads it and writes only what differs: a renumbered record
shows as its old number missing, which is created again under Moment's number. A number it does
not manage may be a record that took a managed one's place (the new number of a renumbering):
it is read, and reported as a stray when it looks like a managed record (the same test as the
full sweep's; never deleted).

Coalescing: the work queue holds a key once, so while a hinted entity waits for its pass, more
hints for it add nothing; an unmanaged number waits once for its read likewise. Hints for the
daemon's own writes (e-conomic fires them too) find the record in sync: reads, never writes.
Day-book hints are not the reconciler's: the booked-entries reader takes them from the log.
Sweeps stay the safety net for a hint that never comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from daemon.core import events as ev
from daemon.core import webhooks
from daemon.economic import errors
from daemon.reconcile import kinds, specs
from daemon.reconcile.controls import Controls

_log = structlog.get_logger(__name__)


def managed_key(rows: Mapping[str, specs.Fact[Any]], number: int) -> str | None:
    """The key of the managed entity (not gone) whose e-conomic number is ``number``, or None.
    Keys are Moment numbers, so this is ``str(number)`` but for a Moment number written with
    leading zeros, found by a scan."""
    row = rows.get(str(number))
    if row is not None:
        return None if row.gone else str(number)
    for key, row in rows.items():
        if key.isdigit() and int(key) == number and not row.gone:
            return str(key)
    return None


class Hints:
    """The hints heard and not yet acted on; see the module docstring."""

    def __init__(self, controls: Controls) -> None:
        self.controls = controls
        self.heard = 0
        #: unmanaged numbers to read and compare with the managed records, by kind
        self.unmanaged: dict[str, set[int]] = {}

    def hear(self, hint: ev.EconomicHintReceived) -> None:
        """Queue what ``hint`` names (no I/O: reads happen in the pass)."""
        if hint.kind not in webhooks.RECORD_KINDS:
            return
        self.heard += 1
        spec = kinds.spec(hint.kind)
        rows = spec.rows(self.controls.log.tables)
        for number in (int(n) for n in dict.fromkeys((hint.old, hint.new)) if n.isdigit()):
            key = managed_key(rows, number)
            if key is not None:
                self.controls.queue.add(spec.kind, key)
            else:
                self.unmanaged.setdefault(spec.kind, set()).add(number)
                self.controls.queue.wake()  # the worker reads it in its next pass

    @property
    def pending(self) -> bool:
        return any(self.unmanaged.values())

    async def read_unmanaged(self) -> int:
        """Read the unmanaged numbers heard of; report those that look like a managed record as
        strays. Returns how many numbers were read. A read e-conomic fails is dropped: the next
        full sweep reports what it would have."""
        read = 0
        todo, self.unmanaged = self.unmanaged, {}
        c = self.controls
        for kind, numbers in todo.items():
            spec = kinds.spec(kind)
            if not numbers or not isinstance(spec, specs.RecordSpec):
                continue
            read += len(numbers)
            try:
                found = await spec.fetch(c.client, sorted(numbers))
            except errors.EconomicError as err:
                _log.info("hinted records not read; the full sweep reports strays",
                          kind=kind, error=str(err))
                continue
            if not found:
                continue  # deleted in e-conomic, or never there: nothing to report
            managed = [i.desired for i in spec.each_item(c.log.tables, c.options)
                       if i.desired is not None]
            moment = {spec.number(d) for d in managed}
            others = [spec.live(r) for n, r in found.items() if n not in moment]
            if others:
                await c.outcomes.strays(spec.strays(managed, others, moment))
        return read
