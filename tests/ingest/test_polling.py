"""The poller: changes without a webhook, full scans, cursors with an overlap, resync."""

from __future__ import annotations

import urllib.parse

import anyio
import pytest

from daemon.core import events as ev
from daemon.ingest.ingesting import Outcome
from tests.ingest.conftest import Harness, fake_clock, running

pytestmark = pytest.mark.anyio


def list_queries(harness: Harness, kind: str) -> list[dict[str, str]]:
    return [dict(urllib.parse.parse_qsl(r.query)) for r in harness.sandbox.requests
            if r.path.endswith(f"/{kind}")]


async def test_the_poller_finds_a_change_that_had_no_webhook(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    customer = sb.add_customer(name="Stille Kunde ApS", customer_number="20001")
    harness.clock.advance(60)  # the cursor never passes the host's clock minus 60 s
    first = await harness.poller.poll_once("customer")
    assert (first.listed, first.outcomes, first.cursor) == (
        1, {"appended": 1}, "2026-11-20T09:00:00Z")
    harness.clock.advance(540)
    sb.change_customer(customer.id, email="ny@stille.dk")
    harness.clock.advance(60)
    second = await harness.poller.poll_once("customer")
    assert second.outcomes == {"appended": 1} and second.cursor == "2026-11-20T09:10:00Z"
    facts = [e for e in await harness.events(ev.CustomerUpserted)
             if isinstance(e, ev.CustomerUpserted)]
    assert [(f.email, f.version) for f in facts] == [("", 1), ("ny@stille.dk", 2)]
    # the second poll read from the cursor minus the 2-minute overlap
    queries = list_queries(harness, "customers")
    assert "lastModifiedDateFrom" not in queries[0]
    assert queries[1]["lastModifiedDateFrom"] == "2026-11-20T08:58:00Z"
    # nothing changed: the overlap re-reads the customer, content decides, no new event
    before = await harness.log.count()
    third = await harness.poller.poll_once("customer")
    assert third.outcomes == {"unchanged": 1} and await harness.log.count() == before
    cursor = harness.log.tables.daemon()["cursor:customer"]
    assert cursor.value == "2026-11-20T09:10:00Z"
    assert harness.sandbox.count(path_contains=f"/customers/{customer.id}") == 0


async def test_a_draft_is_ignored_and_a_credit_note_is_recorded(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    customer = sb.add_customer(name="Fjordens Café", customer_number="30001")
    project = sb.add_project(name="Ombygning", customer_id=customer.id, project_number="7")
    draft = sb.add_invoice(customer_id=customer.id, total_excluding_vat="800.00",
                           project_id=project.id)
    result = await harness.poller.poll_once("invoice")
    assert result.outcomes == {"ignored": 1}
    assert await harness.events(ev.InvoiceFinalized) == []
    assert sb.count(path_contains="/pdf") == 0

    invoice = sb.finalize_invoice(draft.id)
    await harness.poller.poll_once("invoice")
    harness.clock.advance(60)
    note = sb.credit_invoice(invoice.id)
    result = await harness.poller.poll_once("invoice")
    assert result.outcomes == {"appended": 2}

    facts = [e for e in await harness.events(ev.InvoiceFinalized)
             if isinstance(e, ev.InvoiceFinalized)]
    assert [(f.number, f.status, f.is_credit_note) for f in facts] == [
        (1, "FINALIZED", False), (1, "CREDITED", False), (2, "FINALIZED", True)]
    original, credited, credit_note = facts
    assert (original.customer_number, original.project_number) == ("30001", "7")
    assert (original.total_excluding_vat, original.total_vat, original.total_including_vat) == (
        "800.00", "200.00", "1000.00")
    assert credited.pdf_sha256 == original.pdf_sha256 and original.pdf_size > 0
    assert credit_note.moment_id == note.id and credit_note.credited_invoice_number == 1
    assert credit_note.total_including_vat == "-1000.00"
    assert credit_note.pdf_sha256 != original.pdf_sha256
    assert await harness.log.get_blob(credit_note.pdf_sha256) == sb.invoice_pdf(note.id)
    keys = [r.idempotency_key for r in await harness.log.read() if r.type == "invoice_finalized"]
    assert keys == ["invoice:1", "invoice:1:credited", "invoice:2"]
    assert harness.log.tables.invoices()["1"].fact.status == "CREDITED"
    # the PDF of invoice 1 was fetched once, not again for the credit
    assert sb.count(path_contains=f"/invoices/{invoice.id}/pdf") == 1


async def test_a_conflicting_invoice_number_is_recorded_and_the_first_kept(
        harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    customer = sb.add_customer(name="Dobbelt A/S")
    first = sb.add_invoice(customer_id=customer.id, total_excluding_vat="100.00",
                           finalize=True)
    await harness.poller.poll_once("invoice")
    second = sb.add_invoice(customer_id=customer.id, total_excluding_vat="999.00")
    sb.force_invoice_number(second.id, first.invoice_number or 0)
    result = await harness.poller.poll_once("invoice")
    assert result.outcomes == {"unchanged": 1, "conflict": 1}
    row = harness.log.tables.invoices()[str(first.invoice_number)]
    assert row.fact.moment_id == first.id and row.fact.total_excluding_vat == "100.00"
    assert row.conflicts == (second.id,)
    conflicts = await harness.events(ev.InvoiceConflict)
    assert len(conflicts) == 1 and isinstance(conflicts[0], ev.InvoiceConflict)
    assert (conflicts[0].moment_id, conflicts[0].recorded_moment_id) == (second.id, first.id)
    assert "first is kept" in conflicts[0].detail and "own number" in conflicts[0].detail
    # seen again (poll overlap, or a hint): recorded once
    await harness.processor.process("invoice", second.id)
    assert len(await harness.events(ev.InvoiceConflict)) == 1
    assert len(await harness.events(ev.InvoiceFinalized)) == 1
    # the second invoice's PDF was never downloaded
    assert sb.count(path_contains=f"/invoices/{second.id}/pdf") == 0
    # it is parked with the sentence under its Moment id (listed, alerted); the first is not
    parked = harness.log.tables.state("invoice", f"id:{second.id}")
    assert parked.parked and parked.reason == conflicts[0].detail
    assert not harness.log.tables.state("invoice", str(first.invoice_number)).parked


async def test_two_invoices_racing_for_one_number_keep_exactly_one(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    customer = sb.add_customer(name="Kapløb ApS")
    a = sb.add_invoice(customer_id=customer.id, total_excluding_vat="1.00")
    b = sb.add_invoice(customer_id=customer.id, total_excluding_vat="2.00")
    sb.force_invoice_number(a.id, 50)
    sb.force_invoice_number(b.id, 50)
    outcomes: list[Outcome] = []

    async def process(moment_id: int) -> None:
        outcomes.append(await harness.processor.process("invoice", moment_id))

    async with anyio.create_task_group() as tg:
        tg.start_soon(process, a.id)
        tg.start_soon(process, b.id)
    assert sorted(outcomes) == sorted([Outcome.APPENDED, Outcome.CONFLICT])
    kept = harness.log.tables.invoices()["50"]
    conflict = (await harness.events(ev.InvoiceConflict))[0]
    assert isinstance(conflict, ev.InvoiceConflict)
    assert {kept.fact.moment_id, conflict.moment_id} == {a.id, b.id}
    assert conflict.recorded_moment_id == kept.fact.moment_id
    assert len(await harness.events(ev.InvoiceFinalized)) == 1


async def test_a_full_scan_records_objects_moment_no_longer_has(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    keep = sb.add_customer(name="Bliver ApS", customer_number="40001")
    leave = sb.add_customer(name="Går ApS", customer_number="40002")
    assert harness.poller.full_scan_due("customer")
    first = await harness.poller.full_scan("customer")
    assert first.outcomes == {"appended": 2}
    assert not harness.poller.full_scan_due("customer")
    sb.delete_customer(leave.id)
    harness.clock.advance(60)
    second = await harness.poller.full_scan("customer")
    assert second.outcomes == {"unchanged": 1, "gone": 1}
    gone = [e for e in await harness.events(ev.EntityGone) if isinstance(e, ev.EntityGone)]
    assert [(e.kind, e.key, e.moment_id) for e in gone] == [("customer", "40002", leave.id)]
    assert "no longer managed" in gone[0].detail
    assert harness.log.tables.customers()["40002"].gone
    assert not harness.log.tables.customers()["40001"].gone
    assert keep.id not in [e.moment_id for e in gone]
    # the missing one was confirmed with a 404 before it was called gone
    assert sb.count(path_contains=f"/customers/{leave.id}") == 1
    row = harness.log.tables.daemon()["cursor:customer"]
    assert row.extra["full_scan_at"].startswith("2026-11-20T09:01:00")
    harness.clock.advance(3600)
    assert harness.poller.full_scan_due("customer")


async def test_run_scans_fully_first_then_polls_and_survives_moment_errors() -> None:
    async with running(fake_clock(autojump=False)) as harness:
        sb = harness.sandbox
        sb.set_webhook(None)
        customer = sb.add_customer(name="Løkke ApS")
        sb.faults.add(500, count=1, path_contains="/projects")
        interval = harness.poller.poll_interval_s
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(harness.poller.run)
                await harness.clock.asked(interval)  # the first round is done
                harness.clock.advance(interval)
                sb.change_customer(customer.id, name="Løkke A/S")
                await harness.clock.asked(interval, times=2)  # and the second
                tg.cancel_scope.cancel()
        await _run_checks(harness)


async def _run_checks(harness: Harness) -> None:
    daemon = harness.log.tables.daemon()
    assert daemon["cursor:customer"].extra["full_scan_at"].startswith("2026-11-20T09:00:00")
    # the 500 ended the first round's project scan; the second round scanned projects fully
    assert daemon["cursor:project"].extra["full_scan_at"].startswith("2026-11-20T09:01:00")
    assert daemon["cursor:invoice"].extra["full_scan_at"].startswith("2026-11-20T09:00:00")
    names = [e.name for e in await harness.events(ev.CustomerUpserted)
             if isinstance(e, ev.CustomerUpserted)]
    assert names == ["Løkke ApS", "Løkke A/S"]
    customer_lists = list_queries(harness, "customers")
    assert len(customer_lists) == 2 and "lastModifiedDateFrom" in customer_lists[1]



async def test_resync_finds_the_moment_id_in_the_log_else_by_a_scan(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    known = sb.add_customer(name="Kendt ApS", customer_number="50001")
    await harness.processor.process("customer", known.id)
    unknown = sb.add_customer(name="Ukendt ApS", customer_number="50002")
    sb.change_customer(known.id, city="Ribe")
    sb.clear_requests()

    assert await harness.poller.resync("customer", "50001") == Outcome.APPENDED
    assert sb.count(path_contains="/customers") == 1  # straight to the object
    assert await harness.poller.resync("customer", "50002") == Outcome.APPENDED
    assert harness.log.tables.customers()["50002"].fact.moment_id == unknown.id
    assert await harness.poller.resync("customer", "50002") == Outcome.UNCHANGED
    with pytest.raises(LookupError, match="no customer numbered '99999'"):
        await harness.poller.resync("customer", "99999")
    with pytest.raises(ValueError, match="unknown kind"):
        await harness.poller.resync("supplier", "1")


async def test_a_future_dated_object_does_not_freeze_the_cursor(harness: Harness) -> None:
    """One object Moment dated a day ahead: the cursor stops at the host's clock minus 60 s,
    so a change made after it is still found; the skew is what ``/status`` shows."""
    sb = harness.sandbox
    sb.set_webhook(None)
    ahead = sb.add_customer(name="Fremtid ApS", customer_number="20010")
    harness.clock.shift(86_400)  # Moment's clock a day ahead while it saves this change
    sb.change_customer(ahead.id, email="i-morgen@fremtid.dk")
    harness.clock.shift(-86_400)
    harness.clock.advance(600)  # the host's clock: 09:10
    first = await harness.poller.poll_once("customer")
    assert first.outcomes == {"appended": 1}
    assert first.cursor == "2026-11-20T09:09:00Z"
    assert harness.poller.clock_skew_s == 86_400 - 600
    harness.clock.advance(300)
    later = sb.add_customer(name="Senere ApS", customer_number="20011")
    harness.clock.advance(300)  # 09:20
    second = await harness.poller.poll_once("customer")
    assert second.cursor == "2026-11-20T09:15:00Z"
    numbers = [e.number for e in await harness.events(ev.CustomerUpserted)
               if isinstance(e, ev.CustomerUpserted)]
    assert numbers == ["20010", "20011"] and later.id != ahead.id
    queries = list_queries(harness, "customers")
    assert queries[1]["lastModifiedDateFrom"] == "2026-11-20T09:07:00Z"


async def test_a_persisted_cursor_in_the_future_is_read_as_the_host_clock(
        harness: Harness) -> None:
    await harness.log.append(ev.PollCursorAdvanced(kind="project",
                                                   cursor="2027-01-01T00:00:00Z"),
                             idempotency_key="cursor:project:2027-01-01T00:00:00Z")
    harness.sandbox.set_webhook(None)
    result = await harness.poller.poll_once("project")
    assert result.cursor == "2026-11-20T08:59:00Z"
    assert harness.log.tables.daemon()["cursor:project"].value == "2026-11-20T08:59:00Z"
    assert list_queries(harness, "projects")[0]["lastModifiedDateFrom"] == \
        "2026-11-20T08:57:00Z"
    assert harness.poller.clock_skew_s == 0.0


async def test_an_object_recorded_gone_comes_back_when_moment_shows_it_again(
        harness: Harness) -> None:
    """A 404 that was Moment's hiccup: the customer and the invoice were recorded gone, and
    come back, unchanged, the next time Moment shows them (DESIGN.md: gone is not forever)."""
    sb = harness.sandbox
    sb.set_webhook(None)
    customer = sb.add_customer(name="Tilbage ApS", customer_number="60001")
    invoice = sb.add_invoice(customer_id=customer.id, total_excluding_vat="400.00",
                             finalize=True)
    key = str(invoice.invoice_number)
    for kind, moment_id in (("customer", customer.id), ("invoice", invoice.id)):
        assert await harness.processor.process(kind, moment_id) == Outcome.APPENDED
        # what a 404 for it records (the sandbox's faults are transient errors only)
        assert await harness.processor.ingestor.gone(kind, moment_id) == Outcome.GONE
    assert harness.log.tables.customers()["60001"].gone
    assert harness.log.tables.invoices()[key].gone
    pdf_fetches = sb.count(path_contains=f"/invoices/{invoice.id}/pdf")

    assert await harness.processor.process("customer", customer.id) == Outcome.APPENDED
    assert not harness.log.tables.customers()["60001"].gone
    harness.clock.advance(120)
    result = await harness.poller.poll_once("invoice")  # a listing shows it, as a hint would
    assert result.outcomes == {"appended": 1}
    back = harness.log.tables.invoices()[key]
    assert not back.gone and back.fact.moment_id == invoice.id
    assert sb.count(path_contains=f"/invoices/{invoice.id}/pdf") == pdf_fetches
    # seen again: nothing more
    assert await harness.processor.process("customer", customer.id) == Outcome.UNCHANGED
    assert await harness.processor.process("invoice", invoice.id) == Outcome.UNCHANGED
