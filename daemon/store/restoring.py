"""``moment-sync restore``: after the event log was brought back from a replica or a backup.

A restored log may lack its tail: the last writes the daemon made (and the Moment facts and
cursors it recorded) may be missing from it. Facts and cursors need nothing: the cursors are
older, so Moment is simply read again from them. A write that went missing is the danger, so
every entity the log has written to, and whose life in e-conomic is not over, is marked in
doubt with one :class:`~daemon.core.events.RestoreMarked`; its next write is then preceded by a
lookup (DESIGN.md, "Losing the host loses nothing").

Guarantees: the file is checked before anything is written to it, read-only: a file that fails
SQLite's integrity check, or is not a moment-sync log, is refused with :class:`NotRestorable`
(nothing written, not even the schema); a daemon holding the log's lock is refused with
:class:`~daemon.store.opening.AlreadyRunning` (nothing written); a second run with nothing new
to mark appends nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

import msgspec

from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import projections as pj
from daemon.store import eventlog, opening

#: the tables and columns a moment-sync log has (schema.sql)
_REQUIRED: Final[dict[str, frozenset[str]]] = {
    "events": frozenset({"seq", "type", "schema_version", "entity_kind", "entity_key",
                         "idempotency_key", "occurred_at", "recorded_at", "payload"}),
    "checkpoints": frozenset({"name", "seq"}),
}


class NotRestorable(opening.StoreError):
    """The file cannot be used as this daemon's log; nothing was written to it."""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    marked: int
    entities: int  # entities the log has written to
    last_seq: int


async def verify(path: Path) -> None:
    """Refuse (:class:`NotRestorable`) a file that is missing, fails SQLite's integrity check or
    is not a moment-sync log; read-only, so it writes nothing whatever the file holds."""
    if not path.is_file():
        raise NotRestorable(
            f"{path}: no event log there. Restore it first (litestream restore -config "
            f"FILE {path}), then run moment-sync restore again")
    refuse = (f"the daemon must not start on it: restore it again from the replica (litestream "
              f"restore -o {path} ..., an earlier -generation or -timestamp if the latest is "
              "damaged) or from another backup, then run moment-sync restore again")
    try:
        conn = await opening.connect(str(path), readonly=True)
    except sqlite3.Error as exc:
        raise NotRestorable(f"{path} cannot be opened as an SQLite database ({exc}): "
                            f"{refuse}") from exc
    try:
        async with conn.execute("PRAGMA integrity_check") as cur:
            verdicts = [str(row[0]) for row in await cur.fetchall()]
        if verdicts != ["ok"]:
            raise NotRestorable(f"{path} fails SQLite's integrity check "
                                f"({'; '.join(verdicts[:3])}): {refuse}")
        for table, needed in _REQUIRED.items():
            async with conn.execute(f"PRAGMA table_info({table})") as cur:
                columns = {str(row[1]) for row in await cur.fetchall()}
            if not needed <= columns:
                raise NotRestorable(f"{path} is not a moment-sync event log (it has no "
                                    f"{table} table of the right shape): {refuse}")
        await opening.check_version(conn, str(path))
    except sqlite3.Error as exc:
        raise NotRestorable(f"{path} fails SQLite's integrity check ({exc}): {refuse}") from exc
    finally:
        await conn.close()


async def restore(path: Path, *, clock: clocks.Clock) -> Outcome:
    """Verify the file, then mark in doubt every entity whose last write may be missing (one
    event, or none when there is nothing new to mark)."""
    await verify(path)
    async with await eventlog.EventLog.open(path, clock=clock) as log:
        keys = pj.restore_candidates(log.tables)
        if keys:
            through = log.last_seq
            await log.append(ev.RestoreMarked(entities=tuple(keys), through_seq=through),
                             idempotency_key=f"restore:{through}")
        return Outcome(marked=len(keys), entities=len(log.tables.states()),
                       last_seq=log.last_seq)
