"""The crash-point sweep: the daemon, run as a subprocess, is killed with SIGKILL at every
named step of the invoice transfer, then restarted; every invoice ends up in e-conomic exactly
once, booked, with exactly one copy of its PDF. The same for every named step of an expense's
transfer into Moment: every expense ends up in Moment exactly once."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from daemon.core import events as ev
from daemon.reconcile.hooks import CRASH_ENV, CRASH_POINTS, EXPENSE_CRASH_POINTS
from daemon.sandbox import economic_books
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.sandbox.moment import MomentSandbox
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.conftest import REPO
from tests.reconcile.conftest import customer, pdf, project, record, record_invoices

pytestmark = pytest.mark.anyio
INVOICES = [(700 + n, n % 3 + 1, n % 2 + 1) for n in range(6)]


async def run_daemon(sb: EconomicSandbox, db: Path, crash_at: str | None,
                     **extra: str) -> int:
    """The crash runner on ``db`` against ``sb`` (``extra``: more of its environment)."""
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(SANDBOX_REST_URL=sb.rest_url, SANDBOX_APIS_URL=sb.apis_url,
               SANDBOX_APP_TOKEN=sb.app_secret_token, SANDBOX_GRANT_TOKEN=sb.agreement_grant_token,
               PYTHONPATH=str(REPO), **extra)
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    with anyio.fail_after(90):
        done = await anyio.run_process([sys.executable, "-m", "tests.reconcile.crashrunner",
                                        str(db)], env=env, cwd=REPO, check=False)
    return done.returncode


@pytest.mark.parametrize("step", CRASH_POINTS)
async def test_killed_at_each_step_then_restarted_transfers_each_invoice_once(
        step: str, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    log = await EventLog.open(db, clock=FakeClock())
    try:
        await record(log, [*(customer(n) for n in (1, 2, 3)), *(project(n, n) for n in (1, 2))])
        await record_invoices(log, INVOICES)
    finally:
        await log.close()
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb:
        assert await run_daemon(sb, db, step) == -signal.SIGKILL  # it did reach the step
        assert await run_daemon(sb, db, None) == 0
        a = sb.agreement
        assert not a.draft_entries
        lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
        counts = Counter(b["customerInvoiceNumber"] for b in lines)
        assert sorted(counts) == [n for n, _c, _p in INVOICES] and set(counts.values()) == {1}
        by_voucher = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"]
                      for b in lines}
        assert sorted(by_voucher[(d.accounting_year, d.voucher_number)]
                      for d in a.documents.values()) == [n for n, _c, _p in INVOICES]
        assert all(d.content == [pdf(by_voucher[(d.accounting_year, d.voucher_number)])]
                   for d in a.documents.values())
    log = await EventLog.open(db, clock=FakeClock())
    try:
        assert all(log.tables.state("invoice", str(n)).booked for n, _c, _p in INVOICES)
        found = Counter(r.type for r in await log.read(limit=100_000)
                        if getattr(r.event, "found_by_lookup", False))
    finally:
        await log.close()
    # an unknown outcome was resolved by looking the invoices up, not by writing again
    expected = {"invoice.after_send": "invoice_entry_created",
                "invoice.after_book_send": "invoice_booked"}.get(step)
    assert found == (Counter({expected: len(INVOICES)}) if expected else Counter())


async def run_expense_daemon(sb: EconomicSandbox, msb: MomentSandbox, db: Path,
                             crash_at: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(SANDBOX_REST_URL=sb.rest_url, SANDBOX_APIS_URL=sb.apis_url,
               SANDBOX_APP_TOKEN=sb.app_secret_token, SANDBOX_GRANT_TOKEN=sb.agreement_grant_token,
               SANDBOX_MOMENT_URL=msb.api_url, SANDBOX_MOMENT_COMPANY=msb.company,
               SANDBOX_MOMENT_KEY=msb.api_key, PYTHONPATH=str(REPO))
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    with anyio.fail_after(90):
        done = await anyio.run_process(
            [sys.executable, "-m", "tests.reconcile.expense_crashrunner", str(db)], env=env,
            cwd=REPO, check=False)
    return done.returncode


@pytest.mark.parametrize("step", EXPENSE_CRASH_POINTS)
async def test_killed_at_each_step_of_an_expense_then_restarted_creates_each_expense_once(
        step: str, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb, \
            MomentSandbox.running() as msb:
        m_customer = msb.add_customer(name="Kunde 1 ApS", customer_number="1")
        facts: list[ev.Event] = [customer(1)]
        for n in (1, 2):
            sb.agreement.add_project(n, f"Projekt {n}", customerNumber=1)
            made = msb.add_project(name=f"Projekt {n}", customer_id=m_customer.id,
                                   project_number=str(n))
            facts.append(project(n, 1, moment_id=made.id))
        entries = [next(int(r["entryNumber"]) for r in economic_books.book_cost(
            sb.agreement, "supplierInvoice", {"amount": f"{100 + n}.00", "date": "2026-05-20",
                                              "projectNumber": n % 2 + 1, "text": f"Udlæg {n}"})
            if r.get("projectNumber")) for n in range(5)]
        log = await EventLog.open(db, clock=FakeClock())
        try:
            await record(log, facts)
        finally:
            await log.close()
        assert await run_expense_daemon(sb, msb, db, step) == -signal.SIGKILL  # reached it
        assert await run_expense_daemon(sb, msb, db, None) == 0
        ids = Counter(e.body["externalId"] for e in msb.expenses.values())
        assert ids == Counter(f"economic:2026:entry:{n}" for n in entries)  # once each
    log = await EventLog.open(db, clock=FakeClock())
    try:
        found = [r.event for r in await log.read(limit=100_000)
                 if isinstance(r.event, ev.Applied) and r.event.found_by_lookup]
    finally:
        await log.close()
    # the one send whose answer the crash lost was looked up, not sent again
    assert len(found) == (1 if step == "expense.after_send" else 0)
