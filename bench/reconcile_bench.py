"""Benchmarks of reconciliation against the in-process e-conomic sandbox (file-backed log).

``run()`` returns:
- ``reconcile.insync_calls_10k``: calls to ``/customers`` during one full sweep of 10,000
  customers already in sync (goal: 10 reads, 0 writes);
- ``reconcile.insync_writes_10k``: writes in that sweep (goal: 0);
- ``reconcile.drift_writes_1k``: writes when 1,000 of them drifted (goal: exactly 1,000);
- ``reconcile.calls_per_invoice``: every e-conomic call for a backfill of 2,000 invoices with
  PDFs (lookups, read-backs, bulk writes, booking, attachments) / 2,000 (goal: <= 2.05);
- ``reconcile.backfill_s``: converging 10,000 new customers with the sandbox's bucket at 1,000
  tokens per 10 s, every call costing 1; ``reconcile.backfill_bound_s``: the best that limit
  allows, (total calls - 1,000) / 100 per second (goal: ratio <= 1.1);
  ``reconcile.backfill_ratio`` their ratio, and ``reconcile.backfill_429s`` (goal: 0).
  The sandbox's bucket drains continuously, as e-conomic's does: the first 1,000 calls go at
  once and the rest at 100 a second.
The backfill takes about 90 s of real time: that is the rate limit, on purpose.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ops import clocking
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog

OPTIONS = mp.Options()
PDF = b"%PDF-1.4\n" + b"x" * 40_000 + b"\n%%EOF\n"


def _customer(n: int) -> ev.CustomerUpserted:
    return ev.CustomerUpserted(moment_id=n, number=str(n), name=f"Kunde {n} ApS",
                               email=f"k{n}@example.dk", organization_number=f"DK{n:08d}",
                               street=f"Vej {n}", postal_code="8000", city="Aarhus",
                               country_code="DK", vat_code="DK")


def _client(sb: EconomicSandbox) -> EconomicClient:
    return EconomicClient(rest_url=sb.rest_url, apis_url=sb.apis_url,
                          clock=clocking.SystemClock(),
                          app_secret_token=Secret(sb.app_secret_token),
                          agreement_grant_token=Secret(sb.agreement_grant_token),
                          daily_call_budget=1_000_000)


async def _record(log: EventLog, facts: Sequence[ev.Event]) -> None:
    items: list[tuple[ev.Event, str, None]] = [
        (f, f"{ev.entity_of(f)[0]}:{ev.entity_of(f)[1]}:{ev.content_hash(f)}", None)
        for f in facts]
    for start in range(0, len(items), 2000):
        await log.append_many(items[start:start + 2000])


def _seed_in_sync(sb: EconomicSandbox, numbers: range) -> None:
    for n in numbers:
        m = mp.map_customer(_customer(n), OPTIONS).value
        assert m is not None
        sb.agreement.add_customer(n, m.name, email=m.email, corporateIdentificationNumber=m.
                                  corporate_id, address=m.address, zip=m.zip, city=m.city,
                                  country=m.country)


async def _drain(rec: Reconciler) -> None:
    while await rec.step() or not rec.queue.empty():  # noqa: ASYNC110 - backoffs may be due
        await anyio.sleep(0.01)


def _customer_calls(sb: EconomicSandbox) -> tuple[int, int]:
    calls = [s for s in sb.served if s.path.startswith("/rest/customers")]
    return len(calls), sum(1 for s in calls if s.method != "GET")


async def _sweeps(tmp: Path) -> dict[str, float]:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb, \
            _client(sb) as client:
        log = await EventLog.open(tmp / "sweep.db", clock=clocking.SystemClock())
        try:
            await _record(log, [_customer(n) for n in range(1, 10_001)])
            _seed_in_sync(sb, range(1, 10_001))
            rec = Reconciler(log=log, client=client, options=OPTIONS, clock=client.limiter.clock)
            await rec.full_sweep()
            await _drain(rec)
            insync_calls, insync_writes = _customer_calls(sb)
            sb.served.clear()
            for n in range(1, 10_001, 10):
                sb.agreement.edit_customer(n, {"name": f"Renamed {n}"})
            await rec.full_sweep()
            await _drain(rec)
            _calls, drift_writes = _customer_calls(sb)
        finally:
            await log.close()
    return {"reconcile.insync_calls_10k": float(insync_calls),
            "reconcile.insync_writes_10k": float(insync_writes),
            "reconcile.drift_writes_1k": float(drift_writes)}


async def _invoices(tmp: Path) -> dict[str, float]:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb, \
            _client(sb) as client:
        log = await EventLog.open(tmp / "invoices.db", clock=clocking.SystemClock())
        try:
            facts: list[ev.Event] = [_customer(n) for n in range(1, 101)]
            facts += [ev.ProjectUpserted(moment_id=10_000 + n, number=str(n),
                                         name=f"Projekt {n}", customer_number=str(n))
                      for n in range(1, 51)]
            await _record(log, facts)
            rec = Reconciler(log=log, client=client, options=OPTIONS, clock=client.limiter.clock)
            await rec.full_sweep()
            await _drain(rec)
            sb.served.clear()
            invoices: list[ev.Event] = []
            for n in range(1, 2001):
                sha = await log.put_blob(PDF + str(n).encode())
                invoices.append(ev.InvoiceFinalized(
                    moment_id=50_000 + n, number=10_000 + n, customer_number=str(n % 100 + 1),
                    project_number=str(n % 50 + 1), invoice_date="2026-11-20",
                    due_date="2026-12-04", currency="DKK", total_including_vat=f"{n}.25",
                    # 25 % VAT, as account 1010 books with (U25): a fifth of the total
                    total_vat=f"{Decimal(f'{n}.25') / 5:.2f}",
                    description=f"Invoice {n}", pdf_sha256=sha))
            await _record(log, invoices)
            await _drain(rec)
            booked = sum(1 for b in sb.agreement.booked_entries.values()
                         if b.get("customerInvoiceNumber"))
            assert booked == 2000 and len(sb.agreement.documents) == 2000, (booked,)
            calls = len(sb.served)
        finally:
            await log.close()
    return {"reconcile.calls_per_invoice": calls / 2000}


async def _backfill(tmp: Path) -> dict[str, float]:
    limit = RateLimit(enabled=True, tokens=1000, window_s=10, cost_get=1, cost_write=1)
    async with EconomicSandbox.running(rate_limit=limit, clock=time.time) as sb, \
            _client(sb) as client:
        log = await EventLog.open(tmp / "backfill.db", clock=clocking.SystemClock())
        try:
            await _record(log, [_customer(n) for n in range(1, 10_001)])
            rec = Reconciler(log=log, client=client, options=OPTIONS, clock=client.limiter.clock,
                             max_in_flight=8)
            start = time.perf_counter()
            with anyio.fail_after(600):
                async with anyio.create_task_group() as tg:
                    await tg.start(rec.run)
                    states = log.tables.states()
                    while sum(1 for st in states.values() if st.applied_hash) < 10_000:  # noqa: ASYNC110
                        await anyio.sleep(0.1)
                    tg.cancel_scope.cancel()
            took = time.perf_counter() - start
            total = len(sb.served)
            throttled = sum(1 for s in sb.served if s.status == 429)
        finally:
            await log.close()
    bound = (total - 1000) / 100
    return {"reconcile.backfill_s": took, "reconcile.backfill_bound_s": bound,
            "reconcile.backfill_ratio": took / bound, "reconcile.backfill_429s": float(throttled),
            "reconcile.backfill_calls": float(total)}


async def run() -> dict[str, float]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        out.update(await _sweeps(Path(tmp)))
        out.update(await _invoices(Path(tmp)))
        out.update(await _backfill(Path(tmp)))
    return out
