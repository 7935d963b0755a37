"""The SQL of one group commit, run on aiosqlite's own thread in one hop: the transaction that
writes a batch's events, the projection rows they changed and the checkpoint, or, when the log
already holds some of the batch's idempotency keys, writes nothing and says which. On any error
the transaction is rolled back before the error leaves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final, TypeVar

import aiosqlite

from daemon.store import records

T = TypeVar("T")
CHUNK: Final = 900  # stay under SQLite's bound-parameter limit


def upsert(table: str) -> str:
    return (f"INSERT INTO {table} (key, seq, row) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET seq = excluded.seq, row = excluded.row")


async def in_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(sqlite3_connection, *args)`` on aiosqlite's own thread for ``conn``: one hop for
    a whole batch instead of one per statement. (aiosqlite 0.22's ``_execute``, pinned.)"""
    result: T = await conn._execute(fn, conn._conn, *args)  # type: ignore[no-untyped-call]
    return result


def known_keys(conn: sqlite3.Connection, keys: list[str]) -> dict[str, int]:
    known: dict[str, int] = {}
    unique = list(dict.fromkeys(keys))
    for i in range(0, len(unique), CHUNK):
        chunk = unique[i:i + CHUNK]
        marks = ",".join("?" * len(chunk))
        for key, seq in conn.execute(
                f"SELECT idempotency_key, seq FROM events WHERE idempotency_key IN ({marks})",
                chunk):
            known[key] = int(seq)
    return known


KEY_COLUMN: Final = records.COLUMNS.split(", ").index("idempotency_key")


def commit(conn: sqlite3.Connection, rows: list[tuple[object, ...]],
           projection_rows: dict[str, list[tuple[str, int, bytes]]],
           checkpoint: int) -> dict[str, int]:
    """One transaction: the events, the projection rows they changed, the checkpoint; returns
    ``{}``. When the log already holds some of the rows' idempotency keys (the events table's
    UNIQUE constraint refuses one) it rolls back, writing nothing, and returns those keys with
    their sequence numbers, for the caller to build the batch again without them (the writer is
    the log's only one, so a second try finds none)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            conn.executemany(f"INSERT INTO events ({records.COLUMNS}) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")  # before the lookup, which must not see this batch's rows
            known = known_keys(conn, [str(row[KEY_COLUMN]) for row in rows])
            if known:
                return known
            raise
        for table, table_rows in projection_rows.items():
            conn.executemany(upsert(table), table_rows)
        conn.execute("UPDATE checkpoints SET seq = ? WHERE name = 'projections'", (checkpoint,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return {}
