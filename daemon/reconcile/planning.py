"""``moment-sync plan``: a read-only diff of desired state against live e-conomic.

For every kind (:data:`daemon.reconcile.kinds.SPECS`) it reads what that kind's live state is
read from (every customer and project in e-conomic, pages of 1000; an invoice's progress is in
the log) and plans each managed entity with the spec's :meth:`~daemon.reconcile.specs.Spec
.decide`, the call the controllers make, so the plan names exactly the action the daemon would
take. Writes nothing, to e-conomic or to the log. The JSON (:class:`daemon.core.plans
.PlanReport`)::

    {"pending": 3, "kinds": {"customer": {"desired": 40, "pending": 1, "actions": [
        {"key": "10001", "action": "update", "fields": ["email"], "detail": ""}]}, ...},
     "parked": [...], "problems": [...], "strays": [...], "economic_only": [...]}

``pending`` counts only changes the daemon would make; parked items, mapping problems, strays
and e-conomic-only records are listed but not counted. :func:`exit_code`: 0 in sync, 2 changes
pending (the command answers 1 itself when this raises).
"""

from __future__ import annotations

from daemon.core import mapping as mp
from daemon.core import plans
from daemon.economic.client import EconomicClient
from daemon.reconcile import kinds, specs, statuses
from daemon.store.eventlog import EventLog


async def plan(log: EventLog, client: EconomicClient, options: mp.Options, *,
               kind: str | None = None) -> plans.PlanReport:
    """The report for every kind, or for ``kind`` only (ValueError for an unknown kind)."""
    tables = log.tables
    chosen = tuple(s for s in kinds.SPECS if s.enabled(options)) if kind is None \
        else (kinds.spec(kind),)
    report = plans.PlanReport()
    for spec in chosen:
        section = report.kinds[spec.kind] = plans.KindPlan()
        live = await spec.read_all(client)
        managed = []
        for item in sorted(spec.items(tables, options), key=lambda i: specs.order(i.key)):
            section.desired += 1
            if item.state.parked:
                report.parked.append(plans.PlanNote(kind=spec.kind, key=item.key,
                                                    reason=item.state.reason))
                continue
            if item.desired is None:
                report.problems.append(plans.PlanNote(kind=spec.kind, key=item.key,
                                                      reason=item.mapped.problem))
                continue
            managed.append(item.desired)
            action = spec.decide(item, live.get(spec.number(item.desired)), options)
            if action.writes:
                section.actions.append(plans.PlannedAction(
                    key=item.key, action=action.name, fields=list(action.fields),
                    detail=action.detail))
                section.pending += 1
                report.pending += 1
            elif action.name != "nothing":
                report.problems.append(plans.PlanNote(kind=spec.kind, key=item.key,
                                                      reason=action.detail))
        if spec.reads_live:
            numbers = {spec.number(d) for d in managed}
            strays = spec.strays(managed, live.values(), numbers)
            report.strays += [plans.PlanStray(kind=s.kind, number=s.number,
                                              managed_key=s.managed_key, note=s.note)
                              for s in strays]
            taken = numbers | {s.number for s in strays}
            report.economic_only += [plans.EconomicOnly(kind=spec.kind, number=n)
                                     for n in sorted(live) if n not in taken]
    known = {(s.kind, s.number) for s in report.strays}
    report.strays += [s for s in statuses.strays(tables)
                      if (s.kind, s.number) not in known and kind in (None, s.kind)]
    return report


def exit_code(report: plans.PlanReport) -> int:
    """0 when nothing is pending, 2 when the daemon would make changes."""
    return 2 if report.pending else 0
