"""``moment-sync plan``: a read-only diff of desired state against live e-conomic.

Reads every customer and project in e-conomic (pages of 1000), plans each managed entity with
the same pure planner the controllers use, and reads invoices' progress from the log. Writes
nothing, to e-conomic or to the log. The JSON::

    {"pending": 3, "kinds": {"customer": {"desired": 40, "pending": 1, "actions": [
        {"key": "10001", "action": "update", "fields": ["email"], "detail": ""}]}, ...},
     "parked": [...], "problems": [...], "strays": [...], "economic_only": [...]}

``pending`` counts only changes the daemon would make; parked items, mapping problems, strays
and e-conomic-only records are listed but not counted. :func:`exit_code`: 0 in sync, 2 changes
pending (the command answers 1 itself when this raises).
"""

from __future__ import annotations

import time
from typing import Any

from daemon.core import mapping as mp
from daemon.core import plans
from daemon.economic import payloads
from daemon.economic.client import EconomicClient
from daemon.reconcile import customers, projects, statuses
from daemon.reconcile.outcomes import Context
from daemon.reconcile.queueing import WorkQueue
from daemon.store.eventlog import EventLog

KINDS = ("customer", "project", "invoice")


def _entry(key: str, action: plans.Action) -> dict[str, Any]:
    return {"key": key, "action": action.name, "fields": list(action.fields),
            "detail": action.detail}


async def plan_report(ctx: Context, *, kind: str | None = None) -> dict[str, Any]:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    tables = ctx.log.tables
    report: dict[str, Any] = {"pending": 0, "kinds": {}, "parked": [], "problems": [],
                              "strays": [], "economic_only": []}

    def add(k: str, key: str, action: plans.Action) -> None:
        section = report["kinds"][k]
        if action.writes:
            section["actions"].append(_entry(key, action))
            section["pending"] += 1
            report["pending"] += 1
        elif action.name != "nothing":
            report["problems"].append({"kind": k, "key": key, "reason": action.detail})

    for k in KINDS:
        if kind in (None, k):
            report["kinds"][k] = {"desired": 0, "pending": 0, "actions": []}
    if kind in (None, "customer"):
        live_c = {c.customerNumber: c async for c in ctx.client.iter_customers()}
        managed_c: list[mp.CustomerFields] = []
        for key, row in sorted(tables.customers().items()):
            if row.gone:
                continue
            report["kinds"]["customer"]["desired"] += 1
            st = tables.state("customer", key)
            m = mp.map_customer(row.fact, ctx.options)
            if st.parked:
                report["parked"].append({"kind": "customer", "key": key, "reason": st.reason})
                continue
            if m.value is None:
                report["problems"].append({"kind": "customer", "key": key, "reason": m.problem})
                continue
            managed_c.append(m.value)
            rec = live_c.get(m.value.number)
            add("customer", key, plans.plan_customer(
                m.value, customers.live_customer(rec) if rec else None,
                applied_before=bool(st.applied_hash)))
        numbers = {c.number for c in managed_c}
        strays = plans.find_strays(managed_c, [customers.live_customer(c)
                                               for c in live_c.values()], numbers)
        stray_numbers = {s.number for s in strays}
        report["strays"] += [{"kind": s.kind, "number": s.number, "managed_key": s.managed_key,
                              "note": s.note} for s in strays]
        report["economic_only"] += [{"kind": "customer", "number": n} for n in sorted(live_c)
                                    if n not in numbers and n not in stray_numbers]
    if kind in (None, "project"):
        live_p: dict[int, payloads.Project] = {p.number: p async for p in
                                               ctx.client.iter_projects()}
        managed_p: list[mp.ProjectFields] = []
        for key, prow in sorted(tables.projects().items()):
            if prow.gone:
                continue
            report["kinds"]["project"]["desired"] += 1
            st = tables.state("project", key)
            pm = mp.map_project(prow.fact, ctx.options)
            if st.parked:
                report["parked"].append({"kind": "project", "key": key, "reason": st.reason})
                continue
            if pm.value is None:
                report["problems"].append({"kind": "project", "key": key, "reason": pm.problem})
                continue
            managed_p.append(pm.value)
            prec = live_p.get(pm.value.number)
            add("project", key, plans.plan_project(
                pm.value, projects.live_project(prec) if prec else None,
                applied_before=bool(st.applied_hash)))
        pnumbers = {p.number for p in managed_p}
        pstrays = plans.find_project_strays(
            managed_p, [projects.live_project(p) for p in live_p.values()], pnumbers)
        report["strays"] += [{"kind": s.kind, "number": s.number, "managed_key": s.managed_key,
                              "note": s.note} for s in pstrays]
        taken = pnumbers | {s.number for s in pstrays}
        report["economic_only"] += [{"kind": "project", "number": n} for n in sorted(live_p)
                                    if n not in taken]
    if kind in (None, "invoice"):
        for key, irow in sorted(tables.invoices().items(), key=lambda kv: kv[0].zfill(12)):
            if irow.gone:
                continue
            report["kinds"]["invoice"]["desired"] += 1
            st = tables.state("invoice", key)
            im = mp.map_invoice(irow.fact, ctx.options)
            if st.parked:
                report["parked"].append({"kind": "invoice", "key": key, "reason": st.reason})
                continue
            if im.value is None:
                report["problems"].append({"kind": "invoice", "key": key, "reason": im.problem})
                continue
            progress = plans.InvoiceProgress(entry_created=st.voucher_number is not None,
                                             pdf_done=st.pdf_done, booked=st.booked,
                                             applied_hash=st.applied_hash)
            add("invoice", key, plans.plan_invoice(
                im.value, progress, include_pdf=ctx.options.include_pdf,
                auto_book=ctx.options.auto_book, desired_hash=mp.fields_hash(im.value)))
    known = {(s["kind"], s["number"]) for s in report["strays"]}
    report["strays"] += [s for s in statuses.strays(tables)
                         if (s["kind"], s["number"]) not in known
                         and kind in (None, s["kind"])]
    return report


async def plan(log: EventLog, client: EconomicClient, options: mp.Options, *,
               kind: str | None = None) -> dict[str, Any]:
    """The report without a running daemon (``moment-sync plan`` when none runs)."""
    ctx = Context(log=log, client=client, options=options, queue=WorkQueue(now=time.monotonic))
    return await plan_report(ctx, kind=kind)


def exit_code(report: dict[str, Any]) -> int:
    """0 when nothing is pending, 2 when the daemon would make changes."""
    return 2 if report.get("pending") else 0
