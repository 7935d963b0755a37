"""Preflight's book checks against the e-conomic sandbox: the default account's VAT code must be
readable (an account without one passes), invoice_vat_code must exist ("none" passes), and an
open accounting year must cover every pending invoice's date, not only today."""

from __future__ import annotations

import datetime as dt

import pytest

from daemon import settings as config
from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.ops import preflight
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio
TODAY = dt.datetime.now(dt.UTC).date()


def settings(extra: str = "") -> config.Settings:
    return config.parse('[moment]\ncompany = "acme"\n[economic]\n' + extra, environ={})


async def check(client: EconomicClient, s: config.Settings, name: str,
                pending: set[dt.date] | None = None) -> preflight.Check:
    results = await preflight.run_checks(client, s, today=TODAY, pending=pending or set())
    return next(c for c in results if c.name == name)


async def test_the_default_account_books_with_a_readable_vat_code(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    ok = await check(client, settings("default_account = 1010"), "default_account")
    assert ok.ok and "VAT code U25 at 25 %" in ok.detail
    without = await check(client, settings("default_account = 1020"), "default_account")
    assert without.ok and "without a VAT code" in without.detail
    del sandbox.agreement.vat_accounts["U25"]  # the code the account names cannot be read
    unreadable = await check(client, settings("default_account = 1010"), "default_account")
    assert not unreadable.ok and "U25" in unreadable.detail


async def test_invoice_vat_code(sandbox: EconomicSandbox, client: EconomicClient) -> None:
    del sandbox
    assert (await check(client, settings('invoice_vat_code = "U25"'), "invoice_vat_code")).ok
    none = await check(client, settings('invoice_vat_code = "none"'), "invoice_vat_code")
    assert none.ok and "no VAT code" in none.detail
    assert not (await check(client, settings('invoice_vat_code = "X9"'),
                            "invoice_vat_code")).ok


async def test_an_accounting_year_for_every_pending_invoice(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    del sandbox
    s = settings()
    assert (await check(client, s, "accounting_year", {TODAY.replace(month=1, day=2)})).ok
    old = dt.date(TODAY.year - 5, 6, 30)  # no accounting year that far back
    failed = await check(client, s, "accounting_year", {old})
    assert not failed.ok and old.isoformat() in failed.detail and "pending" in failed.detail


async def test_a_closed_year_fails_for_a_pending_invoice_in_it(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    sandbox.agreement.accounting_years[str(TODAY.year - 1)]["closed"] = True
    last_year = dt.date(TODAY.year - 1, 12, 1)
    assert (await check(client, settings(), "accounting_year")).ok  # today alone is fine
    failed = await check(client, settings(), "accounting_year", {last_year})
    assert not failed.ok and "closed" in failed.detail


async def test_pending_dates_are_those_of_invoices_not_yet_booked() -> None:
    log = await EventLog.open(":memory:", clock=FakeClock())
    try:
        for n, day in ((1, "2024-03-01"), (2, "2025-06-30"), (3, "2025-07-01")):
            await log.append(ev.InvoiceFinalized(moment_id=n, number=n, invoice_date=day),
                             idempotency_key=f"invoice:{n}")
        await log.append(ev.InvoiceBooked(kind="invoice", key="1", accounting_year="2024",
                                          voucher_number=1), idempotency_key="booked:1")
        assert preflight.pending_dates(log.tables) == {dt.date(2025, 6, 30),
                                                       dt.date(2025, 7, 1)}
    finally:
        await log.close()


async def test_expense_accounts_are_checked_only_when_expenses_are_on(
        sandbox: EconomicSandbox, client: EconomicClient) -> None:
    del sandbox
    off = await preflight.run_checks(client, settings(), today=TODAY)
    assert "expense_accounts" not in {c.name for c in off}

    def on(accounts: str) -> config.Settings:
        return config.parse('[moment]\ncompany = "acme"\n[expenses]\nenabled = true\n'
                            f"accounts = {accounts}\n", environ={})

    every = await check(client, on("[]"), "expense_accounts")
    assert every.ok and "every profit-and-loss account" in every.detail
    good = await check(client, on("[2750, 2800]"), "expense_accounts")
    assert good.ok and "2750, 2800" in good.detail
    bad = await check(client, on("[2750, 5820, 4242]"), "expense_accounts")
    assert not bad.ok
    assert bad.detail == ("[expenses] accounts: 5820 (Bank) is not a profit-and-loss account; "
                          "4242 does not exist")
