"""Reconcile against the e-conomic sandbox over loopback: small flows, dependency order."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from daemon.economic.client import EconomicClient
from daemon.reconcile import hooks, planning
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.economic.conftest import validate_traffic
from tests.reconcile.conftest import (
    OPTIONS,
    customer,
    invoice,
    make_client,
    project,
    reconciler,
    record,
    record_invoices,
    settle,
    until,
)

pytestmark = pytest.mark.anyio


async def test_small_flow_converges_with_requests_valid_by_the_official_specs(
        log: EventLog, clock: FakeClock) -> None:
    await record(log, [customer(n) for n in range(1, 6)] + [project(n, n) for n in range(1, 4)])
    await record_invoices(log, [(n, n, n) for n in range(1, 4)] + [(9, 5, None)])
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False),
                                       keep_responses=True) as sandbox, \
            make_client(sandbox, clock, timeout_s=5.0) as client:
        rec = reconciler(log, client)
        async with anyio.create_task_group() as tg:
            await tg.start(rec.run)
            # the first sweep and the passes it queues, dependencies first: no time passes
            assert await settle(rec) == 0.0
            tg.cancel_scope.cancel()
        # every body sent and every answer, checked against e-conomic's own schemas
        assert validate_traffic(sandbox) >= 20
    a = sandbox.agreement
    assert sorted(a.customers) == [1, 2, 3, 4, 5]
    assert sorted(a.projects) == [1, 2, 3]
    assert a.customers[2]["name"] == "Kunde 2 ApS"
    assert len(a.documents) == 4 and not a.draft_entries
    inv_lines = [b for b in a.booked_entries.values() if b.get("customerInvoiceNumber")]
    assert sorted(b["customerInvoiceNumber"] for b in inv_lines) == [1, 2, 3, 9]
    counts = msgspec.to_builtins(rec.status().entities)
    assert counts["invoice"] == {"desired": 4, "in_sync": 4, "pending": 0, "parked": 0}
    assert counts["customer"]["in_sync"] == 5


async def test_stop_finishes_calls_in_flight_records_them_and_starts_no_more(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog,
        clock: FakeClock) -> None:
    await record(log, [customer(n) for n in range(1, 401)])
    fifty = anyio.Event()

    def progress() -> None:  # the reconcile pulse: beaten as each outcome is recorded
        if len(sandbox.agreement.customers) >= 50:
            fifty.set()

    rec = reconciler(log, client, beat=progress)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(rec.run)
            await fifty.wait()
            assert rec.busy
            assert await rec.stop(grace=5.0)  # the pass ended: no grace second passed
            assert clock.elapsed == 0.0
            tg.cancel_scope.cancel()
    puts = len(sandbox.requests(method="PUT"))
    await clock.settled()  # whatever could still run has run
    assert puts == len(sandbox.requests(method="PUT")) < 400
    states = [log.tables.state("customer", str(n)) for n in range(1, 401)]
    assert sum(1 for s in states if s.applied_hash) == puts  # every outcome recorded
    assert all(log.tables.state("customer", str(n)).applied_hash
               for n in sandbox.agreement.customers)
    rec2 = reconciler(log, client)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(rec2.run)
            await until(rec2, lambda: rec2.status().entities["customer"].in_sync == 400)
            tg.cancel_scope.cancel()
    assert len(sandbox.requests(method="PUT")) == 400


async def test_plan_without_a_daemon_counts_pending_changes_only(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    sandbox.agreement.add_customer(99, "Only in e-conomic")
    await record(log, [customer(1), customer(2, vat_code="MARS"), project(3, 1)])
    report = await planning.plan(log, client, OPTIONS)
    assert planning.exit_code(report) == 2 and report.pending == 2
    assert [(a.key, a.action) for a in report.kinds["customer"].actions] == \
        [("1", "create")]
    assert [p.key for p in report.problems] == ["2"]
    assert msgspec.to_builtins(report.economic_only) == [{"kind": "customer", "number": 99}]
    assert list(sandbox.agreement.customers) == [99]  # read-only
    only = await planning.plan(log, client, OPTIONS, kind="project")
    assert list(only.kinds) == ["project"] and only.pending == 1


async def test_an_invalid_invoice_is_split_out_of_its_batch_and_parked(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1)])
    facts = [invoice(n, 1, None, sha=await log.put_blob(b"%PDF-1.4\n%%EOF\n" + bytes([n])))
             for n in range(41, 46)]
    facts[2] = invoice(43, 1, None, sha=facts[2].pdf_sha256, invoice_date="2001-03-01")
    await record(log, facts)
    rec = reconciler(log, client)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(rec.run)
            assert await settle(rec) == 0.0  # split and parked at once, not after a backoff
            tg.cancel_scope.cancel()
    assert rec.status().entities["invoice"].in_sync == 4
    st = log.tables.state("invoice", "43")
    assert st.parked and "accounting year" in st.reason, st.reason
    booked = sorted(b["customerInvoiceNumber"] for b in sandbox.agreement.booked_entries.values()
                    if b.get("customerInvoiceNumber"))
    assert booked == [41, 42, 44, 45]
    bulks = sandbox.requests(method="POST", path_contains="/draft-entries/bulk")
    assert [s.status for s in bulks] == [400, 201]  # refused whole, then sent without it


async def test_a_full_sweep_beats_the_watchdog_while_its_pages_arrive(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    """Tens of thousands of customers take longer to read than the watchdog's window: every
    page read is progress, so the reconcile pulse beats during the sweep, not only after."""
    sandbox.agreement.add_customers(2500)  # three pages of 1,000
    await record(log, [customer(n) for n in range(1, 2501)])
    pages_read: list[int] = []
    rec = reconciler(log, client, beat=lambda: pages_read.append(
        sum(1 for s in sandbox.served if s.path == "/rest/customers")))
    await rec.full_sweep()
    assert sum(1 for s in sandbox.served if s.path == "/rest/customers") == 3
    assert {1, 2, 3} <= set(pages_read)


async def test_sweeps_beside_a_wedged_worker_do_not_beat_the_watchdog(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reconcile pulse is the worker's: once it hangs outside its pass (the wedge hook),
    the incremental sweeps that go on beside it read e-conomic but feed the watchdog nothing,
    so systemd sees the wedge (before, each sweep's pages beat the pulse and hid it)."""
    sandbox.agreement.add_customers(3)
    await record(log, [customer(n) for n in range(1, 4)])
    monkeypatch.setenv(hooks.WEDGE_ENV, "1")
    clock = client.limiter.clock
    assert isinstance(clock, FakeClock)
    beats: list[float] = []
    rec = reconciler(log, client, reconcile_interval=10.0,
                     beat=lambda: beats.append(clock.monotonic()))
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await clock.run_until(lambda: rec.last_full_at is not None)
        wedged_at = clock.monotonic()
        listings = sum(1 for s in sandbox.served if s.path == "/rest/customers")
        await clock.run(35.0)
        tg.cancel_scope.cancel()
    # the incremental sweeps went on beside the wedge (every 10 s of the 35), yet none beat
    assert sum(1 for s in sandbox.served if s.path == "/rest/customers") >= listings + 2
    assert [at for at in beats if at > wedged_at] == []


async def test_a_full_sweep_queues_each_page_before_it_reads_the_next(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A full sweep diffs a page of records and drops it before it reads the next, so a sweep
    of 100,000 customers never holds them all: each drifted customer is queued while the
    listing is still on that customer's page."""
    sandbox.agreement.add_customers(2500)  # three pages of 1,000, each differing from Moment
    await record(log, [customer(n) for n in range(1, 2501)])
    rec = reconciler(log, client)
    pages_when_queued: dict[str, int] = {}
    add = rec.queue.add

    def spy(kind: str, key: str, **kw: Any) -> None:
        pages_when_queued.setdefault(key, sum(1 for s in sandbox.served
                                              if s.path == "/rest/customers"))
        add(kind, key, **kw)

    monkeypatch.setattr(rec.queue, "add", spy)
    assert await rec.full_sweep() == 2500
    assert {pages_when_queued[str(n)] for n in range(1, 1001)} == {1}
    assert {pages_when_queued[str(n)] for n in range(1001, 2001)} == {2}
    assert {pages_when_queued[str(n)] for n in range(2001, 2501)} == {3}
