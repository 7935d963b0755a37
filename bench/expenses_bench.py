"""Benchmark of expenses, e-conomic → Moment: 10,000 costs booked on projects in the e-conomic
sandbox are read into the log and written to the Moment sandbox by the real poller and
reconciler, over loopback.

``run()`` returns:
- ``expenses.read_calls_10k``: e-conomic calls the booked-entries poller makes to see the 10,000
  entries (their listing pages, and the accounts and VAT codes it reads once; goal: <= 12);
- ``expenses.calls_per_expense``: Moment writes and lookups per expense (``POST`` and ``GET
  /projectExpenses``) while the 10,000 expenses go into Moment (goal: <= 1.05);
- ``expenses.seconds_10k``: wall time from the first read to the last expense in Moment.
"""

from __future__ import annotations

import time

import anyio

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ingest.expensing import BookedEntries
from daemon.moment.client import MomentClient
from daemon.ops import clocking
from daemon.reconcile.running import Reconciler
from daemon.sandbox import economic_books
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.sandbox.moment import MomentSandbox
from daemon.store.eventlog import EventLog

ENTRIES = 10_000
PROJECTS = 10


async def run() -> dict[str, float]:
    clock = clocking.SystemClock()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False),
                                       record_limit=1000) as esb, \
            MomentSandbox.running() as msb:
        customer = msb.add_customer(name="Kunde ApS", customer_number="1")
        facts: list[tuple[ev.Event, str, None]] = [(ev.CustomerUpserted(
            moment_id=customer.id, number="1", name="Kunde ApS"), "customer:1", None)]
        for n in range(1, PROJECTS + 1):
            esb.agreement.add_project(n, f"Projekt {n}", customerNumber=1)
            made = msb.add_project(name=f"Projekt {n}", customer_id=customer.id,
                                   project_number=str(n))
            facts.append((ev.ProjectUpserted(moment_id=made.id, number=str(n),
                                             name=f"Projekt {n}", customer_number="1"),
                          f"project:{n}", None))
        for n in range(ENTRIES):
            economic_books.book_cost(esb.agreement, "supplierInvoice", {
                "amount": f"{100 + n % 900}.{n % 100:02d}", "date": today,
                "projectNumber": n % PROJECTS + 1, "text": f"Udlæg {n}"})
        log = await EventLog.open(":memory:", clock=clock)
        try:
            await log.append_many(facts)
            async with EconomicClient(rest_url=esb.rest_url, apis_url=esb.apis_url,
                                      app_secret_token=Secret(esb.app_secret_token),
                                      agreement_grant_token=Secret(esb.agreement_grant_token),
                                      clock=clock, daily_call_budget=10_000_000) as client, \
                    MomentClient(api_url=msb.api_url, company=msb.company,
                                 api_key=Secret(msb.api_key), clock=clock) as moment:
                started = time.perf_counter()
                reader = BookedEntries(log=log, client=client, clock=clock)
                before = len(esb.served)
                reading = await reader.read_new()
                reads = len(esb.served) - before
                if reading.recorded != ENTRIES:
                    raise RuntimeError(f"recorded {reading.recorded} entries, not {ENTRIES}")
                rec = Reconciler(log=log, client=client, options=mp.Options(expenses=True),
                                 clock=clock, moment=moment)
                msb.clear_requests()
                async with anyio.create_task_group() as tg:
                    await tg.start(rec.run)
                    await rec.until_idle()
                    tg.cancel_scope.cancel()
                seconds = time.perf_counter() - started
                made = len(msb.expenses)
                if made != ENTRIES:
                    raise RuntimeError(f"{made} expenses in Moment, not {ENTRIES}")
                calls = msb.count(path_contains="/projectExpenses")
        finally:
            await log.close()
    return {"expenses.read_calls_10k": float(reads),
            "expenses.calls_per_expense": round(calls / ENTRIES, 3),
            "expenses.seconds_10k": round(seconds, 1)}
