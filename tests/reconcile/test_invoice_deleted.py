"""A person's hand in the journal: a draft entry deleted in e-conomic is looked up and
transferred again, once (a second deletion parks it with a reason); an entry a person booked
is recorded as booked, whether e-conomic's refusal to book it again is a 400 or a 404."""

from __future__ import annotations

import pytest

from daemon.economic.client import EconomicClient
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import customer, pdf, record, record_invoices
from tests.reconcile.passing import invoice_lines, settle, stepper

pytestmark = pytest.mark.anyio


async def drafted(sandbox: EconomicSandbox, log: EventLog, rec: Reconciler, number: int, *,
                  waiting: str = "POST /journals/1/bookdraftentries") -> int:
    """Transfer invoice ``number`` and let the call ``waiting`` (its booking, by default, or
    the PDF's) fail once; returns its entry."""
    await record(log, [customer(1)])
    await settle(rec)
    sandbox.inject("503", on=waiting)
    await record_invoices(log, [(number, 1, None)])
    await rec.step()
    st = log.tables.state("invoice", str(number))
    assert not st.booked and st.entry_number in sandbox.agreement.draft_entries
    return st.entry_number


def gone_events(events: list[str]) -> int:
    return events.count("invoice_entry_gone")


async def test_a_deleted_draft_is_transferred_again_once_then_parked(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    entry = await drafted(sandbox, log, rec, 101)
    del sandbox.agreement.draft_entries[entry]  # a person deletes the draft (its PDF stays behind)
    await settle(rec)
    st = log.tables.state("invoice", "101")
    assert st.booked and not st.parked and st.entries_lost == 1
    assert invoice_lines(sandbox) == {101: 1} and not sandbox.agreement.draft_entries
    booked = next(b for b in sandbox.agreement.booked_entries.values()
                  if b.get("customerInvoiceNumber") == 101)
    mine = [d for d in sandbox.agreement.documents.values()
            if (d.accounting_year, d.voucher_number) == (booked["_year"], booked["voucherNumber"])]
    assert [d.content for d in mine] == [[pdf(101)]]
    assert len(sandbox.requests(method="POST", path_contains="/draft-entries/bulk")) == 2
    types = [r.type for r in await log.read_entity("invoice", "101")]
    assert gone_events(types) == 1

    # deleted a second time: the daemon does not keep re-creating what a person removes
    entry = await drafted(sandbox, log, rec, 102)
    del sandbox.agreement.draft_entries[entry]
    await rec.step()  # booking finds it gone: it is queued to be transferred again
    assert log.tables.state("invoice", "102").voucher_number is None
    sandbox.inject("503", on="POST /journals/1/bookdraftentries")
    await rec.step()  # transferred again, its PDF attached; the booking waits
    again = next(n for n, d in sandbox.agreement.draft_entries.items()
                 if d["customerInvoiceNumber"] == "102")
    del sandbox.agreement.draft_entries[again]
    await settle(rec)
    st = log.tables.state("invoice", "102")
    assert st.parked and "deleted there again" in st.reason and "retry it" in st.reason
    assert invoice_lines(sandbox) == {101: 1}
    # the operator's retry means it: it is transferred once more
    await rec.retry("invoice", "102")
    await settle(rec)
    assert invoice_lines(sandbox) == {101: 1, 102: 1}
    assert log.tables.state("invoice", "102").booked


@pytest.mark.parametrize("status", [400, 404])
async def test_an_entry_a_person_booked_is_recorded_booked_not_parked(
        status: int, sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    sandbox.agreement.book_missing_status = status
    rec = stepper(log, client)
    entry = await drafted(sandbox, log, rec, 111, waiting="POST /AttachedDocuments")
    await client.book_draft_entries(1, [entry], idempotency_key="a-person-in-e-conomic")
    await settle(rec)  # the PDF goes onto the booked voucher; booking it again is refused
    assert sandbox.requests(method="POST", path_contains="/bookdraftentries")[-1].status == status
    st = log.tables.state("invoice", "111")
    assert st.booked and not st.parked and st.entries_lost == 0
    assert invoice_lines(sandbox) == {111: 1}
    booked = [r.event for r in await log.read_entity("invoice", "111")
              if r.type == "invoice_booked"]
    assert [getattr(e, "found_by_lookup", False) for e in booked] == [True]
