"""Reconcile against the e-conomic sandbox over loopback: small flows, dependency order."""

from __future__ import annotations

import anyio
import pytest

from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import customer, project, reconciler, record, record_invoices

pytestmark = pytest.mark.anyio


async def test_small_flow_converges(sandbox: EconomicSandbox, client: EconomicClient,
                                    log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 6)] + [project(n, n) for n in range(1, 4)])
    await record_invoices(log, [(n, n, n) for n in range(1, 4)] + [(9, 5, None)])
    rec = reconciler(log, client)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(rec.run)
            await anyio.sleep(0.2)
            await rec.until_idle()
            tg.cancel_scope.cancel()
    a = sandbox.agreement
    assert sorted(a.customers) == [1, 2, 3, 4, 5]
    assert sorted(a.projects) == [1, 2, 3]
    assert a.customers[2]["name"] == "Kunde 2 ApS"
    assert len(a.documents) == 4 and not a.draft_entries
    inv_lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
    assert sorted(b["customerInvoiceNumber"] for b in inv_lines) == [1, 2, 3, 9]
    counts = rec.status()["entities"]
    assert counts["invoice"] == {"desired": 4, "in_sync": 4, "pending": 0, "parked": 0}
    assert counts["customer"]["in_sync"] == 5
