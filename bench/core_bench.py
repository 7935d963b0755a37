"""Event log throughput and replay, side by side with the peers in one run (issue 2).

- ``append.concurrent_eps``: durable appends per second from 100 concurrent tasks;
- ``append.eventsourcing_eps``: pyeventsourcing on SQLite, one event per save;
- ``append.sqlite_floor_eps``: raw ``sqlite3.executemany`` of the same rows in one transaction;
- ``replay.eps``: folding 1,000,000 events over 10,000 customers into the projections;
- ``replay.eventsourcing_eps``: pyeventsourcing's notification log, decoded (100,000 events);
- ``replay.sqlite_floor_eps``: raw read of the same 1,000,000 rows plus ``json.loads``;
- ``replay.peak_rss_mb``: peak RSS of a fresh process that replays the 1,000,000 events.
Every event is a customer snapshot of about 300 bytes. Each figure is the best of ROUNDS
attempts, ours and the peers' interleaved (as the economic bench does), so that a slow moment
of a shared machine falls on both sides rather than on one.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from daemon.core import events as ev
from daemon.ops import clocking
from daemon.store import eventlog, opening, records, replaying

APPEND_EVENTS = 20_000
APPEND_TASKS = 100
ES_EVENTS = 3_000
REPLAY_EVENTS = 1_000_000
REPLAY_CUSTOMERS = 10_000
ES_REPLAY_EVENTS = 100_000
ROUNDS = 5


def snapshot(i: int) -> ev.CustomerUpserted:
    n = i % REPLAY_CUSTOMERS
    return ev.CustomerUpserted(
        moment_id=62_788_973 + n, number=str(10_001 + n), name=f"Nordlys Arkitekter ApS {i}",
        email=f"bogholderi{n}@nordlys.dk", organization_number=f"DK{12_345_678 + n}",
        street="Vestergade 12", postal_code="8000", city="Aarhus", country_code="DK",
        vat_code="DK", version=i, last_modified="2026-11-20T09:14:00Z")


async def append_concurrent(path: Path) -> float:
    async with await eventlog.EventLog.open(path, clock=clocking.SystemClock()) as log:
        per_task = APPEND_EVENTS // APPEND_TASKS

        async def task(t: int) -> None:
            for j in range(per_task):
                i = t * per_task + j
                await log.append(snapshot(i), idempotency_key=f"customer:{i}")

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for t in range(APPEND_TASKS):
                tg.start_soon(task, t)
        elapsed = time.perf_counter() - start
        assert await log.count() == APPEND_EVENTS
    return APPEND_EVENTS / elapsed


def _rows(count: int) -> list[tuple[Any, ...]]:
    return [(i + 1, "customer_upserted", 1, "customer", snapshot(i).number, f"customer:{i}",
             "2026-11-20T09:14:00.000000Z", "2026-11-20T09:14:00.000000Z",
             ev.encode(snapshot(i))) for i in range(count)]


def sqlite_floor_append(path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {opening.PAGE_SIZE}")  # as the daemon creates its log
    conn.executescript(opening.schema_text())
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    rows = _rows(APPEND_EVENTS)
    start = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO events ({records.COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return APPEND_EVENTS / elapsed


def _eventsourcing_app(path: Path) -> Any:
    from eventsourcing.application import Application

    os.environ.update({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                       "SQLITE_DBNAME": str(path), "SQLITE_LOCK_TIMEOUT": "10"})
    return Application()


@functools.cache
def _eventsourcing_customer() -> Any:
    from eventsourcing.domain import Aggregate, event

    class Customer(Aggregate):
        @event("Registered")
        def __init__(self, number: str) -> None:
            self.number = number

        @event("Upserted")
        def upsert(self, payload: dict[str, Any]) -> None:
            self.payload = payload

    return Customer


def eventsourcing_append(path: Path) -> float:
    app = _eventsourcing_app(path)
    customer_class = _eventsourcing_customer()
    customers = [customer_class(number=str(n)) for n in range(100)]
    for c in customers:
        app.save(c)
    start = time.perf_counter()
    for i in range(ES_EVENTS):
        c = customers[i % 100]
        c.upsert(payload=json.loads(ev.encode(snapshot(i))))
        app.save(c)
    elapsed = time.perf_counter() - start
    app.close()
    return ES_EVENTS / elapsed


def eventsourcing_replay_db(path: Path) -> None:
    app = _eventsourcing_app(path)
    customer_class = _eventsourcing_customer()
    per_aggregate = 100
    for a in range(ES_REPLAY_EVENTS // per_aggregate):
        c = customer_class(number=str(a))
        for j in range(per_aggregate - 1):
            c.upsert(payload=json.loads(ev.encode(snapshot(a * per_aggregate + j))))
        app.save(c)
    app.close()


def eventsourcing_replay(path: Path) -> float:
    app = _eventsourcing_app(path)
    start = time.perf_counter()
    count = 0
    position: int | None = 1
    while True:
        notifications = app.recorder.select_notifications(position, 10_000)
        if not notifications:
            break
        for notification in notifications:
            app.mapper.to_domain_event(notification)
            count += 1
        position = notifications[-1].id + 1
    elapsed = time.perf_counter() - start
    app.close()
    assert count == ES_REPLAY_EVENTS, count
    return count / elapsed


def build_replay_db(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size = {opening.PAGE_SIZE}")  # as the daemon creates its log
    conn.executescript(opening.schema_text())
    conn.execute(f"PRAGMA user_version = {opening.SCHEMA_VERSION}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for start in range(0, REPLAY_EVENTS, 100_000):
        rows = [(i + 1, "customer_upserted", 1, "customer", snapshot(i).number, f"c:{i}",
                 "2026-11-20T09:14:00.000000Z", "2026-11-20T09:14:00.000000Z",
                 ev.encode(snapshot(i))) for i in range(start, start + 100_000)]
        conn.executemany(
            f"INSERT INTO events ({records.COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    conn.close()


def sqlite_floor_replay(path: Path) -> float:
    conn = sqlite3.connect(path)
    start = time.perf_counter()
    count = 0
    cur = conn.execute("SELECT seq, occurred_at, payload FROM events ORDER BY seq")
    while rows := cur.fetchmany(20_000):
        for _seq, _at, payload in rows:
            json.loads(payload)
        count += len(rows)
    elapsed = time.perf_counter() - start
    conn.close()
    assert count == REPLAY_EVENTS
    return count / elapsed


def replay_in_child(path: Path) -> tuple[float, float]:
    """Replay in a fresh process, so its peak RSS is the replay's own."""
    out = subprocess.run([sys.executable, "-m", "bench.core_bench", "replay-child", str(path)],
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    eps, rss = out.stdout.split()
    return float(eps), float(rss)


async def _replay_child(path: str) -> None:
    start = time.perf_counter()
    tables, count = await replaying.fold_all(path)
    elapsed = time.perf_counter() - start
    assert count == REPLAY_EVENTS and len(tables.customers()) == REPLAY_CUSTOMERS
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(f"{count / elapsed} {rss_mb}\n")


async def run() -> dict[str, float]:
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = max(best.get(name, 0.0), value)

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for r in range(ROUNDS):  # each append into a fresh file
            keep("append.concurrent_eps", await append_concurrent(d / f"a{r}" / "events.db"))
            keep("append.eventsourcing_eps", eventsourcing_append(d / f"es-append{r}.db"))
            keep("append.sqlite_floor_eps", sqlite_floor_append(d / f"floor{r}.db"))
        build_replay_db(d / "replay.db")
        eventsourcing_replay_db(d / "es-replay.db")
        rss_mb = 0.0
        for _ in range(ROUNDS):
            keep("replay.sqlite_floor_eps", sqlite_floor_replay(d / "replay.db"))
            eps, rss = replay_in_child(d / "replay.db")
            keep("replay.eps", eps)
            rss_mb = max(rss_mb, rss)
            keep("replay.eventsourcing_eps", eventsourcing_replay(d / "es-replay.db"))
    results = {**best, "replay.peak_rss_mb": rss_mb}
    results["ratio.append_vs_eventsourcing"] = (
        results["append.concurrent_eps"] / results["append.eventsourcing_eps"])
    results["ratio.replay_vs_eventsourcing"] = (
        results["replay.eps"] / results["replay.eventsourcing_eps"])
    results["ratio.replay_vs_sqlite_floor"] = (
        results["replay.eps"] / results["replay.sqlite_floor_eps"])
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "replay-child":
        anyio.run(_replay_child, sys.argv[2])
    else:
        for name, value in anyio.run(run).items():  # noqa: RUF100
            sys.stdout.write(f"{name:40} {value:12.2f}\n")
