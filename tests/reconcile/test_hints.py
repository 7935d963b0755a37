"""e-conomic's webhook hints in the reconciler: a hinted record is read and repaired at once (no
sweep), a renumbering is both numbers (the old one recreated, the new one reported as a
stray), hints for the same record coalesce, hints for the daemon's own writes cost reads and
never writes, and an edit whose hint never came is caught by the next sweep."""

from __future__ import annotations

import anyio
import pytest

from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.reconcile import hearing
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import customer, project, reconciler, record, settle, until

pytestmark = pytest.mark.anyio

HOUR = 3600.0


async def hint(log: EventLog, kind: str, old: str, new: str) -> None:
    """What the receiver records for one delivery."""
    await log.append(ev.EconomicHintReceived(kind=kind, event=f"{kind.upper()}_UPDATED",
                                             old=old, new=new),
                     idempotency_key=f"hint:test:{log.last_seq}")


def writes(sandbox: EconomicSandbox) -> list[str]:
    return sorted(f"{s.method} {s.path}" for s in sandbox.served if s.method != "GET")


async def start(log: EventLog, client: EconomicClient, tg: anyio.abc.TaskGroup) -> Reconciler:
    rec = reconciler(log, client, reconcile_interval=HOUR, full_reconcile_interval=24 * HOUR)
    await tg.start(rec.run)
    assert await settle(rec) == 0.0  # everything created by the first full sweep's passes
    return rec


async def test_a_hinted_edit_is_repaired_at_once_without_a_sweep(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 4)])
    async with anyio.create_task_group() as tg:
        rec = await start(log, client, tg)
        sandbox.served.clear()
        sandbox.agreement.edit_customer(2, {"name": "Renamed by hand"})
        await hint(log, "customer", "2", "2")
        assert await until(rec, lambda: sandbox.agreement.customers[2]["name"] == "Kunde 2 ApS"
                           ) == 0.0  # no virtual time passed: no sweep did it
        await settle(rec)
        tg.cancel_scope.cancel()
    assert writes(sandbox) == ["PUT /rest/customers/2"]
    reads = [s for s in sandbox.served if s.method == "GET"]
    assert len(reads) == 1 and "customerNumber" in reads[0].query  # one read of customer 2
    assert rec.status().reconcile.drift_repaired == 1
    assert rec.status().reconcile.last_hint_at is not None


async def test_a_renumbering_recreates_the_old_number_and_reports_the_new_as_a_stray(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 4)] + [project(n, n) for n in (1, 2)])
    a = sandbox.agreement
    async with anyio.create_task_group() as tg:
        rec = await start(log, client, tg)
        sandbox.served.clear()
        a.renumber_customer(3, 903)
        await hint(log, "customer", "3", "903")
        a.renumber_project(2, 902)
        await hint(log, "project", "2", "902")
        assert await settle(rec) == 0.0
        tg.cancel_scope.cancel()
    assert a.customers[3]["name"] == "Kunde 3 ApS" and a.customers[903]["name"] == "Kunde 3 ApS"
    assert a.projects[2]["name"] == "Projekt 2" and a.projects[902]["name"] == "Projekt 2"
    assert writes(sandbox) == ["POST /apis/projectsapi/v1.1.0/Projects", "PUT /rest/customers/3"]
    strays = rec.status().reconcile.strays
    assert sorted((s.kind, s.number, s.managed_key) for s in strays) == [
        ("customer", 903, "3"), ("project", 902, "2")]


async def test_hints_for_one_record_coalesce_while_it_waits(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 4)])
    async with anyio.create_task_group() as tg:
        rec = await start(log, client, tg)
        sandbox.served.clear()
        sandbox.agreement.edit_customer(1, {"city": "Odense"})
        # five deliveries committed before the reconciler takes any of them
        await log.append_many([(ev.EconomicHintReceived(kind="customer", old="1", new="1"),
                                f"hint:burst:{i}", None) for i in range(5)])
        assert await settle(rec) == 0.0
        tg.cancel_scope.cancel()
    assert rec.hints.heard == 5
    assert writes(sandbox) == ["PUT /rest/customers/1"]  # one repair ...
    assert len([s for s in sandbox.served if s.method == "GET"]) == 1  # ... after one read


async def test_hints_for_the_daemons_own_writes_cost_reads_never_writes(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 6)] + [project(1, 1)])
    async with anyio.create_task_group() as tg:
        rec = await start(log, client, tg)
        # e-conomic fires a hint for each record the daemon created: they come in now
        sandbox.served.clear()
        events_before = log.last_seq
        for n in range(1, 6):
            await hint(log, "customer", "", str(n))
        await hint(log, "project", "", "1")
        assert await settle(rec) == 0.0
        tg.cancel_scope.cancel()
    assert writes(sandbox) == []
    assert {s.method for s in sandbox.served} == {"GET"}
    # nothing recorded but the hints themselves: every record was found as the log has it
    recorded = [e for _seq, e in await log.committed(after=events_before, limit=100)]
    assert all(isinstance(e, ev.EconomicHintReceived) for e in recorded)


async def test_the_sweep_catches_an_edit_whose_hint_was_lost(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 4)])
    async with anyio.create_task_group() as tg:
        rec = await start(log, client, tg)
        sandbox.agreement.edit_customer(3, {"city": "Odense"})  # and no hint comes
        assert await until(rec, lambda: sandbox.agreement.customers[3]["city"] == "Aarhus"
                           ) == HOUR  # the incremental sweep, one interval after the first
        tg.cancel_scope.cancel()


async def test_a_hint_for_a_number_nobody_manages_is_read_and_left_alone(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(n) for n in range(1, 3)])
    async with anyio.create_task_group() as tg:
        rec = await start(log, client, tg)
        sandbox.agreement.customers[77] = {**sandbox.agreement.customers[1],
                                           "customerNumber": 77, "name": "Someone else",
                                           "corporateIdentificationNumber": "DK99999999"}
        sandbox.served.clear()
        # a person created a customer in e-conomic, and deleted one the daemon never knew:
        # two deliveries committed together, heard together
        await log.append_many([
            (ev.EconomicHintReceived(kind="customer", old="", new="77"), "hint:two:1", None),
            (ev.EconomicHintReceived(kind="customer", old="78", new=""), "hint:two:2", None)])
        assert await settle(rec) == 0.0
        tg.cancel_scope.cancel()
    assert writes(sandbox) == []
    assert len(sandbox.served) == 1  # one read for both numbers
    assert rec.status().reconcile.strays == []


def test_a_moment_number_with_leading_zeros_is_found_by_its_value() -> None:
    class Row:
        gone = False

    rows = {"0042": Row(), "7": Row()}
    assert hearing.managed_key(rows, 42) == "0042"  # type: ignore[arg-type]
    assert hearing.managed_key(rows, 7) == "7"  # type: ignore[arg-type]
    assert hearing.managed_key(rows, 8) is None  # type: ignore[arg-type]
