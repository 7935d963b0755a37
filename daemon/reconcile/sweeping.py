"""Sweeps: read e-conomic in pages and queue exactly the keys that need a write.

A full sweep lists every customer (legacy pages of 1000, so N customers cost ceil(N/1000)
reads) and every project (cursor pages of 1000), diffs each managed record against its desired
state, queues only those that differ or are missing (with the record just read, so it is not
read again), records ``Applied`` for records found in sync that the log did not know were,
and reports strays. An incremental sweep reads only records whose ``lastUpdated`` is after the
previous sweep's start, less an overlap (clocks and second-resolution stamps), so an edit made
in e-conomic is seen within ``reconcile_interval``; deletions show only in full sweeps.
Invoices are not read by sweeps: every invoice whose transfer is not complete is queued.
Nothing here writes to e-conomic.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.economic import filters, payloads
from daemon.reconcile import customers, projects
from daemon.reconcile.outcomes import Context


def _stamp(posix: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(posix, dt.UTC).replace(microsecond=0)


async def _record_in_sync(ctx: Context, events: Iterable[ev.Event]) -> None:
    batch = [(e, f"in-sync:{uuid.uuid4().hex}", None) for e in events]
    for start in range(0, len(batch), 2000):
        await ctx.log.append_many(batch[start:start + 2000])
        ctx.beat()


async def sweep_customers(ctx: Context, *, since: float | None = None) -> int:
    """Queue the customers that differ; returns how many were queued."""
    flt = filters.gt("lastUpdated", _stamp(since)) if since is not None else None
    live: dict[int, payloads.Customer] = {}
    async for c in ctx.client.iter_customers(filter=flt):
        live[c.customerNumber] = c
        ctx.beat()  # a sweep of many pages outlasts the watchdog's window: each read is progress
    tables = ctx.log.tables
    queued = 0
    in_sync: list[ev.Event] = []
    managed: list[mp.CustomerFields] = []
    numbers: set[int] = set()
    for key, row in tables.customers().items():
        if row.gone:
            continue
        m = mp.map_customer(row.fact, ctx.options)
        if m.value is not None:
            numbers.add(m.value.number)
            managed.append(m.value)
        state = tables.state(customers.KIND, key)
        if state.parked:
            continue
        if m.value is None:
            ctx.queue.add(customers.KIND, key)  # parks it with the mapping problem
            queued += 1
            continue
        rec = live.get(m.value.number)
        if since is not None and rec is None:
            continue  # unchanged since the last sweep
        action = plans.plan_customer(
            m.value, customers.live_customer(rec) if rec else None,
            applied_before=bool(state.applied_hash) or state.economic_number is not None)
        content = mp.fields_hash(m.value)
        if action.writes:
            if rec is None:
                ctx.queue.add(customers.KIND, key, hint=None)  # known absent: created as is
            else:
                # No hint: the legacy PUT replaces the whole record and carries no version, so
                # the pass merges into a fresh read, not this one, or an edit a person made
                # in between would be lost.
                ctx.queue.add(customers.KIND, key)
            queued += 1
        elif state.applied_hash != content or state.intents.get("put"):
            in_sync.append(ev.Applied(kind=customers.KIND, key=key, action="put",
                                      content_hash=content, economic_number=m.value.number,
                                      warnings=m.warnings))
    await _record_in_sync(ctx, in_sync)
    if since is None:
        strays = plans.find_strays(managed, [customers.live_customer(c) for c in live.values()],
                                   numbers)
        await customers.record_strays(ctx, strays)
    return queued


async def sweep_projects(ctx: Context, *, since: float | None = None) -> int:
    flt = filters.gt("lastUpdated", _stamp(since)) if since is not None else None
    live: dict[int, payloads.Project] = {}
    async for p in ctx.client.iter_projects(filter=flt):
        live[p.number] = p
        ctx.beat()
    tables = ctx.log.tables
    queued = 0
    in_sync: list[ev.Event] = []
    managed: list[mp.ProjectFields] = []
    numbers: set[int] = set()
    for key, row in tables.projects().items():
        if row.gone:
            continue
        m = mp.map_project(row.fact, ctx.options)
        if m.value is not None:
            numbers.add(m.value.number)
            managed.append(m.value)
        state = tables.state(projects.KIND, key)
        if state.parked:
            continue
        if m.value is None:
            ctx.queue.add(projects.KIND, key)
            queued += 1
            continue
        rec = live.get(m.value.number)
        if since is not None and rec is None:
            continue
        action = plans.plan_project(
            m.value, projects.live_project(rec) if rec else None,
            applied_before=bool(state.applied_hash) or state.economic_number is not None)
        content = mp.fields_hash(m.value)
        if action.writes or action.name == "report_closed":
            ctx.queue.add(projects.KIND, key, hint=rec)
            queued += 1
        elif state.applied_hash != content:
            in_sync.append(ev.Applied(kind=projects.KIND, key=key, action="in_sync",
                                      content_hash=content, economic_number=m.value.number,
                                      object_version=rec.objectVersion or "" if rec else "",
                                      warnings=m.warnings))
    await _record_in_sync(ctx, in_sync)
    if since is None:
        strays = plans.find_project_strays(
            managed, [projects.live_project(p) for p in live.values()], numbers)
        await customers.record_strays(ctx, strays)
    return queued


def queue_invoices(ctx: Context) -> int:
    """Queue every managed invoice whose transfer the log does not show complete."""
    tables = ctx.log.tables
    queued = 0
    for key, row in tables.invoices().items():
        state = tables.state("invoice", key)
        if row.gone or state.parked:
            continue
        m = mp.map_invoice(row.fact, ctx.options)
        if m.value is None or state.applied_hash != mp.fields_hash(m.value):
            ctx.queue.add("invoice", key)
            queued += 1
    return queued


def out_of_sync(ctx: Context) -> dict[str, list[str]]:
    """Keys of every managed, unparked entity whose log state is not its desired state: what
    a restart queues before the first sweep has read anything."""
    tables = ctx.log.tables
    out: dict[str, list[str]] = {"customer": [], "project": [], "invoice": []}
    for key, crow in tables.customers().items():
        st = tables.state("customer", key)
        cm = mp.map_customer(crow.fact, ctx.options)
        if not crow.gone and not st.parked and (
                cm.value is None or st.applied_hash != mp.fields_hash(cm.value)):
            out["customer"].append(key)
    for key, prow in tables.projects().items():
        st = tables.state("project", key)
        pm = mp.map_project(prow.fact, ctx.options)
        if not prow.gone and not st.parked and (
                pm.value is None or st.applied_hash != mp.fields_hash(pm.value)):
            out["project"].append(key)
    for key, irow in tables.invoices().items():
        st = tables.state("invoice", key)
        im = mp.map_invoice(irow.fact, ctx.options)
        if not irow.gone and not st.parked and (
                im.value is None or st.applied_hash != mp.fields_hash(im.value)):
            out["invoice"].append(key)
    return out
