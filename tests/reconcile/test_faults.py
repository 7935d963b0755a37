"""Faults at 25% (500, 503, 429 with Retry-After, connection resets, work committed and the
answer dropped) while 100 invoices flow: no duplicate, none missing, and no request reaches
e-conomic inside a Retry-After window."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from daemon.core.backoff import Policy
from daemon.ops import clocking
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox, Faults, RateLimit
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
    until,
)
from tests.reconcile.test_backfill import converge

pytestmark = pytest.mark.anyio


async def test_faults_lose_nothing_and_duplicate_nothing(log: EventLog) -> None:
    faults = Faults(probability=0.25, kinds=["500", "503", "429", "reset", "drop"], seed=5,
                    retry_after_s=1)
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False), faults=faults) as sb:
        await record(log, [customer(n) for n in range(1, 11)] +
                     [project(n, n) for n in range(1, 11)])
        await record_invoices(log, [(2000 + n, n % 10 + 1, n % 10 + 1) for n in range(100)])
        # one call at a time, so a request the sandbox sees was sent after every answer before
        # it reached the client: the Retry-After check below is then exact
        # on the system clock: the Retry-After pauses are checked against the times the
        # sandbox stamps its requests with, which are real
        async with make_client(sb, clocking.SystemClock(), timeout_s=5.0,
                               max_in_flight=1) as client:
            rec = reconciler(log, client, policy=Policy(base_s=0.01, cap_s=0.1,
                                                        max_attempts=1000))
            await converge(rec)
        a = sb.agreement
        faults.probability = 0.0
        served = list(sb.served)
    assert sorted(a.customers) == list(range(1, 11)) and sorted(a.projects) == list(range(1, 11))
    assert not a.draft_entries
    lines = Counter(b["customerInvoiceNumber"] for b in a.booked_entries.values()
                    if b.get("customerInvoiceNumber"))
    assert sorted(lines) == [2000 + n for n in range(100)] and set(lines.values()) == {1}
    by_voucher = {(b["_year"], b["voucherNumber"]): b["customerInvoiceNumber"]
                  for b in a.booked_entries.values() if b.get("customerInvoiceNumber")}
    assert len(a.documents) == 100
    assert sorted(by_voucher[(d.accounting_year, d.voucher_number)] for d in a.documents.values()
                  ) == [2000 + n for n in range(100)]
    assert all(d.content == [pdf(by_voucher[(d.accounting_year, d.voucher_number)])]
               for d in a.documents.values())
    assert all(log.tables.state("invoice", str(2000 + n)).booked for n in range(100))
    # the faults did strike, of every kind
    statuses = Counter(s.status for s in served)
    assert statuses[429] >= 3 and statuses[500] + statuses[503] >= 6
    # nothing was sent while a Retry-After pause was in force
    throttled = [s.at for s in served if s.status == 429]
    for t in throttled:
        assert not [s for s in served if t < s.at < t + faults.retry_after_s]


async def test_a_dropped_bulk_answer_is_looked_up_not_sent_again(log: EventLog) -> None:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb:
        async with make_client(sb, FakeClock(), timeout_s=5.0) as client:
            await record(log, [customer(1), project(1, 1)])
            rec = reconciler(log, client)
            async with anyio.create_task_group() as tg:
                await tg.start(rec.run)
                await settle(rec)
                sb.served.clear()
                # the bulk call is committed and its answer lost
                sb.inject("drop", on="POST /draft-entries/bulk")
                await record_invoices(log, [(31, 1, 1), (32, 1, None)])
                await until(rec, lambda: all(log.tables.state("invoice", k).applied_hash
                                             for k in ("31", "32")))
                tg.cancel_scope.cancel()
        calls = [f"{s.method} {s.path.rsplit('/', 1)[-1]}" for s in sb.served]
    assert calls.count("POST bulk") == 1
    # creating is always preceded by a lookup, and the unknown outcome is looked up after it
    assert calls.index("GET draft-entries") < calls.index("POST bulk")
    assert "GET draft-entries" in calls[calls.index("POST bulk"):]
    assert "GET booked-entries" in calls
    lines = [b["customerInvoiceNumber"] for b in sb.agreement.booked_entries.values()
             if b.get("customerInvoiceNumber")]
    assert sorted(lines) == [31, 32] and len(sb.agreement.documents) == 2
    created = [r.event for r in await log.read_entity("invoice", "31")]
    assert any(getattr(e, "found_by_lookup", False) for e in created)


async def test_a_retry_reuses_the_intent_key_and_a_bound_parks_with_the_last_error(
        log: EventLog) -> None:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb:
        async with make_client(sb, FakeClock(), timeout_s=5.0) as client:
            await record(log, [customer(1)])
            rec = reconciler(log, client, policy=Policy(base_s=0.01, cap_s=0.05,
                                                        max_attempts=3))
            await rec.full_sweep()
            await drain(rec)
            live = await client.get_customer(1)
            sb.served.clear()
            await record(log, [customer(1, name="Renamed in Moment")])
            rec.queue.add("customer", "1", hint=live)  # so the PUT is the next request
            sb.inject("503")  # it fails: not applied
            await drain(rec)
            puts = [s for s in sb.served if s.method == "PUT"]
            assert [s.status for s in puts] == [503, 200]
            assert len({s.idempotency_key for s in puts}) == 1  # the same intent, resent
            assert sb.agreement.customers[1]["name"] == "Renamed in Moment"
            sb.faults.probability, sb.faults.kinds = 1.0, ["500"]
            await record(log, [customer(1, name="Renamed again")])
            await drain(rec)
    st = log.tables.state("customer", "1")
    assert st.parked and st.attempts == 3 and "kept failing" in st.reason
    assert "500" in st.last_error
    failed = [r.event for r in await log.read_entity("customer", "1") if r.type == "failed"]
    assert [getattr(e, "attempt", 0) for e in failed][-2:] == [1, 2]


async def drain(rec: Reconciler) -> None:
    """Run passes until nothing is queued, taking the clock to each backoff's due time."""
    clock = rec.clock
    assert isinstance(clock, FakeClock)
    while await rec.step() or not rec.queue.empty():
        due = rec.queue.next_due()
        if due is not None:
            clock.advance(max(0.0, due - clock.monotonic()))
