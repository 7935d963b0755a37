"""Sweeps: read e-conomic in pages and queue exactly the keys that need a write.

For each kind whose live state is read (customers: legacy pages of 1000, so N customers cost
ceil(N/1000) reads; projects: cursor pages of 1000) a full sweep lists every record, plans each
managed entity with its spec (the same call the controller and ``plan`` make), queues only those
that need something (with the record just read when the write carries its version, so it is
not read again), records ``Applied`` for records found in sync that the log did not know were,
and reports strays. An incremental sweep reads only records whose ``lastUpdated`` is after the
previous sweep's start, less an overlap (clocks and second-resolution stamps), so an edit made
in e-conomic is seen within ``reconcile_interval``; deletions show only in full sweeps. Kinds
whose progress is in the log (invoices) are not read: a full sweep queues each of their
entities that the log does not show complete. Nothing here writes to e-conomic.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import projections as pj
from daemon.economic import filters
from daemon.reconcile import kinds, specs
from daemon.reconcile.controls import Controls


async def _record_in_sync(controls: Controls, events: Iterable[ev.Event],
                          beat: Callable[[], None]) -> None:
    batch = [(e, f"in-sync:{uuid.uuid4().hex}", None) for e in events]
    for start in range(0, len(batch), 2000):
        await controls.log.append_many(batch[start:start + 2000])
        beat()


async def sweep(controls: Controls, spec: specs.RecordSpec[Any, Any, Any, Any], *,
                since: float | None, beat: Callable[[], None]) -> int:
    """Queue the entities of ``spec``'s kind that need something; returns how many were
    queued. ``since``: only records changed after it (POSIX seconds); None: a full sweep."""
    flt = (filters.gt("lastUpdated", clocks.utc(since).replace(microsecond=0))
           if since is not None else None)
    live: dict[int, Any] = {}
    async for rec in spec.listing(controls.client, flt):
        live[spec.number_of(rec)] = rec
        beat()  # a sweep of many pages outlasts the watchdog's window: each read is progress
    queued = 0
    in_sync: list[ev.Event] = []
    managed: list[Any] = []
    for item in spec.items(controls.log.tables, controls.options):
        desired = item.desired
        if desired is not None:
            managed.append(desired)
        if item.state.parked:
            continue
        if desired is None:
            controls.queue.add(spec.kind, item.key)  # parks it with the mapping problem
            queued += 1
            continue
        rec = live.get(spec.number(desired))
        if since is not None and rec is None:
            continue  # unchanged since the last sweep
        action = spec.decide(item, spec.live(rec) if rec is not None else None,
                             controls.options)
        if action.name == "nothing":
            in_sync += spec.in_sync(item, rec)
        elif rec is None or spec.sweep_hint:
            controls.queue.add(spec.kind, item.key, hint=rec)
            queued += 1
        else:
            # No hint: the write carries no version, so the pass merges into a fresh read,
            # not this one, or an edit a person made in between would be lost.
            controls.queue.add(spec.kind, item.key)
            queued += 1
    await _record_in_sync(controls, in_sync, beat)
    if since is None:
        numbers = {spec.number(d) for d in managed}
        strays = spec.strays(managed, [spec.live(r) for r in live.values()], numbers)
        await controls.outcomes.strays(strays)
    return queued


def queue_unread(controls: Controls) -> int:
    """Queue every entity of the kinds sweeps do not read whose progress the log does not show
    complete; returns how many."""
    queued = 0
    for spec in kinds.SPECS:
        if not spec.reads_live:
            keys = spec.out_of_sync(controls.log.tables, controls.options)
            controls.queue.add_many(spec.kind, keys)
            queued += len(keys)
    return queued


def out_of_sync(tables: pj.Tables, options: mp.Options) -> dict[str, list[str]]:
    """Keys of every managed, unparked entity whose log state is not its desired state: what
    a restart queues before the first sweep has read anything."""
    return {spec.kind: spec.out_of_sync(tables, options) for spec in kinds.SPECS}
