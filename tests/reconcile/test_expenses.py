"""Expenses, e-conomic → Moment: costs booked on projects are read from bookedEntriesapi into
the log and written to Moment once each, with a lookup whenever a send's outcome is unknown;
Moment's refusals park one expense with a sentence; an entry that does not parse is recorded
with its problem and skipped."""

from __future__ import annotations

import anyio
import pytest

from daemon.core import events as ev
from daemon.economic import errors as economic_errors
from daemon.sandbox.economic_state import Record
from daemon.store import records
from tests.reconcile.conftest import settle
from tests.reconcile.expensing import DAY, World, world

pytestmark = pytest.mark.anyio


async def test_costs_on_projects_arrive_in_moment_once_each() -> None:
    async with world() as w:
        await w.project(1)
        await w.project(2)
        await w.project(9, in_moment=False)
        travel = w.cost("1450.00", 1, text="Rejse Aarhus-København")
        eu = w.cost("1000.00", 2, account=2850, kind="financeVoucher", text="EU-konsulent")
        later = w.cost("125.00", 9, text="Parkering")
        reading = await w.reader.read_new()
        assert reading.listed == 3 and reading.recorded == 3
        assert w.reader.cursor == later  # the highest entry number read
        await settle(w.rec)
        assert w.expenses() == [
            {"externalId": f"economic:2026:entry:{travel}", "project": {"projectNumber": "1"},
             "description": "Rejse Aarhus-København", "amountIncludingVat": "1450.00",
             "currency": "DKK", "date": DAY, "costType": "Udlæg", "id": w.expenses()[0]["id"]},
            # a reverse-charge code: the supplier charged no VAT, the amount is the cost
            {"externalId": f"economic:2026:entry:{eu}", "project": {"projectNumber": "2"},
             "description": "EU-konsulent", "amountIncludingVat": "1000.00",
             "currency": "DKK", "date": DAY, "costType": "Underleverandør",
             "id": w.expenses()[1]["id"]}]
        # the entry on a project Moment lacks is skipped, never parked
        counts = w.rec.status().entities["expense"]
        assert (counts.desired, counts.in_sync, counts.parked) == (2, 2, 0)
        assert not w.log.tables.state("expense", f"2026:{later}").parked
        # another read finds nothing new and writes nothing
        assert (await w.reader.read_new()).recorded == 0
        await w.reader.full_scan()
        await settle(w.rec)
        assert w.moment.count(method="POST", path_contains="/projectExpenses") == 2
        assert w.moment.count(method="GET", path_contains="/projectExpenses") == 0
        # the project appears in Moment: the entry recorded on it becomes an expense
        await w.project(9)
        await settle(w.rec)
        assert [e["externalId"] for e in w.expenses()][-1] == f"economic:2026:entry:{later}"
        assert w.moment.count(method="POST", path_contains="/projectExpenses") == 3


async def test_a_send_whose_answer_never_came_is_looked_up_not_sent_again() -> None:
    async with world() as w:
        await w.project(1)
        entry = w.cost("500.00", 1)
        w.moment.faults.add(None, drop=True, path_contains="/projectExpenses", method="POST")
        await w.reader.read_new()
        await settle(w.rec)
        assert len(w.expenses()) == 1  # created by the dropped send, found by the lookup
        history = await w.log.read_entity("expense", f"2026:{entry}")
        applied = [r.event for r in history if isinstance(r.event, ev.Applied)]
        assert len(applied) == 1 and applied[0].found_by_lookup
        assert w.moment.count(method="GET", path_contains="/projectExpenses") == 1


async def test_faults_on_a_quarter_of_moments_posts_still_create_each_expense_once() -> None:
    async with world() as w:
        for n in (1, 2, 3):
            await w.project(n)
        entries = [w.cost(f"{100 + n}.00", n % 3 + 1, text=f"Udlæg {n}") for n in range(40)]
        w.moment.faults.add(503, count=None, probability=0.15, path_contains="/projectExpenses",
                            method="POST")
        w.moment.faults.add(None, drop=True, count=None, probability=0.12,
                            path_contains="/projectExpenses", method="POST")
        await w.reader.read_new()
        await settle(w.rec)
        ids = sorted(e["externalId"] for e in w.expenses())
        assert ids == sorted(f"economic:2026:entry:{n}" for n in entries)  # once each
        assert w.rec.status().entities["expense"].in_sync == 40
        posts = w.moment.count(method="POST", path_contains="/projectExpenses")
        assert posts > 40  # faults were met and retried (the 503s count as served too)


async def test_moment_refusing_an_expense_parks_it_with_a_sentence_and_the_rest_go_on() -> None:
    async with world() as w:
        await w.project(1)
        await w.project(2)
        w.moment.delete_project(next(p.id for p in w.moment.projects.values()
                                     if p.project_number == "2"))  # Moment lost it since
        ok = w.cost("80.00", 1)
        refused = w.cost("90.00", 2)
        await w.reader.read_new()
        await settle(w.rec)
        assert [e["externalId"] for e in w.expenses()] == [f"economic:2026:entry:{ok}"]
        state = w.log.tables.state("expense", f"2026:{refused}")
        assert state.parked
        assert state.reason.startswith(f"expense 2026:{refused}: Moment refused the expense on "
                                       "project 2")
        assert "check that the project exists in Moment" in state.reason


def _bad_row(w: World, **fields: object) -> int:
    row: Record = {"type": 3, "accountNumber": 2750, "amount": "1.00",
                   "currencyCode": "DKK", "date": "2026-05-21T00:00:00Z", "voucherNumber": 900,
                   "projectNumber": 1, "text": "Skæv", "_year": "2026"}
    row.update(fields)
    w.economic.agreement.put_booked(row)
    return int(row["entryNumber"])


async def test_entries_that_do_not_parse_are_recorded_with_their_problem_and_skipped() -> None:
    async with world() as w:
        await w.project(1)
        bad_amount = _bad_row(w, amount="tolv kroner")
        bad_project = _bad_row(w, projectNumber=10**12)
        good = w.cost("250.00", 1)
        reading = await w.reader.read_new()
        assert (reading.listed, reading.recorded, reading.problems) == (3, 3, 2)
        facts = w.log.tables.expenses()
        assert "amount 'tolv kroner' is not an amount" in facts[f"2026:{bad_amount}"].fact.problem
        assert "is not a project number" in facts[f"2026:{bad_project}"].fact.problem
        await settle(w.rec)
        assert [e["externalId"] for e in w.expenses()] == [f"economic:2026:entry:{good}"]
        assert not any(st.parked for st in w.log.tables.states().values())
        assert w.reader.cursor == good


async def test_only_the_configured_accounts_are_read() -> None:
    async with world(accounts=[2800]) as w:
        await w.project(1)
        w.cost("100.00", 1, account=2750)
        office = w.cost("200.00", 1, account=2800, text="Papir")
        w.economic.served.clear()
        reading = await w.reader.read_new()
        assert reading.listed == 1
        await settle(w.rec)
        assert [e["externalId"] for e in w.expenses()] == [f"economic:2026:entry:{office}"]
        reads = [s for s in w.economic.served if s.path.endswith("/booked-entries")]
        assert len(reads) == 1 and "accountNumber$in:[2800]" in reads[0].query


async def test_a_failed_read_keeps_the_cursor_and_says_why() -> None:
    async with world() as w:
        await w.project(1)
        w.cost("100.00", 1)
        w.economic.inject("503", on="GET /booked-entries")
        with pytest.raises(economic_errors.ServerError):
            await w.reader.read_new()
        status = w.reader.status()
        assert w.reader.cursor == 0 and status.last_error and "503" in status.last_error
        assert not w.log.tables.expenses()
        assert (await w.reader.read_new()).recorded == 1
        assert w.reader.status().last_error is None and w.reader.cursor > 0


async def test_after_a_restore_expenses_that_may_have_been_sent_are_looked_up_first() -> None:
    async with world() as w:
        await w.project(1)
        sent = w.cost("300.00", 1)  # the restored log lost the write of this one
        unsent = w.cost("400.00", 1)
        w.moment.add_expense({"externalId": f"economic:2026:entry:{sent}",
                              "project": {"projectNumber": "1"}, "description": "Rejse",
                              "amountIncludingVat": "375.00", "currency": "DKK",
                              "date": DAY, "costType": "Udlæg"})
        await w.log.append(ev.RestoreMarked(through_seq=w.log.last_seq),
                           idempotency_key="restore:1")
        await w.reader.read_new()
        await settle(w.rec)
        ids = sorted(e["externalId"] for e in w.expenses())
        assert ids == sorted(f"economic:2026:entry:{n}" for n in (sent, unsent))  # once each
        assert w.moment.count(method="GET", path_contains="/projectExpenses") == 2
        assert w.moment.count(method="POST", path_contains="/projectExpenses") == 1
        found = w.log.tables.state("expense", f"2026:{sent}")
        assert found.applied_hash and found.economic_number == min(w.moment.expenses)


async def test_a_day_book_webhook_hint_starts_a_read_now() -> None:
    async with world() as w:
        await w.project(1)
        async with anyio.create_task_group() as tg:
            await tg.start(w.reader.run)
            with anyio.fail_after(30):
                while w.reader.status().last_full_scan_at is None:  # the first round: a scan
                    await w.log.wait_for(w.log.last_seq + 1)
            entry = w.cost("640.00", 1)
            hint = ev.EconomicHintReceived(kind="daybook", event="DAYBOOK_BOOKED", daybook="1")
            await w.log.append(hint, idempotency_key="hint:daybook:1")
            seq = w.log.last_seq
            await w.reader.on_events([records.Committed(seq, hint)])
            with anyio.fail_after(30):  # read at once, not after poll_interval
                while f"2026:{entry}" not in w.log.tables.expenses():
                    await w.log.wait_for(w.log.last_seq + 1)
            assert w.clock.elapsed == 0.0 and seq < w.log.last_seq
            tg.cancel_scope.cancel()
