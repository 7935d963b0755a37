"""Both sandboxes over loopback: Moment's sample company ingested by a full scan, reconciled
into e-conomic: every finalized or credited invoice once, booked, with Moment's own PDF."""

from __future__ import annotations

from collections import Counter

import aiohttp
import anyio
import pytest

from daemon.core import secrets
from daemon.economic.client import EconomicClient
from daemon.ingest import hinting, polling
from daemon.moment.client import MomentClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.sandbox.moment import MomentSandbox
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import reconciler
from tests.reconcile.test_backfill import converge

pytestmark = pytest.mark.anyio
API_KEY = "reconcile-e2e-key"


async def test_moment_sample_company_lands_in_economic(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog,
        clock: FakeClock) -> None:
    async with MomentSandbox.running(port=0, company="acme", api_key=API_KEY,
                                     now=clock.utcnow) as msb, \
            MomentClient(api_url=msb.api_url, company=msb.company,
                         api_key=secrets.Secret(API_KEY), timeout_s=5.0, clock=clock) as moment:
        msb.populate(customers=30, projects=20, invoices=40, seed=3)
        processor = hinting.HintProcessor(log=log, client=moment, concurrency=4, clock=clock)
        poller = polling.Poller(log=log, client=moment, processor=processor,
                                poll_interval_s=60.0, full_scan_interval_s=3600.0, clock=clock)
        async with anyio.create_task_group() as tg:
            await tg.start(processor.run)
            for kind in ("customer", "project", "invoice"):
                await poller.full_scan(kind)
            await processor.idle()
            tg.cancel_scope.cancel()
        rec = reconciler(log, client)
        await converge(rec)
        customers = {int(c.customer_number): c for c in msb.customers.values()}
        invoices = {i.invoice_number: i for i in msb.invoices.values()
                    if i.status != "DRAFT" and i.invoice_number is not None}
        pdfs = {n: msb.invoice_pdf(i.id) for n, i in invoices.items()}
    a = sandbox.agreement
    assert sorted(a.customers) == sorted(customers)
    for n, c in customers.items():
        assert a.customers[n]["name"] == c.name and a.customers[n]["email"] == c.email
    assert len(a.projects) == 20
    lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
    assert Counter(b["customerInvoiceNumber"] for b in lines) == Counter(set(invoices))
    by_voucher = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"] for b in lines}
    # read back through documentsapi, as an accountant's tools would: the bytes that arrived
    # on each invoice's voucher are Moment's PDF of that invoice
    arrived: dict[int, bytes] = {}
    headers = {"X-AppSecretToken": sandbox.app_secret_token,
               "X-AgreementGrantToken": sandbox.agreement_grant_token}
    documents = f"{sandbox.apis_url}/documentsapi/v4.0.1/AttachedDocuments"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{documents}/count") as r:
            assert await r.json() == len(pdfs)
        async with http.get(f"{documents}/paged", params={"pageSize": "100"}) as r:
            listed = await r.json()
        for doc in listed:
            async with http.get(f"{documents}/{doc['number']}/pdf") as r:
                assert r.status == 200
                invoice = by_voucher[(doc["accountingYear"], doc["voucherNumber"])]
                arrived[invoice] = await r.read()
    assert arrived == pdfs
    assert rec.status().entities["invoice"].in_sync == len(invoices)
