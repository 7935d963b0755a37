"""Drift and dependencies: what people do in e-conomic is put back (fields Moment owns only),
missing records are re-created under Moment's number, strays are reported and never deleted;
an invoice waits for its customer and project, or parks with their reason."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.reconcile import planning
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.clocks import T0, FakeClock
from tests.reconcile.conftest import (
    OPTIONS,
    customer,
    invoice,
    project,
    reconciler,
    record,
    record_invoices,
    settle,
    until,
)

pytestmark = pytest.mark.anyio


class Observer:
    def __init__(self) -> None:
        self.parks: list[tuple[str, str, str]] = []
        self.skipped: list[tuple[str, str]] = []
        self.drift: list[tuple[str, str, list[str]]] = []
        self.warnings: list[tuple[str, str, str]] = []
        self.mismatches: list[tuple[str, list[str], str]] = []

    def parked(self, kind: str, key: str, reason: str) -> None:
        self.parks.append((kind, key, reason))

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        self.skipped.append((invoice, reason))

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        self.drift.append((kind, key, fields))

    def warned(self, kind: str, key: str, warning: str) -> None:
        self.warnings.append((kind, key, warning))

    def booked_mismatch(self, invoice: str, fields: list[str], note: str) -> None:
        self.mismatches.append((invoice, fields, note))


async def test_drift_is_repaired_and_the_stray_reported(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 6)] + [project(n, n) for n in (1, 2)])
    obs = Observer()
    rec = reconciler(log, client, observer=obs, reconcile_interval=3600.0)
    a = sandbox.agreement
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        a.customers[1]["telephoneAndFaxNumber"] = "+45 12 34 56 78"  # kept by people
        a.edit_customer(1, {"name": "Renamed by hand"})
        a.edit_customer(2, {"email": "other@example.dk"})
        del a.projects[2]
        a.renumber_customer(3, 903)
        report = await rec.plan()
        assert planning.exit_code(report) == 2
        assert sorted((x.key, x.action, tuple(x.fields))
                      for k in ("customer", "project") for x in report.kinds[k].actions
                      ) == [("1", "update", ("name",)), ("2", "recreate", ()),
                            ("2", "update", ("email",)), ("3", "recreate", ())]
        assert [s.number for s in report.strays] == [903]
        sandbox.served.clear()
        rec.request_full()
        await settle(rec)
        tg.cancel_scope.cancel()
    assert a.customers[1]["name"] == "Kunde 1 ApS"
    assert a.customers[1]["telephoneAndFaxNumber"] == "+45 12 34 56 78"
    assert a.customers[2]["email"] == "k2@example.dk"
    assert a.projects[2]["name"] == "Projekt 2" and a.projects[2]["customerNumber"] == 2
    assert a.customers[3]["name"] == "Kunde 3 ApS"
    assert a.customers[903]["name"] == "Kunde 3 ApS"  # the stray is left alone
    writes = sorted(f"{s.method} {s.path}" for s in sandbox.served if s.method != "GET")
    assert writes == ["POST /apis/projectsapi/v1.1.0/Projects", "PUT /rest/customers/1",
                      "PUT /rest/customers/2", "PUT /rest/customers/3"]
    status = rec.status()
    assert status.reconcile.drift_repaired == 4
    assert [(s.kind, s.number, s.managed_key) for s in status.reconcile.strays
            ] == [("customer", 903, "3")]
    assert sorted((k, key) for k, key, _f in obs.drift) == [
        ("customer", "1"), ("customer", "2"), ("customer", "3"), ("project", "2")]
    report = await rec.plan()
    assert planning.exit_code(report) == 0 and report.strays[0].number == 903


async def test_incremental_sweep_sees_an_edit(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 4)])
    rec = reconciler(log, client, reconcile_interval=0.25)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        assert await settle(rec) == 0.0
        sandbox.served.clear()
        sandbox.agreement.edit_customer(2, {"city": "Odense"})
        # put back by the first incremental sweep, one interval after the full one
        assert await until(
            rec, lambda: sandbox.agreement.customers[2].get("city") == "Aarhus") == 0.25
        assert rec.last_incremental_at == rec.clock.now() and rec.last_full_at == T0
        await settle(rec)
        tg.cancel_scope.cancel()
    served = list(sandbox.served)
    reads = [s for s in served if s.method == "GET" and s.path == "/rest/customers"]
    # the sweeps list only what changed since the last one ...
    assert any("lastUpdated" in s.query for s in reads)
    # ... and the repair merges into a fresh read of the one drifted customer, just before its
    # PUT (which replaces the whole record), not into the sweep's older copy
    fresh = [s for s in reads if "lastUpdated" not in s.query]
    assert [s.query for s in fresh] == ["skippages=0&pagesize=1000&filter=customerNumber$in:[2]"]
    writes = [s for s in served if s.method != "GET"]
    assert [s.path for s in writes] == ["/rest/customers/2"]
    assert served.index(fresh[0]) < served.index(writes[0])


async def test_invoice_waits_for_its_customer_then_goes_through(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record_invoices(log, [(77, 7, 8)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert not sandbox.agreement.draft_entries and not sandbox.agreement.booked_entries
        await record(log, [project(8, 7)])  # the project first: it waits for its customer
        await settle(rec)
        assert not sandbox.agreement.projects
        await record(log, [customer(7)])
        # the customer, then what waited on it, then the invoice: no time passes
        assert await until(
            rec, lambda: rec.status().entities["invoice"].in_sync == 1) == 0.0
        tg.cancel_scope.cancel()
    a = sandbox.agreement
    assert list(a.customers) == [7] and list(a.projects) == [8]
    assert [b["customerInvoiceNumber"] for b in a.booked_entries.values()
            if b.get("customerInvoiceNumber")] == [77]
    order = [s.path for s in sandbox.served if s.method != "GET"]
    assert order[:3] == ["/rest/customers/7", "/apis/projectsapi/v1.1.0/Projects",
                         "/apis/journalsapi/v15.0.0/draft-entries/bulk"]


async def test_parked_dependency_parks_the_invoice_and_both_go_through_once_fixed(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    """With ``invoice_without_project = "wait"`` (no longer the default) the invoice waits."""
    sandbox.agreement.project_module = False
    await record(log, [customer(1), project(2, 1)])
    await record_invoices(log, [(5, 1, 2)])
    obs = Observer()
    rec = reconciler(log, client, observer=obs,
                     options=msgspec.structs.replace(OPTIONS, invoice_without_project="wait"))
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        proj = log.tables.state("project", "2")
        inv = log.tables.state("invoice", "5")
        assert proj.parked and "project module" in proj.reason
        assert inv.parked and proj.reason in inv.reason
        assert [(k, key) for k, key, _r in obs.parks] == [("project", "2"), ("invoice", "5")]
        assert rec.status().entities["invoice"].parked == 1
        sandbox.agreement.project_module = True
        await rec.retry("project", "2")
        await until(rec, lambda: rec.status().entities["invoice"].in_sync == 1)
        tg.cancel_scope.cancel()
    assert not log.tables.state("invoice", "5").parked
    assert list(sandbox.agreement.projects) == [2]


async def test_unknown_vat_code_parks_with_a_reason_and_others_go_on(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1, vat_code="MARS"), customer(2)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        tg.cancel_scope.cancel()
    st = log.tables.state("customer", "1")
    assert st.parked and "'MARS'" in st.reason
    assert list(sandbox.agreement.customers) == [2]
    events = [r.event for r in await log.read_entity("customer", "1")]
    assert any(isinstance(e, ev.Parked) for e in events)


async def test_pdf_the_agreement_cannot_store_is_a_warning_and_the_entry_is_booked(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    sandbox.agreement.attachments = "forbidden"
    await record(log, [customer(1)])
    await record_invoices(log, [(11, 1, None)])
    obs = Observer()
    rec = reconciler(log, client, observer=obs)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        tg.cancel_scope.cancel()
    st = log.tables.state("invoice", "11")
    assert st.booked and st.pdf_done and not st.parked
    assert any("PDF not attached" in w for w in st.warnings)
    assert [i for i, _r in obs.skipped] == ["11"]
    assert rec.status().entities["invoice"].in_sync == 1


async def test_a_booked_invoice_that_changed_in_moment_is_reported_never_edited(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1)])
    await record_invoices(log, [(21, 1, None)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert log.tables.state("invoice", "21").booked
        sandbox.served.clear()
        changed = invoice(21, 1, None, sha=log.tables.invoices()["21"].fact.pdf_sha256,
                          total_including_vat="999.00")
        await record(log, [changed])
        await until(rec, lambda: any("credit note" in w
                                     for w in log.tables.state("invoice", "21").warnings))
        await settle(rec)
        tg.cancel_scope.cancel()
    assert [s for s in sandbox.served if s.method != "GET"] == []
    events = [r.event for r in await log.read_entity("invoice", "21")]
    assert sum(isinstance(e, ev.BookedMismatch) for e in events) == 1
    report = await rec.plan(kind="invoice")
    assert planning.exit_code(report) == 0
    assert [p.key for p in report.problems] == ["21"]


async def test_a_parked_item_fixed_in_moment_goes_through_and_a_full_reconcile_retries(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    sandbox.agreement.project_module = False
    await record(log, [customer(1, vat_code="MARS"), customer(2), project(3, 2)])
    rec = reconciler(log, client, reconcile_interval=0.25)
    clock = rec.clock
    assert isinstance(clock, FakeClock)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert log.tables.state("customer", "1").parked
        assert log.tables.state("project", "3").parked
        before = len(sandbox.requests(path_contains="/Projects"))
        await clock.run(1.0, settle=rec.until_settled)  # four sweep intervals
        # a refused listing is not hammered: one listing per sweep
        assert len(sandbox.requests(path_contains="/Projects")) - before == 4
        await record(log, [customer(1, vat_code="EU")])  # fixed in Moment
        await until(rec, lambda: 1 in sandbox.agreement.customers)
        assert sandbox.agreement.customers[1]["vatZone"]["vatZoneNumber"] == 2
        sandbox.agreement.project_module = True  # fixed in e-conomic
        assert await rec.reconcile_now() >= 1
        await until(rec, lambda: 3 in sandbox.agreement.projects)
        tg.cancel_scope.cancel()
    assert not log.tables.state("project", "3").parked
    unparked = [r.event for r in await log.read_entity("project", "3") if r.type == "unparked"]
    assert [getattr(e, "by", "") for e in unparked] == ["full reconcile"]


async def test_an_object_ingest_parked_is_alerted(client: EconomicClient, log: EventLog) -> None:
    """A second Moment invoice claiming a recorded number is parked by ingest: the person
    hears of it the way they hear of reconcile's parkings."""
    obs = Observer()
    rec = reconciler(log, client, observer=obs)
    reason = ("Moment invoice id 9 (FINALIZED, 999.00 DKK) claims invoice number 1, already "
              "recorded for Moment invoice id 8; the first is kept and this one is not "
              "transferred: give it its own number in Moment")
    await log.append(ev.Parked(kind="invoice", key="id:9", reason=reason, source="ingest"),
                     idempotency_key="parked:invoice:9:conflict")
    await rec.intake.pull()
    assert obs.parks == [("invoice", "id:9", reason)]
