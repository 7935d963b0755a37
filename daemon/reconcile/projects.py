"""The project controller: Moment's projects into projectsapi ``/Projects``.

A project waits for its customer: while the customer is not in e-conomic yet the project is
held under it in the queue; if the customer is parked, the project is parked with the same
reason, and both go through once the customer is retried. Live records are read before any
write (``number$in:[...]``, 200 a call) unless a sweep just read them. ``POST`` creates under
Moment's number; ``PUT`` replaces the whole project with the ``objectVersion`` read, changing
only the fields Moment owns (name, customer, not barred). A 409 (someone wrote in between) is
retried after a fresh read. A closed project is reported: no client can reopen it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.economic import errors, filters, payloads
from daemon.reconcile import batching
from daemon.reconcile.outcomes import Context

KIND = "project"


def live_project(p: payloads.Project) -> plans.LiveProject:
    return plans.LiveProject(number=p.number, name=p.name, customer_number=p.customerNumber,
                             project_group=p.projectGroupNumber, closed=p.isClosed,
                             barred=p.isBarred, object_version=p.objectVersion or "",
                             last_updated=p.lastUpdated or "")


def written(desired: mp.ProjectFields, live: payloads.Project | None) -> payloads.ProjectWrite:
    """The project to POST (``live`` None) or PUT (live with Moment's fields replaced)."""
    if live is None:
        return payloads.ProjectWrite(number=desired.number, name=desired.name,
                                     projectGroupNumber=desired.project_group,
                                     customerNumber=desired.customer_number)
    base = payloads.writable(live, payloads.ProjectWrite)
    return msgspec.structs.replace(base, number=desired.number, name=desired.name,
                                   customerNumber=desired.customer_number, isBarred=False,
                                   objectVersion=live.objectVersion)


async def fetch(ctx: Context, numbers: Sequence[int]) -> dict[int, payloads.Project]:
    found: dict[int, payloads.Project] = {}
    for chunk in filters.chunks(sorted(set(numbers))):
        async for p in ctx.client.iter_projects(filter=filters.in_("number", chunk)):
            found[p.number] = p
    return found


def desired_of(ctx: Context, key: str) -> tuple[ev.ProjectUpserted, mp.Mapped[mp.ProjectFields]
                                                ] | None:
    row = ctx.log.tables.projects().get(key)
    if row is None or row.gone:
        return None
    return row.fact, mp.map_project(row.fact, ctx.options)


async def blocked(ctx: Context, kind: str, key: str, dep_kind: str, dep_key: str) -> bool:
    """True when ``kind:key`` cannot go yet because ``dep_kind:dep_key`` is not in e-conomic
    (not applied, or not even known from Moment yet): it waits under the dependency, or parks
    with the dependency's reason when that is parked."""
    if not dep_key:
        return False
    tables = ctx.log.tables
    rows = tables.customers() if dep_kind == "customer" else tables.projects()
    row = rows.get(dep_key)
    if row is not None and row.gone:
        return False  # no longer managed: e-conomic decides whether it exists
    dep = tables.state(dep_kind, dep_key)
    if dep.parked:
        await ctx.park(kind, key, reason=f"waiting for {dep_kind} {dep_key}, which is parked: "
                                         f"{dep.reason}",
                       last_error=f"waiting on {dep_kind}:{dep_key}")
        return True
    if not dep.applied_hash:
        ctx.queue.wait_on((dep_kind, dep_key), (kind, key))
        if row is not None and not ctx.queue.queued(dep_kind, dep_key):
            ctx.queue.add(dep_kind, dep_key)
        return True
    return False


class Projects:
    kind = KIND

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def reconcile(self, keys: Sequence[str]) -> None:
        ctx = self.ctx
        todo: dict[str, mp.Mapped[mp.ProjectFields]] = {}
        for key in keys:
            got = desired_of(ctx, key)
            if got is None or ctx.log.tables.state(KIND, key).parked:
                continue
            fact, m = got
            if m.value is None:
                await ctx.park(KIND, key, reason=m.problem)
                continue
            if await blocked(ctx, KIND, key, "customer", fact.customer_number):
                continue
            todo[key] = m
        live = await batching.read_live(ctx, KIND, todo, payloads.Project, fetch, "update")
        await batching.apply_all(ctx, todo, live, self.apply)

    async def apply(self, key: str, m: mp.Mapped[mp.ProjectFields],
                    live: payloads.Project | None) -> None:
        ctx = self.ctx
        desired = m.value
        assert desired is not None
        state = ctx.log.tables.state(KIND, key)
        applied_before = bool(state.applied_hash) or state.economic_number is not None
        action = plans.plan_project(desired, live_project(live) if live else None,
                                    applied_before=applied_before)
        content = mp.fields_hash(desired)
        if action.name == "report_closed":
            await ctx.park(KIND, key, reason=action.detail)
            return
        if not action.writes:
            if state.applied_hash != content or state.intents:
                events: list[ev.Event] = [
                    ev.Applied(kind=KIND, key=key, action=a, content_hash=content,
                               economic_number=desired.number,
                               object_version=live.objectVersion or "" if live else "",
                               warnings=m.warnings)
                    for a in (*state.intents, "in_sync")]
                await ctx.log.append_many([
                    (e, f"applied:{KIND}:{key}:{content}:{uuid.uuid4().hex}", None)
                    for e in events])
            ctx.queue.release(KIND, key)
            return
        verb = "create" if live is None else "update"
        version = (live.objectVersion or "") if live is not None else ""
        ikey = await ctx.intent(KIND, key, verb, f"{content}{version}")
        try:
            if live is None:
                await ctx.client.create_project(written(desired, None), idempotency_key=ikey)
            else:
                await ctx.client.put_project(written(desired, live), idempotency_key=ikey)
        except errors.Conflict as err:  # written in between: read again, then write
            err.retryable = True
            await ctx.fail(KIND, key, verb, err)
            return
        except errors.EconomicError as err:
            await ctx.refused(KIND, key, verb, err)
            return
        out: list[ev.Event] = [ev.Applied(kind=KIND, key=key, action=verb, content_hash=content,
                                          economic_number=desired.number, warnings=m.warnings)]
        drift: list[str] = []
        if action.name == "recreate":
            drift = ["missing"]
        elif action.name == "update" and state.applied_hash == content:
            # what we last applied is still what Moment wants: e-conomic was edited (drift);
            # otherwise Moment changed and this is an ordinary update
            drift = list(action.fields)
        if drift:
            out.append(ev.DriftRepaired(kind=KIND, key=key, fields=tuple(drift),
                                        detail=action.detail or "changed in e-conomic"))
        await ctx.log.append_many([(e, f"{type(e).__name__}:{ikey}", None) for e in out])
        if drift:
            ctx.observer.drift_repaired(KIND, key, drift)
        ctx.queue.release(KIND, key)
