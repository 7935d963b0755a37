"""Every invoice on a voucher of its own, found by the invoice number read back: never by the
position of the numbers a bulk call answers, and never on a voucher another invoice holds."""

from __future__ import annotations

import pytest

from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import customer, pdf, record, record_invoices
from tests.reconcile.passing import invoice_lines, settle, stepper

pytestmark = pytest.mark.anyio


def pdf_by_invoice(sandbox: EconomicSandbox) -> dict[int, list[bytes]]:
    """Invoice number → the document content on its booked line's voucher."""
    a = sandbox.agreement
    owner = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"]
             for b in a.booked_entries.values() if b.get("customerInvoiceNumber")}
    return {owner[(d.accounting_year, d.voucher_number)]: d.content
            for d in a.documents.values()}


async def test_numbers_answered_in_another_order_still_put_each_pdf_on_its_invoice(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    sandbox.agreement.bulk_order = "reversed"
    rec = stepper(log, client)
    await record(log, [customer(n) for n in (1, 2, 3)])
    await settle(rec)
    await record_invoices(log, [(60 + n, n, None) for n in (1, 2, 3)])
    await settle(rec)
    assert invoice_lines(sandbox) == {61: 1, 62: 1, 63: 1}
    assert pdf_by_invoice(sandbox) == {n: [pdf(n)] for n in (61, 62, 63)}


async def test_invoices_given_one_voucher_are_parked_and_no_pdf_is_lost(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    sandbox.agreement.bulk_voucher = "shared"
    rec = stepper(log, client)
    await record(log, [customer(1), customer(2)])
    await settle(rec)
    await record_invoices(log, [(71, 1, None), (72, 2, None)])
    await settle(rec)
    a = sandbox.agreement
    assert not a.documents and not a.booked_entries  # nothing attached to a shared voucher
    for key, other in (("71", "72"), ("72", "71")):
        st = log.tables.state("invoice", key)
        assert st.parked and st.voucher_number is None
        assert f"together with invoice {other}" in st.reason and "own voucher" in st.reason
    # a person gives them vouchers of their own; the retry finds them, nothing is sent again
    sandbox.agreement.bulk_voucher = "each"
    number = next(n for n, d in a.draft_entries.items() if d["customerInvoiceNumber"] == "72")
    a.put_draft(number, {**a.drop_draft(number), "voucherNumber": 999})
    for key in ("71", "72"):
        await rec.retry("invoice", key)
    await settle(rec)
    assert len(sandbox.requests(method="POST", path_contains="/draft-entries/bulk")) == 1
    assert invoice_lines(sandbox) == {71: 1, 72: 1}
    assert pdf_by_invoice(sandbox) == {71: [pdf(71)], 72: [pdf(72)]}


async def test_a_document_on_another_invoices_voucher_is_not_taken_as_this_ones_pdf(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    await record(log, [customer(1), customer(2)])
    await settle(rec)
    await record_invoices(log, [(81, 1, None)])
    await settle(rec)
    booked81 = next(b for b in sandbox.agreement.booked_entries.values()
                    if b.get("customerInvoiceNumber") == 81)
    # invoice 82's record points at 81's voucher (as the position bug left it)
    await record_invoices(log, [(82, 2, None)])
    rec.queue.discard("invoice", "82")
    await log.append(ev.InvoiceEntryCreated(
        kind="invoice", key="82", journal_number=1, entry_number=booked81["entryNumber"],
        voucher_number=booked81["voucherNumber"], accounting_year=booked81["_year"]),
        idempotency_key="entry:82:wrong")
    await rec.controllers["invoice"].reconcile(["82"])
    st = log.tables.state("invoice", "82")
    assert st.parked and not st.pdf_done and not st.booked
    assert "also holds invoice 81" in st.reason
    assert [d.content for d in sandbox.agreement.documents.values()] == [[pdf(81)]]
