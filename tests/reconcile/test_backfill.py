"""A backfill of 500 customers, 300 projects and 400 invoices converges with the minimal plan:
the sandbox holds exactly the mapped data, every invoice once, booked, with its PDF, and the
requests it served are those the plan needs and no more."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import anyio
import msgspec
import pytest

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic.client import EconomicClient
from daemon.reconcile import planning
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import (
    OPTIONS,
    customer,
    pdf,
    project,
    reconciler,
    record,
    record_invoices,
    settle,
)

pytestmark = pytest.mark.anyio
CUSTOMERS, PROJECTS, INVOICES = 500, 300, 400


async def converge(rec: Reconciler) -> float:
    """Run the reconciler until it is idle; returns the clock's monotonic time then."""
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        at = await settle(rec)
        tg.cancel_scope.cancel()
    return at


def served(sb: EconomicSandbox) -> Counter[str]:
    out: Counter[str] = Counter()
    for s in sb.served:
        path = s.path
        for prefix in ("/rest/customers/", "/apis/projectsapi/v1.1.0/Projects/"):
            if path.startswith(prefix):
                path = prefix + "{n}"
        out[f"{s.method} {path}"] += 1
    return out


async def test_backfill_converges_with_minimal_plan(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    facts: list[ev.Event] = [customer(n, vat_code=("DK", "EU", "ABROAD")[n % 3])
                             for n in range(1, CUSTOMERS + 1)]
    facts += [project(n, n) for n in range(1, PROJECTS + 1)]
    await record(log, facts)
    await record_invoices(log, [(1000 + n, n % CUSTOMERS + 1, (n % PROJECTS + 1) if n % 4 else None)
                                for n in range(INVOICES)])
    rec = reconciler(log, client)
    await converge(rec)
    a = sandbox.agreement

    # exactly the mapped data
    assert sorted(a.customers) == list(range(1, CUSTOMERS + 1))
    for n in (1, 2, 3, 250, 500):
        want = mp.map_customer(customer(n, vat_code=("DK", "EU", "ABROAD")[n % 3]), OPTIONS).value
        assert want is not None
        got = a.customers[n]
        assert (got["name"], got["email"], got["corporateIdentificationNumber"], got["address"],
                got["zip"], got["city"], got["country"], got["vatZone"]["vatZoneNumber"],
                got["currency"], got["customerGroup"]["customerGroupNumber"],
                got["paymentTerms"]["paymentTermsNumber"]) == \
            (want.name, want.email, want.corporate_id, want.address, want.zip, want.city,
             want.country, want.vat_zone, "DKK", 1, 1)
    assert sorted(a.projects) == list(range(1, PROJECTS + 1))
    assert all(p["customerNumber"] == n and p["name"] == f"Projekt {n}"
               for n, p in a.projects.items())

    # every invoice once, booked, with its PDF on its own voucher
    assert not a.draft_entries
    lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
    numbers = Counter(b["customerInvoiceNumber"] for b in lines)
    assert sorted(numbers) == [1000 + n for n in range(INVOICES)]
    assert set(numbers.values()) == {1}
    for b in lines:
        n = b["customerInvoiceNumber"] - 1000
        assert Decimal(str(b["amount"])) == Decimal(f"{(1000 + n) * 1.25:.2f}")
        assert b["customerNumber"] == n % CUSTOMERS + 1
        assert b.get("projectNumber") == ((n % PROJECTS + 1) if n % 4 else None)
    vouchers = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"] for b in lines}
    assert len(vouchers) == INVOICES  # one voucher per invoice
    assert len(a.documents) == INVOICES
    for d in a.documents.values():
        assert d.content == [pdf(vouchers[(d.accounting_year, d.voucher_number)])]

    # the requests served are the minimal plan
    calls = served(sandbox)
    writes = {k: v for k, v in calls.items() if not k.startswith("GET")}
    assert writes == {"PUT /rest/customers/{n}": CUSTOMERS,
                      "POST /apis/projectsapi/v1.1.0/Projects": PROJECTS,
                      "POST /apis/journalsapi/v15.0.0/draft-entries/bulk": 1,
                      "POST /apis/documentsapi/v4.0.1/AttachedDocuments": INVOICES,
                      "POST /apis/journalsapi/v15.0.0/journals/1/bookdraftentries": 1}
    reads = {k: v for k, v in calls.items() if k.startswith("GET")}
    # creating entries is preceded by the lookup: the drafts of the invoices' 400 customers
    # and the booked entries of their 400 numbers, in groups of 200; then one read-back
    assert reads == {"GET /rest/customers": 1, "GET /apis/projectsapi/v1.1.0/Projects": 1,
                     "GET /apis/journalsapi/v15.0.0/draft-entries": 2 + 1,
                     "GET /apis/bookedEntriesapi/v4.0.0/booked-entries": 2,
                     "GET /rest/accounting-years": 1,
                     # the books (accounts' VAT codes, rates, base currency), read once
                     "GET /rest/accounts": 1, "GET /rest/vat-accounts": 1, "GET /rest/self": 1}
    counts = msgspec.to_builtins(rec.status().entities)
    assert counts == {"customer": {"desired": 500, "in_sync": 500, "pending": 0, "parked": 0},
                      "project": {"desired": 300, "in_sync": 300, "pending": 0, "parked": 0},
                      "invoice": {"desired": 400, "in_sync": 400, "pending": 0, "parked": 0}}

    # a full sweep of N customers reads ceil(N/1000) pages, compares the booked invoices by
    # 200 voucher numbers a read (never one per invoice) with the books read afresh (the VAT
    # accounts say which rows hold VAT) and the accounting years (their dates bound the
    # read), and writes nothing
    sandbox.served.clear()
    await rec.full_sweep()
    assert rec.idle()
    assert served(sandbox) == {"GET /rest/customers": math.ceil(CUSTOMERS / 1000),
                               "GET /apis/projectsapi/v1.1.0/Projects": 1,
                               "GET /apis/bookedEntriesapi/v4.0.0/booked-entries":
                                   math.ceil(INVOICES / 200),
                               "GET /rest/accounting-years": 1, "GET /rest/accounts": 1,
                               "GET /rest/vat-accounts": 1, "GET /rest/self": 1}
    report = await rec.plan()
    assert report.pending == 0 and planning.exit_code(report) == 0


async def test_history_recorded_while_stopped_costs_only_its_latest_state(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    """Controller off, then on: the controllers are level-triggered, so three versions of an
    object recorded while the daemon was down cost one write, of the last version, and an
    object created and gone in the meantime costs nothing."""
    facts: list[ev.Event] = []
    for v in range(3):
        facts += [customer(n, name=f"Kunde {n} v{v}") for n in range(1, 21)]
        facts += [project(n, n, name=f"Projekt {n} v{v}") for n in range(1, 11)]
    gone_customer, gone_project = customer(21), project(11, 21)
    await record(log, [*facts, gone_customer, gone_project])
    await record(log, [
        ev.EntityGone(kind=kind, key=key, moment_id=f.moment_id)
        for f in (gone_customer, gone_project) for kind, key in [ev.entity_of(f)]])
    await converge(reconciler(log, client))
    a = sandbox.agreement
    assert {n: c["name"] for n, c in a.customers.items()} == {
        n: f"Kunde {n} v2" for n in range(1, 21)}
    assert {n: p["name"] for n, p in a.projects.items()} == {
        n: f"Projekt {n} v2" for n in range(1, 11)}
    writes = {k: v for k, v in served(sandbox).items() if not k.startswith("GET")}
    assert writes == {"PUT /rest/customers/{n}": 20,
                      "POST /apis/projectsapi/v1.1.0/Projects": 10}
