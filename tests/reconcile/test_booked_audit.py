"""A full reconcile compares each booked invoice with e-conomic's booked entry: a difference
in amount, customer, date, VAT or VAT code (or no entry at all) is recorded once, shown in
``/status`` and alerted, never edited, and withdrawn once the entry agrees again; the reads go
by 200 voucher numbers, never one per invoice."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import unquote

import aiohttp
import anyio
import pytest

from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import customer, reconciler, record, record_invoices, settle

pytestmark = pytest.mark.anyio


class Observer:
    def __init__(self) -> None:
        self.mismatches: list[tuple[str, list[str], str]] = []

    def parked(self, kind: str, key: str, reason: str) -> None:
        del kind, key, reason

    def pdf_skipped(self, invoice: str, reason: str) -> None:
        del invoice, reason

    def drift_repaired(self, kind: str, key: str, fields: list[str]) -> None:
        del kind, key, fields

    def warned(self, kind: str, key: str, warning: str) -> None:
        del kind, key, warning

    def booked_mismatch(self, invoice: str, fields: list[str], note: str) -> None:
        self.mismatches.append((invoice, fields, note))


def customer_row(sandbox: EconomicSandbox, invoice: int) -> int:
    return next(n for n, r in sandbox.agreement.booked_entries.items()
                if r.get("customerInvoiceNumber") == invoice)


async def admin_patch(sandbox: EconomicSandbox, entry: int, body: dict[str, Any]
                      ) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.patch(
            f"{sandbox.admin_url}/booked-entries/{entry}", json=body) as r:
        return r.status, await r.json()


def voucher_rows(sandbox: EconomicSandbox, invoice: int) -> dict[int, dict[str, Any]]:
    """The booked rows on invoice ``invoice``'s voucher, by entry number."""
    voucher = sandbox.agreement.booked_entries[customer_row(sandbox, invoice)]["voucherNumber"]
    return {n: r for n, r in sandbox.agreement.booked_entries.items()
            if r["voucherNumber"] == voucher}


def booked_reads(sandbox: EconomicSandbox) -> list[str]:
    return [s.query for s in sandbox.served if "booked-entries" in s.path]


async def full(rec: Reconciler) -> None:
    await rec.reconcile_now()
    await settle(rec)


def mismatches(events: list[ev.Event]) -> list[ev.BookedMismatch]:
    return [e for e in events if isinstance(e, ev.BookedMismatch)]


async def test_a_booked_entry_changed_in_economic_is_reported_once_and_never_edited(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1), customer(2)])
    await record_invoices(log, [(21, 1, None), (22, 1, None), (23, 2, None)])
    obs = Observer()
    rec = reconciler(log, client, observer=obs)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert all(log.tables.state("invoice", k).booked for k in ("21", "22", "23"))
        status, reply = await admin_patch(sandbox, customer_row(sandbox, 21),
                                          {"amount": "30.00", "date": "2026-11-21"})
        assert status == 200, reply
        del sandbox.agreement.booked_entries[customer_row(sandbox, 23)]
        sandbox.served.clear()
        await full(rec)
        assert len(booked_reads(sandbox)) == 1  # three invoices, one read
        assert [s for s in sandbox.served if s.method != "GET"] == []
        await full(rec)  # the same differences: not recorded again
        tg.cancel_scope.cancel()
    found = mismatches([r.event for r in await log.read_entity("invoice", "21")])
    assert [e.fields for e in found] == [("amount", "date")]
    note = found[0].detail
    assert note == (
        "Invoice 21's booked entry in e-conomic (voucher "
        f"{log.tables.state('invoice', '21').voucher_number} "
        f"({log.tables.state('invoice', '21').accounting_year})) differs from the invoice in "
        "Moment: amount 30.00 DKK in e-conomic, 26.25 DKK in Moment; date 2026-11-21 in "
        "e-conomic, 2026-11-20 in Moment. The daemon never edits booked entries: if "
        "e-conomic's entry is wrong, correct it there with a new entry (or a credit note).")
    assert mismatches([r.event for r in await log.read_entity("invoice", "22")]) == []
    gone = mismatches([r.event for r in await log.read_entity("invoice", "23")])
    assert [e.fields for e in gone] == [("missing",)]
    assert "no customer entry for invoice 23 on that voucher" in gone[0].detail
    assert [(i, f) for i, f, _n in obs.mismatches] == [("21", ["amount", "date"]),
                                                       ("23", ["missing"])]
    shown = rec.status().reconcile.booked_mismatches
    assert [(m.number, m.fields, m.note) for m in shown] == [
        (21, ["amount", "date"], note), (23, ["missing"], gone[0].detail)]
    assert sandbox.agreement.booked_entries[customer_row(sandbox, 21)]["amount"] == 30


async def test_another_customer_on_the_booked_entry_is_reported(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1), customer(2)])
    await record_invoices(log, [(31, 1, None)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        status, _ = await admin_patch(sandbox, customer_row(sandbox, 31), {"customerNumber": 2})
        assert status == 200
        await full(rec)
        tg.cancel_scope.cancel()
    found = mismatches([r.event for r in await log.read_entity("invoice", "31")])
    assert [e.fields for e in found] == [("customer",)]
    assert "customer 2 in e-conomic, customer 1 in Moment" in found[0].detail


async def test_booked_invoices_are_read_back_by_200_numbers_not_one_by_one(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    n = 401
    await record(log, [customer(c) for c in range(1, 4)])
    await record_invoices(log, [(k, 1 + k % 3, None) for k in range(1000, 1000 + n)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert sum(st.booked for st in log.tables.states().values()) == n
        sandbox.served.clear()
        await full(rec)
        tg.cancel_scope.cancel()
    reads = booked_reads(sandbox)
    groups = {unquote(q).split("voucherNumber$in:")[1].split("$and:")[0] for q in reads}
    assert len(groups) == math.ceil(n / 200)
    assert len(reads) <= math.ceil(n / 200) * 2  # with the pages, never one per invoice
    assert rec.status().reconcile.booked_mismatches == []
    assert not any(isinstance(r.event, ev.BookedMismatch) for r in await log.read())


async def test_vat_changed_on_the_booked_entry_is_reported_and_withdrawn_when_it_agrees_again(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1)])
    # 100.00 net on account 1010 (U25): 125.00 with 25.00 of VAT, as Moment says
    await record_invoices(log, [(100, 1, None), (101, 1, None)])
    obs = Observer()
    rec = reconciler(log, client, observer=obs)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert log.tables.state("invoice", "100").vat_code == "U25"
        rows = voucher_rows(sandbox, 100)
        [revenue] = [n for n, r in rows.items() if r.get("vatAccountNumber")]
        [vat] = [n for n, r in rows.items()
                 if "customerNumber" not in r and not r.get("vatAccountNumber")]
        assert (rows[revenue]["amount"], rows[vat]["amount"]) == (-100, -25)
        status, reply = await admin_patch(sandbox, vat, {"amount": "-5.00"})
        assert status == 200, reply
        status, reply = await admin_patch(sandbox, revenue, {"vatAccountNumber": None})
        assert status == 200, reply
        # the other invoice: its VAT row moved within the tolerance is no difference
        [vat101] = [n for n, r in voucher_rows(sandbox, 101).items()
                    if "customerNumber" not in r and not r.get("vatAccountNumber")]
        assert (await admin_patch(sandbox, vat101, {"amount": "-25.75"}))[0] == 200
        sandbox.served.clear()
        await full(rec)
        assert [s for s in sandbox.served if s.method != "GET"] == []
        assert len(booked_reads(sandbox)) == 1
        shown = rec.status().reconcile.booked_mismatches
        assert [(m.number, m.fields) for m in shown] == [(100, ["vat", "vat_code"])]
        st = log.tables.state("invoice", "100")
        assert shown[0].note == (
            f"Invoice 100's booked entry in e-conomic (voucher {st.voucher_number} "
            f"({st.accounting_year})) differs from the invoice in Moment: VAT 5.00 DKK in "
            "e-conomic (net 100.00 on account 1010, gross 125.00), 25.00 DKK in Moment; VAT "
            "code none on account 1010 in e-conomic, U25 as the daemon booked it. The daemon "
            "never edits booked entries: if e-conomic's entry is wrong, correct it there with "
            "a new entry (or a credit note).")
        assert obs.mismatches == [("100", ["vat", "vat_code"], shown[0].note)]
        # corrected in e-conomic: the next full reconcile withdraws the report
        await admin_patch(sandbox, vat, {"amount": "-25.00"})
        await admin_patch(sandbox, revenue, {"vatAccountNumber": "U25"})
        await full(rec)
        assert rec.status().reconcile.booked_mismatches == []
        assert log.tables.state("invoice", "100").warnings == ()
        await full(rec)  # nothing more to withdraw
        tg.cancel_scope.cancel()
    events = [r.event for r in await log.read_entity("invoice", "100")]
    assert [type(e).__name__ for e in events
            if isinstance(e, ev.BookedMismatch | ev.BookedMatched)] == [
        "BookedMismatch", "BookedMatched"]
    assert obs.mismatches == [("100", ["vat", "vat_code"], shown[0].note)]  # no new alert
    assert mismatches([r.event for r in await log.read_entity("invoice", "101")]) == []
    assert sandbox.agreement.booked_entries[vat]["amount"] == -25


async def test_a_booked_entry_changed_then_set_right_in_another_field_is_reported_anew(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1)])
    await record_invoices(log, [(41, 1, None)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        row = customer_row(sandbox, 41)
        await admin_patch(sandbox, row, {"date": "2026-11-22"})
        await full(rec)
        await admin_patch(sandbox, row, {"date": "2026-11-20", "amount": "1.00"})
        await full(rec)
        tg.cancel_scope.cancel()
    found = mismatches([r.event for r in await log.read_entity("invoice", "41")])
    assert [e.fields for e in found] == [("date",), ("amount",)]
    assert [(m.fields) for m in rec.status().reconcile.booked_mismatches] == [["amount"]]
