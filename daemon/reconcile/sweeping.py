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

import anyio.lowlevel

from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import projections as pj
from daemon.economic import errors, filters
from daemon.reconcile import kinds, specs
from daemon.reconcile.controls import Controls

PAGE = 1000  # live records diffed, queued and dropped together (the size of a listing page)
STRIDE = 100  # records diffed between two yields to the event loop (a few ms of work)


async def _record_in_sync(controls: Controls, events: Iterable[ev.Event],
                          beat: Callable[[], None]) -> None:
    batch = [(e, f"in-sync:{uuid.uuid4().hex}", None) for e in events]
    for start in range(0, len(batch), 2000):
        await controls.log.append_many(batch[start:start + 2000])
        beat()


async def _settle(controls: Controls, spec: specs.RecordSpec[Any, Any, Any, Any],
                  found: list[tuple[str, Any]], beat: Callable[[], None]) -> int:
    """Diff one page of ``(key, record or None)`` against the log: queue the keys that need
    something, record ``Applied`` for those in sync; returns how many were queued."""
    queued = 0
    in_sync: list[ev.Event] = []
    for n, (key, rec) in enumerate(found, 1):
        if n % STRIDE == 0:
            await anyio.lowlevel.checkpoint()  # a page's diff must not stall the event loop
        item = spec.item(controls.log.tables, controls.options, key)
        if item is None or item.desired is None or item.state.parked:
            continue  # gone, unmappable or parked since the sweep began: not this sweep's
        action = spec.decide(item, spec.live(rec) if rec is not None else None,
                             controls.options)
        if action.name == "nothing":
            in_sync += spec.in_sync(item, rec)
        elif rec is None or spec.sweep_hint:
            controls.queue.add(spec.kind, key, hint=rec)
            queued += 1
        else:
            # No hint: the write carries no version, so the pass merges into a fresh read,
            # not this one, or an edit a person made in between would be lost.
            controls.queue.add(spec.kind, key)
            queued += 1
    await _record_in_sync(controls, in_sync, beat)
    return queued


async def sweep(controls: Controls, spec: specs.RecordSpec[Any, Any, Any, Any], *,
                since: float | None, beat: Callable[[], None]) -> int:
    """Queue the entities of ``spec``'s kind that need something; returns how many were
    queued. ``since``: only records changed after it (POSIX seconds); None: a full sweep.

    Memory: the records are diffed a page at a time and dropped; what is kept across the
    listing is each pending entity's number and key, and the records under numbers Moment
    does not use (the only ones that can be strays)."""
    flt = (filters.gt("lastUpdated", clocks.utc(since).replace(microsecond=0))
           if since is not None else None)
    queued = 0
    pending: dict[int, str] = {}  # number -> key of the unparked, mapped entities not yet read
    numbers: set[int] = set()  # every managed number (parked ones too): not strays
    for item in spec.each_item(controls.log.tables, controls.options):
        desired = item.desired
        if desired is not None:
            numbers.add(spec.number(desired))
        if item.state.parked:
            continue
        if desired is None:
            controls.queue.add(spec.kind, item.key)  # parks it with the mapping problem
            queued += 1
            continue
        pending[spec.number(desired)] = item.key
    others: list[Any] = []  # the live records under numbers Moment does not use
    page: list[tuple[str, Any]] = []
    async for rec in spec.listing(controls.client, flt):
        beat()  # a sweep of many pages outlasts the watchdog's window: each read is progress
        number = spec.number_of(rec)
        key = pending.pop(number, None)
        if key is not None:
            page.append((key, rec))
        elif number not in numbers and since is None:
            others.append(spec.live(rec))
        if len(page) >= PAGE:
            queued += await _settle(controls, spec, page, beat)
            page = []
    queued += await _settle(controls, spec, page, beat)
    if since is None:  # records not found: created (a later incremental sweep: unchanged)
        absent = [(key, None) for key in pending.values()]
        pending.clear()
        for start in range(0, len(absent), PAGE):
            queued += await _settle(controls, spec, absent[start:start + PAGE], beat)
        managed = ([i.desired for i in spec.each_item(controls.log.tables, controls.options)
                    if i.desired is not None] if others else [])
        await controls.outcomes.strays(spec.strays(managed, others, numbers))
    return queued


async def sweep_records(controls: Controls, *, since: float | None, beat: Callable[[], None]
                        ) -> tuple[int, errors.EconomicError | None, errors.EconomicError | None]:
    """Sweep every record kind; returns (keys queued, a retryable failure, a refusal). A kind
    e-conomic refuses to list for good (no project module) has its out-of-sync keys queued
    unread, so its controller parks them with the reason; a retryable failure skips its kind
    and the others are still swept."""
    queued = 0
    retry: errors.EconomicError | None = None
    refused: errors.EconomicError | None = None
    for spec in kinds.SPECS:
        if not isinstance(spec, specs.RecordSpec):
            continue  # its progress is in the log: see queue_unread
        try:
            queued += await sweep(controls, spec, since=since, beat=beat)
        except errors.EconomicError as err:
            if err.retryable:
                retry = err
                continue
            refused = err
            keys = spec.out_of_sync(controls.log.tables, controls.options)
            controls.queue.add_many(spec.kind, keys)
            queued += len(keys)
    return queued, retry, refused


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
