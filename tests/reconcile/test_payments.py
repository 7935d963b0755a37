"""Paid status, e-conomic -> Moment: invoices booked by the daemon, paid (partly, fully) or
settled by a credit note in the e-conomic sandbox, read in one filtered, paged read per pass,
recorded as facts and set in the Moment sandbox, each change once; faults back off, refusals
park with a sentence. Both sandboxes over loopback, one fake clock."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import msgspec
import pytest

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import payments as pay
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ingest import paying
from daemon.moment import client as moment_client
from daemon.reconcile import planning
from daemon.reconcile.running import Reconciler
from daemon.sandbox import economic_books
from daemon.sandbox import moment as moment_sandbox
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import (
    OPTIONS,
    customer,
    invoice,
    pdf,
    reconciler,
    record,
    settle,
)

pytestmark = pytest.mark.anyio

PAYING = msgspec.structs.replace(OPTIONS, payments=True)


@dataclass
class World:
    economic: EconomicSandbox
    moment: moment_sandbox.MomentSandbox
    log: EventLog
    rec: Reconciler
    reader: paying.PaidStatus
    clock: FakeClock
    ids: dict[int, int]  # invoice number -> Moment id

    def status(self, number: int) -> dict[str, Any]:
        return self.moment.payment_status(self.ids[number])

    def pay(self, number: int, amount: str, *, customer_number: int = 1) -> None:
        economic_books.pay(self.economic.agreement, {
            "customerNumber": customer_number, "customerInvoiceNumber": number,
            "amount": amount, "date": "2026-11-28"})

    async def converge(self) -> int:
        appended = await self.reader.refresh()
        await settle(self.rec)
        return appended

    def puts(self) -> list[str]:
        return [r.path for r in self.moment.requests if r.method == "PUT"]


async def book(log: EventLog, msb: moment_sandbox.MomentSandbox,
               invoices: list[tuple[int, str]]) -> dict[int, int]:
    """Moment invoices (number, total excl. VAT) of customer 1, finalized in the Moment
    sandbox and recorded as facts; returns their Moment ids."""
    mcust = msb.add_customer(name="Kunde 1 ApS", customer_number="1")
    ids: dict[int, int] = {}
    facts: list[ev.Event] = [customer(1)]
    for number, total in invoices:
        credit = total.startswith("-")
        rec = msb.add_invoice(customer_id=mcust.id, total_excluding_vat=total, finalize=True)
        ids[number] = rec.id
        sha = await log.put_blob(pdf(number))
        net = msb.invoices[rec.id].total_excluding_vat
        vat = msb.invoices[rec.id].total_vat
        facts.append(invoice(number, 1, None, sha=sha, moment_id=rec.id,
                             total_excluding_vat=str(net), total_vat=str(vat),
                             total_including_vat=str(net + vat), is_credit_note=credit))
    await record(log, facts)
    return ids


@pytest.fixture
async def world(log: EventLog, clock: FakeClock, sandbox: EconomicSandbox,
                client: EconomicClient) -> AsyncIterator[World]:
    async with moment_sandbox.MomentSandbox.running(port=0, now=clock.utcnow) as msb, \
            moment_client.MomentClient(api_url=msb.api_url, company=msb.company,
                                       api_key=Secret(msb.api_key), timeout_s=5.0,
                                       clock=clock) as mc:
        ids = await book(log, msb, [(1, "1000.00"), (2, "400.00"), (3, "-400.00"),
                                    (4, "80.00")])
        rec = reconciler(log, client, options=PAYING, moment=mc)
        reader = paying.PaidStatus(log=log, client=client, clock=clock)
        async with anyio.create_task_group() as tg:
            await tg.start(rec.run)
            await settle(rec)
            yield World(economic=sandbox, moment=msb, log=log, rec=rec, reader=reader,
                        clock=clock, ids=ids)
            tg.cancel_scope.cancel()


async def test_partial_then_full_payment_shows_in_moment(world: World) -> None:
    assert all(world.log.tables.state("invoice", str(n)).booked for n in (1, 2, 3, 4))
    # nothing paid yet: no fact, nothing written (Moment shows "not paid" untold)
    assert await world.converge() == 0
    assert world.puts() == []
    world.pay(1, "500.00")
    assert await world.converge() == 1
    today = world.clock.utcnow().date().isoformat()
    assert world.status(1) == {"paidAmount": "500.00", "fullyPaid": False, "paidDate": today,
                               "externalId": "economic:2026:invoice:1"}
    world.clock.advance(86_400.0)
    world.pay(1, "750.00")  # 1250.00 incl. VAT: paid in full
    assert await world.converge() == 1
    later = world.clock.utcnow().date().isoformat()
    assert world.status(1) == {"paidAmount": "1250.00", "fullyPaid": True, "paidDate": later,
                               "externalId": "economic:2026:invoice:1"}
    assert len(world.puts()) == 2
    # read again, nothing changed: no fact, no write
    assert await world.converge() == 0
    assert len(world.puts()) == 2
    counts = msgspec.to_builtins(world.rec.status().entities)
    assert counts["payment"] == {"desired": 1, "in_sync": 1, "pending": 0, "parked": 0}


async def test_a_credit_note_that_settles_an_invoice_shows_both_settled(world: World) -> None:
    economic_books.settle(world.economic.agreement, {
        "customerNumber": 1, "customerInvoiceNumber": 2, "creditNoteNumber": 3})
    assert await world.converge() == 2
    assert world.status(2)["paidAmount"] == "500.00" and world.status(2)["fullyPaid"]
    # a credit note's paid amount is what it settled, never negative
    assert world.status(3)["paidAmount"] == "500.00" and world.status(3)["fullyPaid"]
    assert world.status(1)["paidAmount"] == "0.00" and world.status(4)["fullyPaid"] is False


async def test_one_read_per_pass_for_every_invoice(world: World) -> None:
    world.economic.served.clear()
    for n in (1, 2, 4):
        world.pay(n, "10.00")
    await world.reader.refresh()
    reads = [r for r in world.economic.requests() if "booked-entries" in r.path]
    assert len(reads) == 1
    query = urllib.parse.unquote(reads[0].query)
    assert "customerInvoiceNumber$gte:1" in query and "customerInvoiceNumber$lte:4" in query


async def test_moment_faults_back_off_and_the_status_is_set_once(world: World) -> None:
    world.moment.faults.add(503, count=2, path_contains="/paymentStatus", method="PUT")
    # commit-then-drop; twice, since aiohttp re-sends an idempotent PUT once on its own when
    # the connection it reused was cut
    world.moment.faults.add(None, drop=True, count=2, path_contains="/paymentStatus",
                            method="PUT")
    world.pay(4, "100.00")  # 80 + 20 VAT: paid in full
    await world.converge()
    assert world.status(4)["fullyPaid"] is True
    st = world.log.tables.state("payment", "4")
    assert st.applied_hash and not st.intents and not st.parked
    puts = world.puts()
    assert len(puts) == 4  # two 503s, then the dropped ones that Moment applied
    # after the drop the outcome was unknown: the next attempt read Moment and wrote nothing
    assert [(r.method, r.status) for r in world.moment.requests] == [
        ("GET", 200), ("PUT", 503), ("GET", 200), ("PUT", 503), ("GET", 200), ("PUT", 200),
        ("PUT", 200), ("GET", 200)]
    assert [type(e).__name__ for e in await events(world.log, "payment", "4")].count(
        "WriteIntended") == 1


async def test_moment_refusing_parks_with_a_sentence_and_the_rest_go_on(world: World) -> None:
    del world.moment.invoices[world.ids[1]]  # Moment lost the invoice
    world.pay(1, "100.00")
    world.pay(4, "10.00")
    await world.converge()
    st = world.log.tables.state("payment", "1")
    assert st.parked
    assert st.reason.startswith(f"payment of invoice 1 (Moment id {world.ids[1]}): Moment has "
                                "no invoice with that id")
    assert world.status(4)["paidAmount"] == "10.00"
    parked = [e for e in await events(world.log, "payment", "1") if isinstance(e, ev.Parked)]
    assert len(parked) == 1


async def test_plan_and_status_show_the_kind(world: World) -> None:
    world.pay(1, "100.00")
    await world.reader.refresh()  # the fact, not yet in Moment
    report = await planning.plan(world.log, world.rec.controls.client, PAYING, kind="payment")
    assert report.pending == 1
    action = report.kinds["payment"].actions[0]
    assert (action.key, action.action) == ("1", "update")
    assert action.detail.startswith("partially paid (100.00)")
    await settle(world.rec)
    report = await planning.plan(world.log, world.rec.controls.client, PAYING, kind="payment")
    assert report.pending == 0


async def events(log: EventLog, kind: str, key: str) -> list[ev.Event]:
    return [r.event for r in await log.read_entity(kind, key)]


# --- the pure mapping -----------------------------------------------------------------------

def fact(amount: str, remainder: str, **kw: Any) -> ev.PaymentObserved:
    base: dict[str, Any] = {"invoice_number": 7, "moment_id": 70, "year": "2026",
                            "entry_number": 1, "amount": amount, "remainder": remainder,
                            "seen_on": "2026-11-28"}
    base.update(kw)
    return ev.PaymentObserved(**base)


@pytest.mark.parametrize(("amount", "remainder", "paid", "fully"), [
    ("1250.00", "1250.00", "0.00", False),
    ("1250.00", "750.00", "500.00", False),
    ("1250.00", "0.00", "1250.00", True),
    ("1250.00", "-10.00", "1260.00", True),   # overpaid
    ("-500.00", "-500.00", "0.00", False),    # a credit note not yet used
    ("-500.00", "-100.00", "400.00", False),
    ("-500.00", "0.00", "500.00", True),      # a credit note that settled
])
def test_paid_amount_and_fully_paid(amount: str, remainder: str, paid: str,
                                    fully: bool) -> None:
    mapped = pay.map_payment(fact(amount, remainder))
    assert mapped.value is not None
    assert (mapped.value.paid_amount, mapped.value.fully_paid) == (paid, fully)
    assert mapped.value.external_id == "economic:2026:invoice:7"
    assert mapped.value.paid_date == (None if paid == "0.00" else "2026-11-28")


def test_a_row_that_does_not_parse_is_a_problem_not_a_crash() -> None:
    mapped = pay.map_payment(fact("tolv", "0"))
    assert mapped.value is None and "is not a number" in mapped.problem
    assert "invoice 7" in mapped.problem


def test_what_is_a_new_fact() -> None:
    assert not pay.changed(None, "100.00", "100.00")  # never paid, never recorded
    assert pay.changed(None, "100.00", "40.00")
    seen = fact("100.00", "40.00")
    assert not pay.changed(seen, "100.00", "40.0")
    assert pay.changed(seen, "100.00", "100.00")  # the payment was reversed
    assert pay.fact_key(7, "1", "2", 5) != pay.fact_key(7, "1", "2", 9)


def test_paid_date_is_written_as_a_date() -> None:
    from daemon.reconcile import payments

    mapped = pay.map_payment(fact("100.00", "0.00"))
    assert mapped.value is not None
    sent = payments.body(mapped.value)
    assert sent.paid_date == dt.date(2026, 11, 28) and sent.fully_paid
    assert isinstance(mp.Options().payments, bool)


async def test_a_day_book_webhook_reads_the_paid_status_now(world: World) -> None:
    """The reader wakes for e-conomic's day-book hint, not at its next hour: no time passes."""
    async with anyio.create_task_group() as tg:
        await tg.start(world.reader.run)
        with anyio.fail_after(30):
            await world.reader.after_round(1)  # the read at start: nothing paid
            world.pay(2, "100.00")
            await world.log.append(ev.EconomicHintReceived(kind="daybook", daybook="1",
                                                           first="9", last="9"),
                                   idempotency_key="hint:daybook:1")
            await world.reader.after_round(2)
            await settle(world.rec)
        tg.cancel_scope.cancel()
    assert world.clock.elapsed == 0.0
    assert world.reader.reads == 2
    assert world.status(2)["paidAmount"] == "100.00"


def test_a_gap_in_the_numbering_is_a_range_of_its_own_in_the_same_read() -> None:
    assert paying.ranges([1, 2, 3, 900, 5000, 5001]) == [(1, 900), (5000, 5001)]
    assert paying.ranges([]) == []
    [flt] = paying.range_filters([1, 2, 5000])
    assert str(flt) == ("(customerInvoiceNumber$gte:1$and:customerInvoiceNumber$lte:2)$or:"
                        "(customerInvoiceNumber$gte:5000$and:customerInvoiceNumber$lte:5000)")
    many = paying.range_filters([n * 2000 for n in range(1, 42)])  # 41 runs: 3 reads
    assert len(many) == 3


async def test_a_new_number_series_is_read_in_the_same_read(world: World, log: EventLog) -> None:
    """Invoice 5001 (a series of its own) and invoice 1 paid: one read finds both."""
    msb = world.moment
    mcust = next(iter(msb.customers.values()))
    rec = msb.add_invoice(customer_id=mcust.id, total_excluding_vat="80.00", finalize=True)
    world.ids[5001] = rec.id
    await record(log, [invoice(5001, 1, None, sha=await log.put_blob(pdf(5001)),
                               moment_id=rec.id, total_excluding_vat="80.00",
                               total_vat="20.00", total_including_vat="100.00")])
    await settle(world.rec)
    assert world.log.tables.state("invoice", "5001").booked
    world.pay(1, "1250.00")
    world.pay(5001, "100.00")
    world.economic.served.clear()
    assert await world.converge() == 2
    assert len([r for r in world.economic.requests() if "booked-entries" in r.path]) == 1
    assert world.status(5001)["fullyPaid"] and world.status(1)["fullyPaid"]


async def test_a_429_from_moment_waits_out_its_retry_after(world: World) -> None:
    world.moment.faults.add(429, retry_after=30, path_contains="/paymentStatus", method="PUT")
    world.pay(4, "100.00")
    started = world.clock.monotonic()
    await world.converge()
    assert world.status(4)["fullyPaid"] is True
    # the backoff honoured Retry-After, and so did the client's own pause: 30 s, not less
    assert world.clock.monotonic() - started >= 30.0
    assert [r.status for r in world.moment.requests if r.method == "PUT"] == [429, 200]
    assert world.rec.controls.moment is not None
    assert world.rec.controls.moment.limiter.rate_limited == 1
