"""Amounts are Decimal end to end: a total with more than 2 decimals is sent rounded half up
(a JSON number written from the decimal string), with a warning, and the lookup after an
unknown outcome compares the rounded amount, so it finds the entry instead of sending it again."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import OPTIONS, customer, invoice, make_client, pdf, record
from tests.reconcile.passing import invoice_lines, settle, stepper

pytestmark = pytest.mark.anyio


async def test_a_total_with_three_decimals_is_rounded_sent_exactly_and_found_again(
        log: EventLog, clock: FakeClock) -> None:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb, \
            make_client(sb, clock, timeout_s=5.0) as client:
        rec = stepper(log, client)
        await record(log, [customer(1)])
        await settle(rec)
        sha = await log.put_blob(pdf(31))
        await record(log, [invoice(31, 1, None, sha=sha, total_including_vat="100.005",
                                   total_vat="20.00"),
                           invoice(32, 1, None, sha=sha, total_including_vat="0.1",
                                   total_vat="0.02")])
        sb.served.clear()
        # the bulk call is applied, its answer lost: the lookup must find it
        sb.inject("drop", on="POST /draft-entries/bulk")
        await settle(rec)
        bulks = sb.requests(method="POST", path_contains="/draft-entries/bulk")
    assert [b.status for b in bulks] == [201]  # applied once; its answer was dropped
    assert invoice_lines(sb) == {31: 1, 32: 1}
    amounts = sorted(b["amount"] for b in sb.agreement.booked_entries.values()
                     if b.get("customerInvoiceNumber"))
    assert amounts == [Decimal("0.10"), Decimal("100.01")]
    # the JSON number is the decimal string itself, never a float's digits
    sent = msgspec.json.decode(bulks[0].body)["entries"]
    assert '"amount":100.01,' in bulks[0].body and '"amount":0.1,' in bulks[0].body
    assert [e["amount"] for e in sent] == [100.01, 0.1]
    st = log.tables.state("invoice", "31")
    assert st.booked and any("100.005" in w and "100.01" in w for w in st.warnings)
    assert not any("decimals" in w for w in log.tables.state("invoice", "32").warnings)


def test_rounding_is_half_up_and_leaves_two_decimal_totals_as_given() -> None:
    def mapped(total: str) -> mp.Mapped[mp.InvoiceEntry]:
        return mp.map_invoice(ev.InvoiceFinalized(
            moment_id=1, number=7, customer_number="1", invoice_date="2026-11-20",
            total_including_vat=total, is_credit_note=total.startswith("-")), OPTIONS)

    for total, sent in (("100.005", "100.01"), ("-100.005", "-100.01"), ("2.675", "2.68"),
                        ("0.125", "0.13"), ("1250", "1250"), ("99.90", "99.90")):
        m = mapped(total)
        assert m.value is not None and str(m.value.amount) == sent, total
        assert bool(m.warnings) == (Decimal(total) != Decimal(sent))
    assert mapped("1E+40").problem  # too large to hold in cents: a problem, not an exception
