"""Cancellation at any await (ANCHORS.md B.10 #9): the reconciler is cancelled at a random
moment of its work, over and over, the way a stop whose grace ran out cancels it, and started
again on the reopened log. Whatever was in flight (a bulk write, a PDF upload, a booking, an
append), every invoice ends up in e-conomic exactly once, booked, with one copy of its PDF; no
customer or project is created twice; and the projections still equal a replay of the log."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store import replaying
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import (
    customer,
    make_client,
    pdf,
    project,
    reconciler,
    record,
    record_invoices,
    settle,
)

pytestmark = pytest.mark.anyio
CUSTOMERS, PROJECTS = 8, 5
INVOICES = [(900 + n, n % CUSTOMERS + 1, n % PROJECTS + 1 if n % 3 else None)
            for n in range(24)]
ROUNDS = 40


async def cancelled_at_random(sb: EconomicSandbox, db: Path, rng: random.Random) -> None:
    """One life of the daemon: open the log, reconcile, and be cancelled a few loop turns
    after e-conomic has served a random number (1 to 6) of its requests: the cancellation then
    lands on whatever the reconciler awaits at that moment (an answer on its way, the next
    request, an append)."""
    log = await EventLog.open(db, clock=FakeClock())
    try:
        async with make_client(sb, FakeClock(), timeout_s=5.0) as client:
            rec = reconciler(log, client, batch={"invoice": rng.choice((1, 3, 50))})
            target = len(sb.served) + rng.randint(1, 6)
            turns = rng.randint(0, 4)
            async with anyio.create_task_group() as tg:

                async def cancel_after_the_target() -> None:
                    while len(sb.served) < target:  # noqa: ASYNC110 - no event per request
                        await anyio.sleep(0.001)
                    for _ in range(turns):
                        await anyio.lowlevel.checkpoint()
                    tg.cancel_scope.cancel()

                tg.start_soon(cancel_after_the_target)
                await tg.start(rec.run)
                await settle(rec)
                tg.cancel_scope.cancel()
    finally:
        await log.close()


@pytest.mark.parametrize("seed", range(6))
async def test_cancelled_anywhere_then_restarted_transfers_each_invoice_once(
        seed: int, tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    log = await EventLog.open(db, clock=FakeClock())
    try:
        await record(log, [*(customer(n) for n in range(1, CUSTOMERS + 1)),
                           *(project(n, n) for n in range(1, PROJECTS + 1))])
        await record_invoices(log, INVOICES)
    finally:
        await log.close()
    rng = random.Random(seed)
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb:
        for _ in range(ROUNDS):
            await cancelled_at_random(sb, db, rng)
        log = await EventLog.open(db, clock=FakeClock())
        try:
            async with make_client(sb, FakeClock(), timeout_s=5.0) as client:
                rec = reconciler(log, client)
                async with anyio.create_task_group() as tg:
                    await tg.start(rec.run)
                    await settle(rec)
                    tg.cancel_scope.cancel()
            assert all(log.tables.state("invoice", str(n)).booked for n, _c, _p in INVOICES)
        finally:
            await log.close()
        a = sb.agreement
        assert sorted(a.customers) == list(range(1, CUSTOMERS + 1))
        assert sorted(a.projects) == list(range(1, PROJECTS + 1))
        assert not a.draft_entries
        lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
        counts = Counter(b["customerInvoiceNumber"] for b in lines)
        missing = {n for n, _c, _p in INVOICES} - set(counts)
        twice = {n for n, k in counts.items() if k > 1}
        assert (missing, twice) == (set(), set())
        by_voucher = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"]
                      for b in lines}
        attached = Counter(by_voucher[(d.accounting_year, d.voucher_number)]
                           for d in a.documents.values())
        assert attached == Counter({n: 1 for n, _c, _p in INVOICES})
        assert all(d.content == [pdf(by_voucher[(d.accounting_year, d.voucher_number)])]
                   for d in a.documents.values())
    verdict = await replaying.replay_verify(db)
    assert verdict.ok, verdict.differences[:5]
