"""``moment-sync restore`` on a log brought back from a replica that lost its tail: the
entities whose last write may be missing are marked in doubt with one event, their next write
is preceded by a lookup, and nothing is written to e-conomic twice. A damaged file is refused
before anything is written to it."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from daemon.core import events as ev
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store import opening, replaying, restoring
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile import passing
from tests.reconcile.conftest import customer, project, reconciler, record, record_invoices
from tests.reconcile.test_backfill import converge

pytestmark = pytest.mark.anyio
INVOICES = [(800 + n, n % 2 + 1, n % 2 + 1) for n in range(5)]


async def _synced(path: Path, client: EconomicClient, clock: FakeClock) -> None:
    """A log at ``path`` that brought two customers, two projects and five invoices into
    e-conomic, each invoice booked."""
    async with await EventLog.open(path, clock=clock) as log:
        await record(log, [customer(1), customer(2), project(1, 1), project(2, 2)])
        await record_invoices(log, INVOICES)
        await converge(reconciler(log, client))
        assert all(log.tables.state("invoice", str(n)).booked for n, _c, _p in INVOICES)


def _cut(source: Path, target: Path, *, after_type: str) -> int:
    """``target``: a copy of the log at ``source`` that ends with its last event of
    ``after_type``: a replica that had not received the rest (its projections are rebuilt
    by the caller). Returns the seq it ends at."""
    shutil.copyfile(source, target)
    with sqlite3.connect(target) as db:
        (last,) = db.execute("SELECT max(seq) FROM events WHERE type = ?",
                             (after_type,)).fetchone()
        first = int(last) + 1
        db.execute("DROP TRIGGER events_no_delete")  # the log forbids it; a lost tail does not ask
        db.execute("DELETE FROM events WHERE seq >= ?", (first,))
    db.close()
    return int(first) - 1


async def _restored_after(tmp_path: Path, client: EconomicClient, clock: FakeClock, *,
                          after_type: str) -> tuple[Path, restoring.Outcome]:
    """A synced log (:func:`_synced`) whose replica lost everything after its last event of
    ``after_type`` (:func:`_cut`), rebuilt and restored; returns the replica and the restore's
    result."""
    live, replica = tmp_path / "live.db", tmp_path / "replica.db"
    await _synced(live, client, clock)
    _cut(live, replica, after_type=after_type)
    await replaying.rebuild(replica)
    return replica, await restoring.restore(replica, clock=clock)


def _book_calls(sandbox: EconomicSandbox) -> int:
    return sum(1 for s in sandbox.served
               if s.method == "POST" and s.path.endswith("/bookdraftentries"))


def _creates(sandbox: EconomicSandbox) -> int:
    return sum(1 for s in sandbox.served if s.method == "POST" and "draft-entries" in s.path)


def _booked(sandbox: EconomicSandbox) -> Counter[int]:
    return Counter(int(b["customerInvoiceNumber"])
                   for b in sandbox.agreement.booked_entries.values()
                   if b.get("customerInvoiceNumber"))


async def test_a_log_that_lost_its_bookings_looks_them_up_and_books_nothing_twice(
        tmp_path: Path, sandbox: EconomicSandbox, client: EconomicClient,
        clock: FakeClock) -> None:
    replica, done = await _restored_after(tmp_path, client, clock,
                                          after_type="invoice_pdf_attached")
    # two customers, two projects, five invoices with entries and PDFs: all written to, none
    # booked (the intents to book went with the tail)
    assert (done.marked, done.entities) == (9, 9)
    creates, books = _creates(sandbox), _book_calls(sandbox)
    async with await EventLog.open(replica, clock=clock) as log:
        assert all(s.in_doubt for s in log.tables.states().values())
        # pass by pass, without the full sweep a start also runs (which reads every entry
        # anyway): the doubt alone must bring the lookup before the booking
        rec = passing.stepper(log, client)
        rec.queue_out_of_sync()
        await passing.settle(rec)
        for n, _c, _p in INVOICES:
            st = log.tables.state("invoice", str(n))
            assert st.booked and not st.in_doubt
        found = [r.event for r in await log.read_entity("invoice", "800")
                 if isinstance(r.event, ev.InvoiceBooked)]
        assert [e.found_by_lookup for e in found] == [True]
    # the lookup found them booked: no booking call, no new entry
    assert (_creates(sandbox), _book_calls(sandbox)) == (creates, books)
    assert _booked(sandbox) == Counter(n for n, _c, _p in INVOICES)


async def test_a_log_that_lost_its_entries_finds_them_and_creates_nothing_twice(
        tmp_path: Path, sandbox: EconomicSandbox, client: EconomicClient,
        clock: FakeClock) -> None:
    replica, _done = await _restored_after(tmp_path, client, clock,
                                           after_type="invoice_finalized")
    creates, books = _creates(sandbox), _book_calls(sandbox)
    async with await EventLog.open(replica, clock=clock) as log:
        await converge(reconciler(log, client))
        assert all(log.tables.state("invoice", str(n)).booked for n, _c, _p in INVOICES)
    assert (_creates(sandbox), _book_calls(sandbox)) == (creates, books)
    assert _booked(sandbox) == Counter(n for n, _c, _p in INVOICES)


async def test_a_second_restore_adds_nothing_and_a_settled_log_is_left_as_it_is(
        tmp_path: Path, client: EconomicClient, clock: FakeClock) -> None:
    live = tmp_path / "live.db"
    await _synced(live, client, clock)
    first = await restoring.restore(live, clock=clock)
    # the booked invoices' lives in e-conomic are over; the customers and projects are marked
    assert first.marked == 4
    again = await restoring.restore(live, clock=clock)
    assert again.marked == 0 and again.last_seq == first.last_seq


async def test_a_restore_while_the_daemon_holds_the_log_is_refused_writing_nothing(
        tmp_path: Path, client: EconomicClient, clock: FakeClock) -> None:
    live = tmp_path / "live.db"
    await _synced(live, client, clock)
    async with await EventLog.open(live, clock=clock) as log:
        before = log.last_seq
        with pytest.raises(opening.AlreadyRunning):
            await restoring.restore(live, clock=clock)
        assert log.last_seq == before


async def test_a_damaged_file_is_refused_and_left_as_it_was(
        tmp_path: Path, client: EconomicClient, clock: FakeClock) -> None:
    live = tmp_path / "live.db"
    await _synced(live, client, clock)
    data = bytearray(live.read_bytes())
    page = 4096
    # scribble over the second half of the file's pages, past the header
    for at in range(len(data) // 2, len(data), page):
        data[at + 100:at + 600] = b"\xa5" * 500
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(bytes(data))
    with pytest.raises(restoring.NotRestorable, match="integrity check"):
        await restoring.restore(damaged, clock=clock)
    assert damaged.read_bytes() == bytes(data)
    assert not damaged.with_name("damaged.db.lock").exists()


async def test_files_that_are_not_a_moment_sync_log_are_refused_untouched(
        tmp_path: Path, clock: FakeClock) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    db.close()
    before = other.read_bytes()
    with pytest.raises(restoring.NotRestorable, match="not a moment-sync event log"):
        await restoring.restore(other, clock=clock)
    assert other.read_bytes() == before
    text = tmp_path / "text.db"
    text.write_text("not a database at all\n" * 300)
    with pytest.raises(restoring.NotRestorable, match=r"integrity check|cannot be opened"):
        await restoring.restore(text, clock=clock)
    with pytest.raises(restoring.NotRestorable, match="no event log there"):
        await restoring.restore(tmp_path / "missing.db", clock=clock)
    assert not (tmp_path / "missing.db").exists()
