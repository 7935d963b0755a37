"""The event log's guarantees, on a file and on ``:memory:`` (STYLE.md 3)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from daemon.core import events as ev
from daemon.store import eventlog, opening, records
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["file", "memory"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[eventlog.EventLog]:
    path = tmp_path / "events.db" if request.param == "file" else opening.MEMORY
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as opened:
        yield opened


def customer(n: int, name: str = "Nordlys") -> ev.CustomerUpserted:
    return ev.CustomerUpserted(moment_id=n, number=str(n), name=name)


async def test_duplicate_key_returns_original_seq_and_writes_nothing(
        log: eventlog.EventLog) -> None:
    first = await log.append(customer(1), idempotency_key="a")
    again = await log.append(customer(1, "Other"), idempotency_key="a")
    assert first == records.Appended(1, True)
    assert again == records.Appended(1, False)
    assert await log.count() == 1
    assert log.tables.customers()["1"].fact.name == "Nordlys"


async def test_a_batch_with_a_key_the_log_holds_writes_only_the_new_events_gap_free(
        log: eventlog.EventLog) -> None:
    """The group commit learns that the log holds a key from the UNIQUE constraint that refuses
    it (the transaction is rolled back, then the keys are looked up); a batch with one of them
    is built again without it: the held key keeps its seq and its row, the new events are
    numbered on from the last, and the projection holds only what committed."""
    await log.append(customer(1), idempotency_key="a")
    appended = await log.append_many([(customer(2), "b", None), (customer(1, "Other"), "a", None),
                                      (customer(3), "c", None), (customer(3, "Again"), "b", None)])
    assert appended == [records.Appended(2, True), records.Appended(1, False),
                        records.Appended(3, True), records.Appended(2, False)]
    assert [(r.seq, r.idempotency_key) for r in await log.read()] == [(1, "a"), (2, "b"),
                                                                      (3, "c")]
    assert log.tables.customers()["1"].fact.name == "Nordlys"
    assert log.tables.customers()["3"].fact.name == "Nordlys"
    assert log.tables.checkpoint == log.last_seq == 3


async def test_a_new_log_takes_the_page_size_and_an_existing_one_keeps_its_own(
        tmp_path: Path) -> None:
    async with await eventlog.EventLog.open(tmp_path / "new" / "events.db",
                                            clock=FakeClock()) as log:
        await log.append(customer(1), idempotency_key="a")
    older = tmp_path / "older" / "events.db"
    older.parent.mkdir()
    conn = sqlite3.connect(older)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(opening.schema_text())
    conn.close()
    async with await eventlog.EventLog.open(older, clock=FakeClock()) as log:
        await log.append(customer(1), idempotency_key="a")
        await log.append_many([(customer(2), "b", None), (customer(1), "a", None)])
        assert await log.count() == 2
    sizes = {}
    for name in ("new", "older"):
        conn = sqlite3.connect(tmp_path / name / "events.db")
        sizes[name] = conn.execute("PRAGMA page_size").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    assert sizes == {"new": opening.PAGE_SIZE, "older": 4096}


async def test_fifty_tasks_with_overlapping_keys(log: eventlog.EventLog) -> None:
    results: dict[int, records.Appended] = {}

    async def one(i: int) -> None:
        results[i] = await log.append(customer(i % 7), idempotency_key=f"k{i % 7}")

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    records = await log.read()
    assert [r.seq for r in records] == list(range(1, 8))
    assert sorted({r.idempotency_key for r in records}) == [f"k{i}" for i in range(7)]
    by_key = {r.idempotency_key: r.seq for r in records}
    for i, appended in results.items():
        assert appended.seq == by_key[f"k{i % 7}"]
    assert sum(a.new for a in results.values()) == 7


async def test_append_many_is_one_transaction(log: eventlog.EventLog) -> None:
    out = await log.append_many([(customer(1), "x", None), (customer(2), "y", None),
                                 (customer(3), "x", None)])
    assert [a.seq for a in out] == [1, 2, 1]
    assert [a.new for a in out] == [True, True, False]


async def test_update_and_delete_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
        await log.append(customer(1), idempotency_key="a")
        await log.put_blob(b"%PDF-1.4 x")
    conn = sqlite3.connect(path)
    try:
        for statement in ("UPDATE events SET type = 'x'", "DELETE FROM events",
                          "UPDATE blobs SET size = 0", "DELETE FROM blobs"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    finally:
        conn.close()


async def test_blobs_are_stored_once(log: eventlog.EventLog) -> None:
    a = await log.put_blob(b"%PDF-1.4 same")
    b = await log.put_blob(b"%PDF-1.4 same")
    assert a == b and len(a) == 64
    assert await log.blob_count() == 1
    assert await log.get_blob(a) == b"%PDF-1.4 same"
    assert await log.get_blob("0" * 64) is None


async def test_reads_by_range_entity_and_follow(log: eventlog.EventLog) -> None:
    for i in range(1, 6):
        await log.append(customer(i % 2 + 1, f"v{i}"), idempotency_key=f"k{i}")
    assert [r.seq for r in await log.read(since=2, limit=2)] == [3, 4]
    assert [r.seq for r in await log.read_entity("customer", "1")] == [2, 4]
    seen: list[int] = []

    async def follow() -> None:
        async for record in log.follow(since=3):
            seen.append(record.seq)
            if record.seq == 7:
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await anyio.sleep(0.01)
        await log.append(customer(9), idempotency_key="k6")
        await log.append(customer(9, "w"), idempotency_key="k7")
    assert seen == [4, 5, 6, 7]
    record = (await log.read(since=6))[0]
    assert isinstance(record.event, ev.CustomerUpserted)
    assert record.kind == "customer" and record.key == "9" and record.type == "customer_upserted"


async def test_second_daemon_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
        await log.append(customer(1), idempotency_key="a")
        before = path.stat().st_size, (tmp_path / "events.db-wal").stat().st_size
        with pytest.raises(opening.AlreadyRunning, match="one daemon per state directory"):
            await eventlog.EventLog.open(path, clock=FakeClock())
        assert (path.stat().st_size, (tmp_path / "events.db-wal").stat().st_size) == before
        assert await log.count() == 1


async def test_newer_schema_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with await eventlog.EventLog.open(path, clock=FakeClock()):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {opening.SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(opening.NewerSchema, match="newer moment-sync"):
        await eventlog.EventLog.open(path, clock=FakeClock())


async def test_schema_is_applied_idempotently_and_state_survives(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    for i in range(3):
        async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
            await log.append(customer(i), idempotency_key=f"k{i}")
            assert log.last_seq == i + 1
            assert len(log.tables.customers()) == i + 1
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == opening.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_failed_commit_changes_nothing_and_the_log_keeps_working(
        log: eventlog.EventLog) -> None:
    await log.append(customer(1), idempotency_key="a")
    # a disk-full stand-in: SQLite refuses one row of the batch at insert time
    await log._writer.execute(
        "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.events WHEN NEW.entity_key = '3' "
        "BEGIN SELECT RAISE(ABORT, 'refused by test'); END")
    with pytest.raises(opening.StoreError, match="refused by test"):
        await log.append_many([(customer(2), "b", None), (customer(3), "c", None)])
    await log._writer.execute("DROP TRIGGER temp.refuse")
    assert await log.count() == 1
    assert set(log.tables.customers()) == {"1"}
    assert log.last_seq == 1
    assert (await log.append(customer(2), idempotency_key="b")).seq == 2


async def test_reopened_tables_equal_the_folded_ones_and_share_repeated_values(
        tmp_path: Path) -> None:
    """Tables loaded at open hold one string for a value rows repeat (kind, number and key,
    city, country, an invoice's currency) and one empty mapping that refuses changes: what
    keeps a full reconcile of 100,000 customers within its memory bound (bench fullpass)."""
    path = tmp_path / "events.db"
    facts: list[ev.Event] = [
        ev.CustomerUpserted(moment_id=n, number=str(n), name=f"K {n}", postal_code="8000",
                            city="Aarhus", country_code="DK", vat_code="DK")
        for n in (10, 11)]
    facts += [ev.InvoiceFinalized(moment_id=900, number=77, customer_number="10",
                                  currency="DKK", total_including_vat="125.00"),
              *(ev.Applied(kind="customer", key=str(n), action="put", content_hash="h",
                           economic_number=n) for n in (10, 11))]
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
        await log.append_many([(f, f"k{n}", None) for n, f in enumerate(facts)])
        folded = {t: dict(rows) for t, rows in log.tables.rows.items()}
        folded_seqs = {t: dict(s) for t, s in log.tables.row_seq.items()}
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
        tables = log.tables
        assert tables.rows == folded and tables.row_seq == folded_seqs
        a, b = (tables.customers()[k].fact for k in ("10", "11"))
        assert a.city is b.city and a.country_code is b.country_code \
            and a.postal_code is b.postal_code and a.vat_code is b.vat_code
        key = next(k for k in tables.customers() if k == "10")
        assert key is a.number is tables.state("customer", "10").key \
            is tables.invoices()["77"].fact.customer_number
        st, other = tables.state("customer", "10"), tables.state("customer", "11")
        assert st.kind is other.kind
        assert st.intents == {} and st.intents is other.intents is other.without
        with pytest.raises(TypeError):
            st.intents["put"] = "k"
        assert tables.row_seq["desired_customers"]["10"] is tables.customers()["10"].seq
