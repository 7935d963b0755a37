"""The crash-point sweep for the paid status: the daemon, run as a subprocess, books invoices,
then (after they were paid in e-conomic) is killed with SIGKILL at every named step of setting
their paid status in Moment and restarted; every invoice ends up with its paid status in Moment,
each set exactly once."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest

from daemon.core import events as ev
from daemon.reconcile.hooks import PAYMENT_CRASH_POINTS
from daemon.sandbox import economic_books
from daemon.sandbox import moment as moment_sandbox
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile import test_crash
from tests.reconcile.conftest import customer, invoice, pdf, record

pytestmark = pytest.mark.anyio
INVOICES = (801, 802, 803)


async def run_daemon(sb: EconomicSandbox, msb: moment_sandbox.MomentSandbox, db: Path,
                     crash_at: str | None) -> int:
    return await test_crash.run_daemon(sb, db, crash_at, SANDBOX_MOMENT_URL=msb.api_url,
                                       SANDBOX_MOMENT_COMPANY=msb.company,
                                       SANDBOX_MOMENT_KEY=msb.api_key)


@pytest.mark.parametrize("step", PAYMENT_CRASH_POINTS)
async def test_killed_at_each_step_then_restarted_sets_each_paid_status_once(
        step: str, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb, \
            moment_sandbox.MomentSandbox.running(port=0) as msb:
        mcust = msb.add_customer(name="Kunde 1 ApS", customer_number="1")
        ids = {n: msb.add_invoice(customer_id=mcust.id, total_excluding_vat="100.00",
                                  finalize=True).id for n in INVOICES}
        log = await EventLog.open(db, clock=FakeClock())
        try:
            facts: list[ev.Event] = [customer(1)]
            for n in INVOICES:
                facts.append(invoice(n, 1, None, sha=await log.put_blob(pdf(n)),
                                     moment_id=ids[n], total_excluding_vat="100.00",
                                     total_vat="25.00", total_including_vat="125.00"))
            await record(log, facts)
        finally:
            await log.close()
        assert await run_daemon(sb, msb, db, None) == 0  # booked; nothing paid yet
        assert msb.count(method="PUT") == 0
        for n, amount in zip(INVOICES, ("125.00", "50.00", "125.00"), strict=True):
            economic_books.pay(sb.agreement, {"customerNumber": 1, "customerInvoiceNumber": n,
                                              "amount": amount, "date": "2026-11-28"})
        assert await run_daemon(sb, msb, db, step) == -signal.SIGKILL  # it reached the step
        assert await run_daemon(sb, msb, db, None) == 0
        statuses = {n: msb.payment_status(ids[n]) for n in INVOICES}
        puts = Counter(r.path for r in msb.requests if r.method == "PUT")
    assert {n: (s["paidAmount"], s["fullyPaid"]) for n, s in statuses.items()} == {
        801: ("125.00", True), 802: ("50.00", False), 803: ("125.00", True)}
    assert all(s["externalId"] == f"economic:2026:invoice:{n}" for n, s in statuses.items())
    # each status was sent once: after a send whose outcome was lost, the restart read Moment
    # and found it set
    assert sorted(puts.values()) == [1, 1, 1]
