"""Replay: rebuild the projections from zero, and verify them against the live tables.

``replay_verify`` never writes to the live database: it folds every event into a scratch
in-memory image (:class:`~daemon.core.projections.Tables`), optionally writes that into a
scratch SQLite file, and compares row for row (by the rows' encoded bytes) with the live tables.
``rebuild`` rewrites the live projection tables in one transaction (the daemon must be stopped).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import anyio
import msgspec

from daemon.core import events as ev
from daemon.core import projections as pj
from daemon.store import opening


class Difference(msgspec.Struct, frozen=True):
    table: str
    key: str
    live: str | None
    replayed: str | None


class VerifyResult(msgspec.Struct, frozen=True):
    events: int
    rows: int
    differences: list[Difference]
    live_checkpoint: int
    last_seq: int

    @property
    def ok(self) -> bool:
        return not self.differences and self.live_checkpoint == self.last_seq


async def fold_all(path: str, *, batch: int = 20_000,
                   progress: Callable[[int], None] | None = None) -> tuple[pj.Tables, int]:
    """Fold the whole log at ``path`` (read-only) into fresh tables; returns them and the count.

    SQLite reads the next batch on aiosqlite's thread while this one is decoded and folded
    (the read releases the GIL), so a replay costs the larger of the two, not their sum."""
    conn = await opening.connect(path, readonly=True)
    tables = pj.Tables()
    decoder = msgspec.json.Decoder(ev.ANY_EVENT)
    count = 0
    try:
        await opening.check_version(conn, path)
        async with conn.execute("SELECT seq, occurred_at, payload FROM events ORDER BY seq") as cur:
            send, receive = anyio.create_memory_object_stream[list[sqlite3.Row]](1)

            async def read_ahead() -> None:
                async with send:
                    while rows := list(await cur.fetchmany(batch)):
                        await send.send(rows)

            async with anyio.create_task_group() as tg, receive:
                tg.start_soon(read_ahead)
                async for rows in receive:
                    for seq, occurred_at, payload in rows:
                        tables.apply(seq, occurred_at, decoder.decode(payload))
                    count += len(rows)
                    if progress is not None:
                        progress(count)
    finally:
        await conn.close()
    return tables, count


async def live_rows(path: str) -> tuple[dict[str, dict[str, bytes]], int, int]:
    conn = await opening.connect(path, readonly=True)
    try:
        rows: dict[str, dict[str, bytes]] = {}
        for projection in pj.PROJECTIONS:
            async with conn.execute(
                    f"SELECT key, seq, row FROM {projection.table}") as cur:
                rows[projection.table] = {
                    k: b"%d " % seq + bytes(v) for k, seq, v in await cur.fetchall()}
        async with conn.execute("SELECT seq FROM checkpoints WHERE name = 'projections'") as cur:
            found = await cur.fetchone()
        async with conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events") as cur:
            last = await cur.fetchone()
    finally:
        await conn.close()
    return rows, int(found[0]) if found else 0, int(last[0]) if last else 0


def compare(tables: pj.Tables, live: dict[str, dict[str, bytes]]) -> list[Difference]:
    differences: list[Difference] = []
    for projection in pj.PROJECTIONS:
        seqs = tables.row_seq[projection.table]
        replayed = {k: b"%d " % seqs[k] + pj.encode_row(r)
                    for k, r in tables.rows[projection.table].items()}
        actual = live.get(projection.table, {})
        for key in sorted(replayed.keys() | actual.keys()):
            a, b = actual.get(key), replayed.get(key)
            if a != b:
                differences.append(Difference(
                    projection.table, key, a.decode() if a else None, b.decode() if b else None))
    return differences


async def replay_verify(path: Path | str) -> VerifyResult:
    """Rebuild the projections from zero in memory and compare with the live tables."""
    tables, count = await fold_all(str(path))
    live, checkpoint, last_seq = await live_rows(str(path))
    differences = compare(tables, live)
    return VerifyResult(events=count, rows=sum(len(t) for t in tables.rows.values()),
                        differences=differences, live_checkpoint=checkpoint, last_seq=last_seq)


async def rebuild(path: Path | str) -> int:
    """Rewrite the live projection tables from the log; requires the directory's lock."""
    name = str(path)
    lock = opening.Lock(Path(name))
    lock.acquire()
    try:
        tables, count = await fold_all(name)
        conn = await opening.connect(name)
        try:
            await opening.apply_schema(conn, name)
            await conn.execute("BEGIN IMMEDIATE")
            for projection in pj.PROJECTIONS:
                await conn.execute(f"DELETE FROM {projection.table}")
                await conn.executemany(
                    f"INSERT INTO {projection.table} (key, seq, row) VALUES (?, ?, ?)",
                    [(k, tables.row_seq[projection.table][k], pj.encode_row(r))
                     for k, r in tables.rows[projection.table].items()])
            await conn.execute("UPDATE checkpoints SET seq = ? WHERE name = 'projections'",
                               (tables.checkpoint,))
            await conn.execute("COMMIT")
        finally:
            await conn.close()
    finally:
        lock.release()
    return count
