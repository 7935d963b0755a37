"""A full reconcile compares each booked invoice with e-conomic's booked entry: a difference
in amount, customer or date (or no entry at all) is recorded once, shown in ``/status`` and
alerted, never edited; the reads go by 200 invoice numbers, never one per invoice."""

from __future__ import annotations

import math
from typing import Any

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
    assert "customer customer 2 in e-conomic, customer 1 in Moment" in found[0].detail


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
    groups = {q.split("customerInvoiceNumber$in:")[1].split("&")[0].split(";")[0]
              for q in reads}
    assert len(groups) == math.ceil(n / 200)
    assert len(reads) <= math.ceil(n / 200) * 2  # with the pages, never one per invoice
    assert rec.status().reconcile.booked_mismatches == []
    assert not any(isinstance(r.event, ev.BookedMismatch) for r in await log.read())
