"""Nothing twice when an outcome is unknown: a retried bulk call reuses its key, creating is
always preceded by the lookup (a log that lost its tail books nothing twice), an answer that
cannot be read is looked up rather than taken for a refusal, and a failed lookup makes only
the invoices that needed it wait; drafts applied while auto_book was off are booked once it
is on."""

from __future__ import annotations

import msgspec
import pytest

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic.client import EconomicClient
from daemon.reconcile import invoice_items
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import (
    OPTIONS,
    customer,
    invoice,
    record,
    record_invoices,
)
from tests.reconcile.passing import invoice_lines, settle, stepper

pytestmark = pytest.mark.anyio
NUMBERS = (41, 42, 43)


def all_booked_once(sandbox: EconomicSandbox, log: EventLog, numbers: tuple[int, ...]) -> bool:
    a = sandbox.agreement
    return invoice_lines(sandbox) == {n: 1 for n in numbers} and not a.draft_entries \
        and len(a.documents) == len(numbers) \
        and all(log.tables.state("invoice", str(n)).booked for n in numbers)


async def test_a_bulk_call_applied_after_the_client_gave_up_is_sent_again_under_its_key(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    await record(log, [customer(1), customer(2)])
    await settle(rec)
    # e-conomic applies the bulk call only after the client gave up on it, and after the
    # lookup before the retry: that lookup cannot see the entries
    sandbox.inject("late", on="POST /draft-entries/bulk")
    await record_invoices(log, [(n, n % 2 + 1, None) for n in NUMBERS])
    await settle(rec)
    bulks = sandbox.requests(method="POST", path_contains="/draft-entries/bulk")
    assert len(bulks) == 2 and bulks[0].idempotency_key == bulks[1].idempotency_key
    assert bulks[1].from_cache  # replayed, not applied again
    calls = [(s.method, s.path.rsplit("/", 1)[-1]) for s in sandbox.served]
    first, second = (n for n, c in enumerate(calls) if c == ("POST", "bulk"))
    assert ("GET", "draft-entries") in calls[first:second]  # the lookup that saw nothing
    assert all_booked_once(sandbox, log, NUMBERS)


@pytest.mark.parametrize("left_as", ["booked", "draft"])
async def test_a_log_that_lost_its_tail_books_nothing_twice(
        left_as: str, sandbox: EconomicSandbox, client: EconomicClient, clock: FakeClock) -> None:
    facts: list[ev.Event] = [customer(1), customer(2)]
    first = await EventLog.open(":memory:", clock=clock)
    try:
        await record(first, facts)
        await record_invoices(first, [(n, n % 2 + 1, None) for n in NUMBERS])
        rec = stepper(first, client, options=mp.Options(
            vat_zones=OPTIONS.vat_zones, auto_book=left_as == "booked"))
        await rec.full_sweep()
        await settle(rec)
    finally:
        await first.close()
    assert sum(invoice_lines(sandbox).values()) == len(NUMBERS)
    # restored from a replica that had only the Moment facts: no intent, no outcome
    restored = await EventLog.open(":memory:", clock=clock)
    try:
        await record(restored, facts)
        await record_invoices(restored, [(n, n % 2 + 1, None) for n in NUMBERS])
        rec = stepper(restored, client)
        await rec.full_sweep()
        await settle(rec)
        assert all_booked_once(sandbox, restored, NUMBERS)
        assert len(sandbox.requests(method="POST", path_contains="/draft-entries/bulk")) == 1
        found = [e for n in NUMBERS for r in await restored.read_entity("invoice", str(n))
                 if getattr(e := r.event, "found_by_lookup", False)]
        assert found
    finally:
        await restored.close()


async def test_an_answer_that_cannot_be_read_is_looked_up_not_taken_for_a_refusal(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    await record(log, [customer(1), customer(2)])
    await settle(rec)
    sandbox.inject("garble", on="POST /draft-entries/bulk")  # applied; the 201's body is garbage
    sandbox.inject("garble", on="POST /AttachedDocuments")
    await record_invoices(log, [(n, n % 2 + 1, None) for n in NUMBERS])
    await settle(rec)
    assert all_booked_once(sandbox, log, NUMBERS)
    assert not any(log.tables.state("invoice", str(n)).parked for n in NUMBERS)
    assert len(sandbox.requests(method="POST", path_contains="/draft-entries/bulk")) == 1


async def test_a_failed_lookup_makes_only_the_invoices_in_doubt_wait(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client)
    await record(log, [customer(1), customer(2)])
    await settle(rec)
    sha = await log.put_blob(b"%PDF-1.4\n% 51\n%%EOF\n")
    sure, doubt = invoice(51, 1, None, sha=sha), invoice(52, 2, None, sha=sha)
    await record(log, [sure, doubt])
    rec.queue.discard("invoice", "51")
    rec.queue.discard("invoice", "52")
    # 51: its entry was created and recorded; 52: sent, with no outcome recorded
    entry = mp.map_invoice(sure, OPTIONS).value
    assert entry is not None
    [number] = await client.create_draft_entries([invoice_items.draft_write(entry)],
                                                 idempotency_key="made-by-an-earlier-life")
    made = sandbox.agreement.draft_entries[number]
    voucher, year = made["voucherNumber"], made["_year"]
    await log.append_many([
        (ev.InvoiceEntryCreated(kind="invoice", key="51", journal_number=1, entry_number=number,
                                voucher_number=voucher, accounting_year=year), "c51", None),
        (ev.WriteIntended(kind="invoice", key="52", action="transfer",
                          idempotency_key="invoice:52:transfer:x:y", journal_number=1), "i52",
         None)])
    sandbox.inject("503", on="GET /booked-entries")  # the lookup of 52 fails
    await rec.controllers["invoice"].reconcile(["51", "52"])
    st51, st52 = log.tables.state("invoice", "51"), log.tables.state("invoice", "52")
    assert st51.booked and st51.pdf_done and st51.attempts == 0
    assert st52.voucher_number is None and st52.attempts == 1 and "503" in st52.last_error
    failed = [r.event for r in await log.read_entity("invoice", "52") if r.type == "failed"]
    assert [getattr(e, "action", "") for e in failed] == ["read"]
    bulks = sandbox.requests(method="POST", path_contains="/draft-entries/bulk")
    assert [b.idempotency_key for b in bulks] == ["made-by-an-earlier-life"]  # 52 waits
    await settle(rec)
    assert invoice_lines(sandbox) == {51: 1, 52: 1}


@pytest.mark.parametrize("how", ["reload", "restart"])
async def test_drafts_applied_while_auto_book_was_off_are_booked_once_it_is_on(
        how: str, sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    off = mp.Options(vat_zones=OPTIONS.vat_zones, auto_book=False)
    rec = stepper(log, client, options=off)
    await record(log, [customer(1), customer(2)])
    await record_invoices(log, [(n, n % 2 + 1, None) for n in NUMBERS])
    await settle(rec)
    assert len(sandbox.agreement.draft_entries) == len(NUMBERS)
    assert not sandbox.agreement.booked_entries or not any(
        b.get("customerInvoiceNumber") for b in sandbox.agreement.booked_entries.values())
    assert all(log.tables.state("invoice", str(n)).applied_hash for n in NUMBERS)
    on = msgspec.structs.replace(off, auto_book=True)
    if how == "reload":
        rec.options = on  # what a SIGHUP with auto_book = true does
    else:
        rec = stepper(log, client, options=on)
        rec.queue_out_of_sync()  # what a start does first
    assert await settle(rec) > 0  # the next pass books them, with no full sweep
    assert all_booked_once(sandbox, log, NUMBERS)
    assert len(sandbox.requests(method="POST", path_contains="/draft-entries/bulk")) == 1
