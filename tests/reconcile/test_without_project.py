"""Projects must not hold the books hostage (DESIGN.md, "Projects"): with
``invoice_without_project = "book"`` (the default) an invoice whose project is parked is booked
without ``projectNumber``, with a warning naming the project and why, recorded on the invoice
and alerted; it stays so once the project goes through. An invoice whose customer is parked
still waits."""

from __future__ import annotations

import json

import anyio
import pytest

from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import (
    customer,
    project,
    reconciler,
    record,
    record_invoices,
    settle,
    until,
)
from tests.reconcile.test_drift import Observer

pytestmark = pytest.mark.anyio


def entries_of(sandbox: EconomicSandbox, invoice: int) -> list[dict[str, object]]:
    """The booked rows that carry the invoice's number (its customer row)."""
    return [b for b in sandbox.agreement.booked_entries.values()
            if b.get("customerInvoiceNumber") == invoice]


async def test_an_invoice_whose_project_is_parked_is_booked_without_it_with_a_warning(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    sandbox.agreement.project_module = False
    await record(log, [customer(1), project(2, 1)])
    await record_invoices(log, [(5, 1, 2), (6, 1, None)])
    obs = Observer()
    rec = reconciler(log, client, observer=obs)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert log.tables.state("project", "2").parked
        inv = log.tables.state("invoice", "5")
        assert inv.booked and not inv.parked
        warning = inv.without["project:2"]
        assert "project 2" in warning and "project module" in warning
        assert warning in inv.warnings
        assert obs.warnings == [("invoice", "5", warning)]
        assert [k for k, _key, _r in obs.parks] == ["project"]
        drafts = [r for r in sandbox.served if r.path.endswith("/draft-entries/bulk")]
        sent = [e for r in drafts for e in json.loads(r.body)["entries"]]
        assert sorted(e["customerInvoiceNumber"] for e in sent) == ["5", "6"]
        assert all(e.get("projectNumber") is None for e in sent)
        events = [type(r.event) for r in await log.read_entity("invoice", "5")]
        assert events.count(ev.WentWithout) == 1
        # the project goes through later: the booked invoice is not reported as changed
        sandbox.agreement.project_module = True
        await rec.retry("project", "2")
        await until(rec, lambda: log.tables.state("project", "2").applied_hash != "")
        await rec.reconcile_now()
        await settle(rec)
        tg.cancel_scope.cancel()
    inv = log.tables.state("invoice", "5")
    assert not any("changed in Moment" in w for w in inv.warnings)
    assert rec.status().entities["invoice"].in_sync == 2
    assert entries_of(sandbox, 5) and entries_of(sandbox, 6)


async def test_an_invoice_whose_customer_is_parked_still_waits(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1, vat_code="MARS"), project(2, 1)])
    await record_invoices(log, [(5, 1, 2), (6, 1, None)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        tg.cancel_scope.cancel()
    for key in ("5", "6"):
        st = log.tables.state("invoice", key)
        assert st.parked and "customer 1" in st.reason and not st.voucher_number
        assert st.without == {}
    assert not entries_of(sandbox, 5) and not sandbox.agreement.draft_entries
