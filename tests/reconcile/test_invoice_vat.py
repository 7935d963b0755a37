"""VAT, currency and credit notes of the invoice entries the daemon sends (DESIGN.md "VAT on
an invoice"): the VAT code is the contra account's (read once from e-conomic and cached),
Moment's VAT must agree with its rate, or the invoice is parked and never sent; an invoice in
another currency carries Moment's exchange rate; a changed mapping option is no change of a
booked invoice."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest

from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.economic.conftest import validate_traffic
from tests.reconcile.conftest import OPTIONS, customer, invoice, pdf, record
from tests.reconcile.passing import settle, stepper

pytestmark = pytest.mark.anyio


def sent(sb: EconomicSandbox) -> dict[str, dict[str, Any]]:
    """Invoice number → the entry the daemon sent for it (every bulk call)."""
    out: dict[str, dict[str, Any]] = {}
    for s in sb.requests(method="POST", path_contains="/draft-entries/bulk"):
        for e in msgspec.json.decode(s.body)["entries"]:
            out[e["customerInvoiceNumber"]] = e
    return out


async def test_vat_codes_follow_the_account_and_a_disagreeing_vat_parks(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    sha = await log.put_blob(pdf(80))
    await record(log, [customer(1)])
    await settle(rec)
    await record(log, [
        invoice(81, 1, None, sha=sha, total_including_vat="1250.00", total_vat="250.00"),
        invoice(82, 1, None, sha=sha, financial_account="1020", total_including_vat="100.00",
                total_vat="0"),
        # exempt on the 25 % account; 25 % on the account without VAT: both parked
        invoice(83, 1, None, sha=sha, total_including_vat="1000.00", total_vat="0"),
        invoice(84, 1, None, sha=sha, financial_account="1020",
                total_including_vat="1250.00", total_vat="250.00"),
        invoice(85, 1, None, sha=sha, currency="EUR", exchange_rate="745.80",
                total_including_vat="125.00", total_vat="25.00"),
        invoice(86, 1, None, sha=sha, currency="EUR", total_including_vat="125.00",
                total_vat="25.00"),
        invoice(87, 1, None, sha=sha, is_credit_note=True, total_including_vat="-125.00",
                total_vat="-25.00", description=""),
        invoice(88, 1, None, sha=sha, is_credit_note=True, total_including_vat="125.00",
                total_vat="25.00")])
    await settle(rec)
    entries = sent(sandbox)
    assert sorted(entries) == ["81", "82", "85", "86", "87"]  # 83, 84, 88 never sent
    assert entries["81"]["contraVatCode"] == "U25"
    assert "contraVatCode" not in entries["82"]
    assert entries["85"]["exchangeRate"] == 745.80 and entries["85"]["currency"] == "EUR"
    assert "exchangeRate" not in entries["86"]
    assert entries["87"]["amount"] == -125.00 and entries["87"]["text"] == "Kreditnota 87"
    tables = log.tables
    for key in ("81", "82", "85", "86", "87"):
        assert tables.state("invoice", key).booked, key
    assert any("e-conomic's own rate" in w for w in tables.state("invoice", "86").warnings)
    exempt = tables.state("invoice", "83")
    assert exempt.parked and "account 1010 books with VAT code U25 at 25 %" in exempt.reason
    assert "Moment's VAT is 0.00 DKK" in exempt.reason and "200.00 DKK of VAT" in exempt.reason
    without = tables.state("invoice", "84")
    assert without.parked and "account 1020 books with no VAT code (0 %)" in without.reason
    assert "250.00 DKK" in without.reason
    sign = tables.state("invoice", "88")
    assert sign.parked and "credit note" in sign.reason
    # the PDF is named like the entry's text: Faktura <n> / Kreditnota <n>
    files = " ".join(s.body for s in sandbox.requests(method="POST",
                                                      path_contains="/AttachedDocuments"))
    assert "<file Faktura-81.pdf " in files and "<file Kreditnota-87.pdf " in files
    # the books were read once for all of them, not per invoice
    assert len(sandbox.requests(method="GET", path_contains="/rest/accounts")) == 1
    assert len(sandbox.requests(method="GET", path_contains="/rest/vat-accounts")) == 1
    # every entry sent (VAT code, exchange rate, credit note) is valid by the journals spec,
    # formats included, and so is every answer
    assert validate_traffic(sandbox) > 0


async def test_a_changed_mapping_option_is_no_change_of_a_booked_invoice(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    sha = await log.put_blob(pdf(90))
    await record(log, [customer(1)])
    await settle(rec)
    await record(log, [invoice(91, 1, None, sha=sha, total_including_vat="1250.00",
                               total_vat="250.00")])
    await settle(rec)
    assert log.tables.state("invoice", "91").booked
    for options in (msgspec.structs.replace(OPTIONS, default_account=1020),
                    msgspec.structs.replace(OPTIONS, invoice_vat_code="none"),
                    msgspec.structs.replace(OPTIONS, journal_number=2)):
        rec.options = options
        await rec.full_sweep()
        await settle(rec)
    events = [r.event for r in await log.read_entity("invoice", "91")]
    assert not any(isinstance(e, ev.BookedMismatch) for e in events)
    assert not log.tables.state("invoice", "91").warnings
    assert len(sandbox.requests(method="POST", path_contains="/draft-entries/bulk")) == 1
    assert Decimal(str(sent(sandbox)["91"]["amount"])) == Decimal("1250.00")


async def test_an_invoice_waits_while_the_books_cannot_be_read(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    sha = await log.put_blob(pdf(95))
    await record(log, [customer(1)])
    await settle(rec)
    sandbox.inject("500", 1000, on="GET /rest/vat-accounts")
    await record(log, [invoice(95, 1, None, sha=sha, total_including_vat="1250.00",
                               total_vat="250.00")])
    await rec.step()
    st = log.tables.state("invoice", "95")
    assert not st.parked and st.attempts == 1 and "500" in st.last_error
    assert not sent(sandbox)  # never sent without its VAT code
    sandbox.faults.targeted.clear()
    await settle(rec)
    assert log.tables.state("invoice", "95").booked
    assert sent(sandbox)["95"]["contraVatCode"] == "U25"
