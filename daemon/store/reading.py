"""Read-only access to the event log for commands that must never take the writer's lock.

Guarantees: opens the database with ``mode=ro``; never writes, never reads secrets; works while
the daemon runs (WAL readers do not block the writer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from daemon.core import projections as pj
from daemon.store import opening, records


async def events(path: Path | str, *, since: int = 0, kind: str | None = None,
                 key: str | None = None, batch: int = 5000) -> AsyncIterator[records.Record]:
    """Events with ``seq > since``, optionally of one entity, oldest first."""
    conn = await opening.connect(str(path), readonly=True)
    try:
        await opening.check_version(conn, str(path))
        where, params = "WHERE seq > ?", [since]
        if kind is not None:
            where += " AND entity_kind = ?"
            params.append(kind)  # type: ignore[arg-type]
        if key is not None:
            where += " AND entity_key = ?"
            params.append(key)  # type: ignore[arg-type]
        position = since
        while True:
            params[0] = position
            async with conn.execute(
                    f"SELECT {records.COLUMNS} FROM events {where} "
                    "ORDER BY seq LIMIT ?", (*params, batch)) as cur:
                rows = [records.to_record(row) for row in await cur.fetchall()]
            for record in rows:
                yield record
            if len(rows) < batch:
                return
            position = rows[-1].seq
    finally:
        await conn.close()


async def tables(path: Path | str) -> pj.Tables:
    """The live projection tables as the daemon last committed them."""
    conn = await opening.connect(str(path), readonly=True)
    result = pj.Tables()
    try:
        await opening.check_version(conn, str(path))
        for projection in pj.PROJECTIONS:
            async with conn.execute(
                    f"SELECT key, seq, row FROM {projection.table}") as cur:
                for key, seq, data in await cur.fetchall():
                    result.rows[projection.table][key] = pj.decode_row(projection.table, data)
                    result.row_seq[projection.table][key] = int(seq)
        async with conn.execute("SELECT seq FROM checkpoints WHERE name = 'projections'") as cur:
            row = await cur.fetchone()
        result.checkpoint = int(row[0]) if row else 0
    finally:
        await conn.close()
    return result
