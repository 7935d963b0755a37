"""Benchmark of the paid-status read (e-conomic -> Moment) against the in-process e-conomic
sandbox (file-backed log).

``run()`` returns:
- ``payments.read_calls_10k``: e-conomic reads (``GET /booked-entries`` pages) to refresh the
  paid status of 10,000 booked invoices, a third of them paid in part or in full since (goal:
  <= 12; one filtered read followed page by page, 1000 rows a page);
- ``payments.facts_10k``: the facts that read appended (exactly the invoices paid);
- ``payments.refresh_s``: its wall time (the read, the matching and the appends).

The 10,000 invoices are booked in the sandbox's books as the daemon's journal would book them
(a customer row each, on its own voucher) and recorded in the log as the daemon records them
(the Moment fact, then ``InvoiceBooked``); the payments are a person's (the sandbox's admin
bookings), so the remainders move as e-conomic moves them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from daemon.core import events as ev
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ingest import paying
from daemon.ops import clocking
from daemon.sandbox import economic_books
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog

INVOICES = 10_000
CUSTOMER = 1


def _book(sb: EconomicSandbox, n: int, voucher: int) -> None:
    """Invoice ``n`` (1250.00 incl. VAT) booked on ``voucher`` of this year, in journal 1."""
    a = sb.agreement
    year = str(time.gmtime().tm_year)
    economic_books.book(a, {
        "entryTypeNumber": 10, "journalNumber": 1, "_year": year, "voucherNumber": voucher,
        "date": f"{year}-11-20T00:00:00Z", "currency": "DKK", "amount": "1250.00",
        "customerNumber": CUSTOMER, "customerInvoiceNumber": str(n),
        "contraAccountNumber": 1010, "contraVatCode": "U25"})


async def _record(log: EventLog, year: str) -> None:
    batch: list[tuple[ev.Event, str, Any]] = []
    for n in range(1, INVOICES + 1):
        batch.append((ev.InvoiceFinalized(moment_id=1_000_000 + n, number=n,
                                          customer_number=str(CUSTOMER),
                                          invoice_date=f"{year}-11-20", currency="DKK",
                                          total_including_vat="1250.00"),
                      f"invoice:{n}", None))
        batch.append((ev.InvoiceBooked(kind="invoice", key=str(n), accounting_year=year,
                                       voucher_number=n), f"booked:{n}", None))
        if len(batch) >= 2000:
            await log.append_many(batch)
            batch = []
    if batch:
        await log.append_many(batch)


async def run() -> dict[str, float]:
    clock = clocking.SystemClock()
    year = str(time.gmtime().tm_year)
    with tempfile.TemporaryDirectory(prefix="moment-sync-bench-") as tmp:
        async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb:
            sb.agreement.add_customer(CUSTOMER, "Kunde 1 ApS")
            for n in range(1, INVOICES + 1):
                _book(sb, n, voucher=n)
            for n in range(1, INVOICES + 1, 3):  # a third paid: half of those in full
                economic_books.pay(sb.agreement, {
                    "customerNumber": CUSTOMER, "customerInvoiceNumber": n,
                    "amount": "1250.00" if n % 2 else "500.00", "date": f"{year}-11-28"})
            log = await EventLog.open(Path(tmp) / "events.db", clock=clock)
            async with log, EconomicClient(
                    rest_url=sb.rest_url, apis_url=sb.apis_url,
                    app_secret_token=Secret(sb.app_secret_token),
                    agreement_grant_token=Secret(sb.agreement_grant_token),
                    clock=clock) as client:
                await _record(log, year)
                reader = paying.PaidStatus(log=log, client=client, clock=clock)
                sb.served.clear()
                start = time.perf_counter()
                facts = await reader.refresh()
                took = time.perf_counter() - start
                reads = len([s for s in sb.served if "booked-entries" in s.path])
    return {"payments.read_calls_10k": float(reads), "payments.facts_10k": float(facts),
            "payments.refresh_s": round(took, 2)}
