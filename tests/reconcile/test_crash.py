"""The crash-point sweep: the daemon, run as a subprocess, is killed with SIGKILL at every
named step of the invoice transfer, then restarted; every invoice ends up in e-conomic exactly
once, booked, with exactly one copy of its PDF."""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from daemon.reconcile.hooks import CRASH_ENV, CRASH_POINTS
from daemon.sandbox.economic import EconomicSandbox, RateLimit
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
