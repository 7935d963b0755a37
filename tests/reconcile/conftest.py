"""Fixtures for reconcile tests: an e-conomic sandbox on loopback (rate limit off unless a test
sets one), an in-memory event log, a client and a reconciler on one fake clock (virtual time
that moves only while a test lets it, see ``tests/clocks.py``), helpers that let virtual time
pass until the reconciler is idle, and helpers that record Moment facts the way ingest does (a
fact event, its PDF in the blob store)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import pytest

from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core.backoff import Policy
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock

OPTIONS = mp.Options(vat_zones={"DK": 1, "EU": 2, "ABROAD": 3})
FAST = Policy(base_s=0.01, cap_s=0.2, max_attempts=30)


def pdf(n: int) -> bytes:
    return b"%PDF-1.4\n% invoice " + str(n).encode() + b"\n%%EOF\n"


@pytest.fixture
async def sandbox() -> AsyncIterator[EconomicSandbox]:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb:
        yield sb


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(sb: EconomicSandbox, clock: clocks.Clock, **kw: Any) -> EconomicClient:
    return EconomicClient(rest_url=sb.rest_url, apis_url=sb.apis_url,
                          app_secret_token=Secret(sb.app_secret_token),
                          agreement_grant_token=Secret(sb.agreement_grant_token), clock=clock,
                          **kw)


@pytest.fixture
async def client(sandbox: EconomicSandbox, clock: FakeClock) -> AsyncIterator[EconomicClient]:
    async with make_client(sandbox, clock, timeout_s=5.0) as c:
        yield c


@pytest.fixture
async def log(clock: FakeClock) -> AsyncIterator[EventLog]:
    log = await EventLog.open(":memory:", clock=clock)
    try:
        yield log
    finally:
        await log.close()


def reconciler(log: EventLog, client: EconomicClient, **kw: Any) -> Reconciler:
    """A reconciler on the client's clock (unless ``clock`` is given)."""
    kw.setdefault("clock", client.limiter.clock)
    kw.setdefault("policy", FAST)
    kw.setdefault("rng", random.Random(7))
    return Reconciler(log=log, client=client, options=kw.pop("options", OPTIONS), **kw)


def customer(n: int, **kw: Any) -> ev.CustomerUpserted:
    base: dict[str, Any] = {"moment_id": n, "number": str(n), "name": f"Kunde {n} ApS",
                            "email": f"k{n}@example.dk", "organization_number": f"DK{n:08d}",
                            "street": f"Vej {n}", "postal_code": "8000", "city": "Aarhus",
                            "country_code": "DK", "vat_code": "DK"}
    base.update(kw)
    return ev.CustomerUpserted(**base)


def project(n: int, customer_number: int, **kw: Any) -> ev.ProjectUpserted:
    base: dict[str, Any] = {"moment_id": 100_000 + n, "number": str(n),
                            "name": f"Projekt {n}", "customer_number": str(customer_number)}
    base.update(kw)
    return ev.ProjectUpserted(**base)


def invoice(n: int, customer_number: int, project_number: int | None, *, sha: str = "",
            **kw: Any) -> ev.InvoiceFinalized:
    base: dict[str, Any] = {"moment_id": 500_000 + n, "number": n,
                            "customer_number": str(customer_number),
                            "project_number": str(project_number or ""),
                            "invoice_date": "2026-11-20", "due_date": "2026-12-04",
                            "currency": "DKK", "description": f"Consulting, invoice {n}",
                            "total_excluding_vat": f"{n}.00", "total_vat": f"{n / 4:.2f}",
                            "total_including_vat": f"{n * 1.25:.2f}", "pdf_sha256": sha}
    base.update(kw)
    return ev.InvoiceFinalized(**base)


async def record(log: EventLog, facts: Sequence[ev.Event]) -> None:
    """Append facts the way ingest does (idempotency key kind:id:content-hash)."""
    items: list[tuple[ev.Event, str, None]] = [
        (f, f"{ev.entity_of(f)[0]}:{ev.entity_of(f)[1]}:{ev.content_hash(f)}", None)
        for f in facts]
    for start in range(0, len(items), 1000):
        await log.append_many(items[start:start + 1000])


async def record_invoices(log: EventLog, invoices: Sequence[tuple[int, int, int | None]]
                          ) -> None:
    facts: list[ev.Event] = []
    for n, c, p in invoices:
        sha = await log.put_blob(pdf(n))
        facts.append(invoice(n, c, p, sha=sha))
    await record(log, facts)


async def until(rec: Reconciler, done: Callable[[], bool], *, within: float = 3600.0
                ) -> float:
    """Let virtual time pass, deadline by deadline, the reconciler settling after each, until
    ``done()`` holds; returns the clock's monotonic time then. (The real-time bound only keeps
    a broken test from hanging; it measures nothing.)"""
    clock = rec.clock
    assert isinstance(clock, FakeClock)
    with anyio.fail_after(60):
        return await clock.run_until(done, settle=rec.until_settled, within=within)


async def settle(rec: Reconciler) -> float:
    """:func:`until` the reconciler is idle: nothing queued, backing off or in flight. On the
    system clock (a test whose faults the sandbox times in real time), the idle event."""
    if isinstance(rec.clock, FakeClock):
        return await until(rec, rec.idle)
    with anyio.fail_after(100):
        await rec.until_idle()
    return rec.clock.monotonic()
