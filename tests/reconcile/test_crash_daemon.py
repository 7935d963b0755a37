"""The crash-point sweep with the real daemon (``python -m daemon run``) as a subprocess against
both sandboxes: Moment's invoices arrive through ingest; the daemon SIGKILLs itself at each
named step of the invoice transfer (``MOMENT_SYNC_TEST_CRASH_AT``) and is started again; every
invoice ends up in e-conomic exactly once, booked, with exactly one copy of Moment's PDF."""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import pytest

from daemon.reconcile.hooks import CRASH_ENV, CRASH_POINTS
from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _economic_view(sb: harness.Sandboxes) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        a = sb.economic.agreement
        lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
        by_voucher = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"]
                      for b in lines}
        return {"drafts": len(a.draft_entries),
                "booked": Counter(b["customerInvoiceNumber"] for b in lines),
                "documents": {by_voucher.get((d.accounting_year, d.voucher_number), -1):
                              list(d.content) for d in a.documents.values()},
                "document_count": len(a.documents)}
    return sb.call(read)


def _moment_invoices(sb: harness.Sandboxes) -> dict[int, bytes]:
    def read() -> dict[int, bytes]:
        m = sb.moment
        return {i.invoice_number: m.invoice_pdf(i.id) for i in m.invoices.values()
                if i.status != "DRAFT" and i.invoice_number is not None}
    return sb.call(read)


@pytest.mark.parametrize("step", CRASH_POINTS)
def test_the_daemon_killed_at_each_step_then_restarted_transfers_each_invoice_once(
        step: str) -> None:
    with harness.Sandboxes(customers=3, projects=2, invoices=5) as sb:
        wanted = _moment_invoices(sb)
        assert wanted
        setup = harness.write_config(sb, prefix="ms-crash-")
        first = harness.Daemon(setup, watchdog_usec=None, env={CRASH_ENV: step}).start()
        try:
            assert first.wait(60) == -signal.SIGKILL, first.tail()  # it reached the step
        finally:
            first.close()
        second = harness.Daemon(setup, watchdog_usec=None).start()
        try:
            harness.wait_until(
                lambda: (v := _economic_view(sb))["booked"] == Counter(set(wanted))
                and v["document_count"] == len(wanted) and not v["drafts"],
                timeout=60, what="every invoice booked with its PDF")
            view = _economic_view(sb)
            assert view["booked"] == Counter(set(wanted))  # once each
            assert view["documents"] == {n: [pdf] for n, pdf in wanted.items()}
            assert second.stop() == 0
        finally:
            second.close()
