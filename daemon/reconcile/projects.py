"""The project kind: Moment's projects as projectsapi ``/Projects`` records.

The spec (:data:`SPEC`) says how a project is read (``number$in:[...]``, 200 a call; cursor
pages of 1000 for sweeps), planned (:func:`daemon.core.plans.plan_project`) and written, and
that it depends on its customer: while the customer is not in e-conomic yet the project waits
under it; if the customer is parked, the project is parked with the same reason, and both go
through once the customer is retried. ``POST`` creates under Moment's number; ``PUT`` replaces
the whole project with the ``objectVersion`` read, changing only the fields Moment owns (name,
customer, not barred), so a sweep's read may travel to the write: a 409 (someone wrote in
between) is retried after a fresh read. A closed project is reported: no client can reopen it.
A project without a customer goes into ``internal_project_group`` (the mapping parks it while
that is 0), and one whose customer Moment removed is moved there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

import msgspec

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.core import projections as pj
from daemon.economic import filters, payloads
from daemon.economic.client import EconomicClient
from daemon.reconcile import specs

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
    # a project whose customer Moment removed moves to the internal group (an external group
    # refuses a project without a customer); otherwise the group is the accountant's
    group = (desired.project_group if desired.customer_number is None
             and live.customerNumber is not None else live.projectGroupNumber)
    return msgspec.structs.replace(base, number=desired.number, name=desired.name,
                                   customerNumber=desired.customer_number, isBarred=False,
                                   projectGroupNumber=group, objectVersion=live.objectVersion)


class ProjectSpec(specs.RecordSpec[ev.ProjectUpserted, mp.ProjectFields,
                                   plans.LiveProject, payloads.Project]):
    kind = KIND
    record_type = payloads.Project
    depends_on = (specs.Dependency(kind="customer", field="customer_number"),)
    number_field = "number"
    verbs = ("create", "update")
    in_sync_action = "in_sync"
    sweep_hint = True

    def rows(self, tables: pj.Tables) -> Mapping[str, specs.Fact[ev.ProjectUpserted]]:
        return tables.projects()

    def map(self, fact: ev.ProjectUpserted, options: mp.Options
            ) -> mp.Mapped[mp.ProjectFields]:
        return mp.map_project(fact, options)

    def number(self, desired: mp.ProjectFields) -> int:
        return desired.number

    def live(self, record: payloads.Project) -> plans.LiveProject:
        return live_project(record)

    def number_of(self, record: payloads.Project) -> int:
        return record.number

    def listing(self, client: EconomicClient, flt: filters.Filter | None
                ) -> AsyncIterator[payloads.Project]:
        return client.iter_projects(filter=flt)

    def version(self, live: payloads.Project | None) -> str:
        return (live.objectVersion or "") if live is not None else ""

    def plan(self, desired: mp.ProjectFields, live: plans.LiveProject | None, *,
             applied_before: bool) -> plans.Action:
        return plans.plan_project(desired, live, applied_before=applied_before)

    async def write(self, client: EconomicClient, desired: mp.ProjectFields,
                    live: payloads.Project | None, *, idempotency_key: str) -> None:
        if live is None:
            await client.create_project(written(desired, None), idempotency_key=idempotency_key)
        else:
            await client.put_project(written(desired, live), idempotency_key=idempotency_key)

    def strays(self, managed: Sequence[mp.ProjectFields], live: Iterable[plans.LiveProject],
               numbers: set[int]) -> list[plans.Stray]:
        return plans.find_project_strays(managed, live, numbers)


SPEC = ProjectSpec()
