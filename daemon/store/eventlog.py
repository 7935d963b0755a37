"""The event log: one SQLite file in WAL mode, append-only, the single source of truth.

Guarantees:
- :meth:`EventLog.append` is idempotent on the idempotency key: a duplicate returns the original
  sequence number and writes nothing.
- Appends from many tasks are group-committed: whoever holds the write lock writes every pending
  append in one transaction (events, the projection rows they change, and the checkpoint) and
  commits with ``synchronous=FULL``; a caller returns only when its batch is durable.
- Sequence numbers are gap-free: one writer assigns them inside the transaction.
- On a failed commit nothing is written, the in-memory projections are rolled back, and every
  caller in the batch gets the error.
Reads go through a second connection, so they never see an uncommitted batch.
- The log calls nobody: consumers pull what committed (:meth:`EventLog.committed`, and
  :mod:`daemon.store.consuming`) and are woken by :meth:`EventLog.wait_for`; nothing they do can
  delay or fail an append. The latest events stay in memory, decoded, so a consumer near the
  head reads them without a query.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Final

import aiosqlite
import anyio
import anyio.lowlevel

from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import projections as pj
from daemon.core import rows as rw
from daemon.store import opening, records, writing

_TAIL: Final = 8192  # committed events kept in memory for consumers near the head


class _Pending:
    __slots__ = ("done", "error", "event", "key", "occurred_at", "result")

    def __init__(self, event: ev.Event, key: str, occurred_at: datetime | str | None) -> None:
        self.event = event
        self.key = key
        self.occurred_at = (occurred_at if occurred_at is None or isinstance(occurred_at, str)
                            else records.iso(occurred_at))
        self.result: records.Appended | None = None
        self.error: BaseException | None = None
        self.done = False

    def answer(self) -> records.Appended:
        """What the append returns once its batch is written; raises what refused it."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class EventLog:
    """Open with :meth:`open`; close with :meth:`close` (or ``async with``)."""

    def __init__(self, *, path: str, writer: aiosqlite.Connection,
                 reader: aiosqlite.Connection, lock: opening.Lock | None,
                 clock: clocks.Clock) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = lock
        self._clock = clock
        self._writing = False  # one writer at a time: see _exclusive
        self._write_finished = anyio.Event()
        self._pending: list[_Pending] = []
        self._committed = anyio.Event()
        self.tables = pj.Tables()
        self.last_seq = 0
        # the latest committed events, gap-free and in order (appended in this process only)
        self._tail: list[records.Committed] = []

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path | str, *, clock: clocks.Clock, catch_up: bool = True,
                   progress: Callable[[int, int], None] | None = None,
                   checkpoints: bool = True) -> EventLog:
        """Take the directory's lock, apply the schema, load projections, catch them up.
        ``checkpoints=False`` leaves checkpoints to Litestream (:func:`opening.connect`).

        Raises :class:`~daemon.store.opening.AlreadyRunning` (nothing written) when another
        process holds the lock, :class:`~daemon.store.opening.NewerSchema` for a newer file.
        """
        name = str(path)
        lock = None
        if name != opening.MEMORY:
            lock = opening.Lock(Path(name))
            lock.acquire()
        try:
            writer = await opening.connect(name, checkpoints=checkpoints)
            try:
                await opening.apply_schema(writer, name)
                reader = writer if name == opening.MEMORY else await opening.connect(
                    name, readonly=True)
            except BaseException:
                await writer.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        log = cls(path=name, writer=writer, reader=reader, lock=lock, clock=clock)
        await log._load()
        if catch_up:
            await log.catch_up(progress=progress)
        return log

    async def close(self) -> None:
        if self._reader is not self._writer:
            await self._reader.close()
        await self._writer.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    async def __aenter__(self) -> EventLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.close()

    async def _load(self) -> None:
        for projection in pj.PROJECTIONS:
            rows = self.tables.rows[projection.table]
            seqs = self.tables.row_seq[projection.table]
            async with self._writer.execute(
                    f"SELECT key, seq, row FROM {projection.table}") as cur:
                async for key, seq, data in cur:
                    loaded = pj.decode_row(projection.table, data)
                    key = sys.intern(key)  # the same string as the row's own number
                    rows[key] = loaded
                    # one int for the row's seq and the table's (not two per row)
                    own = getattr(loaded, "seq", None)
                    seqs[key] = own if isinstance(own, int) and own == seq else int(seq)
        async with self._writer.execute(
                "SELECT seq FROM checkpoints WHERE name = 'projections'") as cur:
            row = await cur.fetchone()
        self.tables.checkpoint = int(row[0]) if row else 0
        async with self._writer.execute("SELECT COALESCE(MAX(seq), 0) FROM events") as cur:
            row = await cur.fetchone()
        self.last_seq = int(row[0]) if row else 0

    async def catch_up(self, *, progress: Callable[[int, int], None] | None = None,
                       batch: int = 5000) -> int:
        """Fold events after the checkpoint into the projections; returns how many."""
        folded = 0
        async with self._exclusive():
            while self.tables.checkpoint < self.last_seq:
                records = await self._read(self._writer, "WHERE seq > ? ORDER BY seq LIMIT ?",
                                           (self.tables.checkpoint, batch))
                start = self.tables.checkpoint
                changed: list[pj.Change] = []
                for record in records:
                    self.tables.apply(record.seq, record.occurred_at, record.event, changed)
                try:
                    await self._writer.execute("BEGIN IMMEDIATE")
                    await self._write_rows(changed)
                    await self._writer.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    self.tables.undo(changed, start)
                    raise
                folded += len(records)
                if progress is not None:
                    progress(self.tables.checkpoint, self.last_seq)
        return folded

    # --- appending ------------------------------------------------------------------------

    async def append(self, event: ev.Event, *, idempotency_key: str,
                     occurred_at: datetime | str | None = None) -> records.Appended:
        """Append one event durably; a known idempotency key appends nothing."""
        pending = _Pending(event, idempotency_key, occurred_at)
        self._pending.append(pending)
        await self._until_done(pending)
        return pending.answer()

    async def append_many(
        self, items: Iterable[tuple[ev.Event, str, datetime | str | None]],
    ) -> list[records.Appended]:
        """Append several events; all of them commit in the same transaction."""
        mine = [_Pending(event, key, at) for event, key, at in items]
        if not mine:
            return []
        self._pending.extend(mine)
        await self._until_done(mine[-1])
        return [pending.answer() for pending in mine]

    async def _until_done(self, last: _Pending) -> None:
        """Wait until the batch holding ``last`` (queued after the caller's others) is written;
        when no write is running, write every pending append as one batch."""
        while not last.done:
            if self._writing:
                await self._write_finished.wait()
                continue
            async with self._exclusive():
                # let every task that is ready to append join this batch: one fsync for all
                await anyio.lowlevel.checkpoint()
                batch, self._pending = self._pending, []
                if batch:
                    await self._write(batch)

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """Be the only writer. Waiters sleep on one event per write rather than queueing on a
        lock, so a batch of a hundred appends wakes its callers in one step."""
        while self._writing:
            await self._write_finished.wait()
        self._writing = True
        finished = self._write_finished
        try:
            yield
        finally:
            self._writing = False
            self._write_finished = anyio.Event()
            finished.set()

    async def _write(self, batch: list[_Pending]) -> None:
        # Shielded: the worker thread finishes a started commit even if we are cancelled, so
        # the in-memory projections must follow whatever it did.
        with anyio.CancelScope(shield=True):
            await self._write_shielded(batch)

    async def _write_shielded(self, batch: list[_Pending]) -> None:
        recorded = records.iso(clocks.utc(self._clock.now()))
        start_seq, start_checkpoint = self.last_seq, self.tables.checkpoint
        changed: list[pj.Change] = []
        stored: dict[str, int] = {}  # keys the log already held: learnt from a refused try
        try:
            while True:  # one hop to the thread, a second only when some keys were known
                rows, fresh, changed, seq = self._prepare(batch, stored, recorded)
                if not rows:
                    break
                held = await writing.in_thread(self._writer, writing.commit, rows,
                                               self._projection_rows(changed),
                                               self.tables.checkpoint)
                if not held:
                    self.last_seq = seq
                    break
                self.tables.undo(changed, start_checkpoint)
                changed = []
                stored.update(held)
        except BaseException as exc:
            self.tables.undo(changed, start_checkpoint)
            self.last_seq = start_seq
            error = opening.StoreError(f"the event log refused an append: {exc}")
            error.__cause__ = exc
            for pending in batch:
                pending.result = None
                pending.error = error
                pending.done = True
            if isinstance(exc, sqlite3.Error):
                raise error from exc
            raise
        for pending in batch:
            pending.done = True
        if fresh:
            self._tail += fresh
            if len(self._tail) > 2 * _TAIL:
                del self._tail[:-_TAIL]
            self._committed.set()
            self._committed = anyio.Event()

    def _prepare(self, batch: list[_Pending], stored: dict[str, int], recorded: str
                 ) -> tuple[list[tuple[object, ...]], list[records.Committed], list[pj.Change],
                            int]:
        """Number the batch's new events after :attr:`last_seq` and fold them into the
        projections; an idempotency key in ``stored``, or seen earlier in the batch, gets the
        sequence number it already has. Returns the event rows, the events, the projection
        changes and the last sequence number."""
        known = dict(stored)
        rows: list[tuple[object, ...]] = []
        fresh: list[records.Committed] = []
        changed: list[pj.Change] = []
        seq = self.last_seq
        apply, encode, version = self.tables.apply, ev.encode, ev.SCHEMA_VERSION
        committed = records.Committed._make  # the tuple is built in C, not by __new__
        for pending in batch:
            event, idempotency_key = pending.event, pending.key
            if idempotency_key in known:
                pending.result = records.Appended(known[idempotency_key], False)
                continue
            seq += 1
            known[idempotency_key] = seq
            kind, key = ev.entity_of(event)
            occurred = pending.occurred_at or recorded
            rows.append((seq, ev.type_name(event), version, kind, key, idempotency_key,
                         occurred, recorded, encode(event)))
            apply(seq, occurred, event, changed)
            pending.result = records.Appended(seq, True)
            fresh.append(committed((seq, event)))
        return rows, fresh, changed, seq

    async def _rollback(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                if self._writer.in_transaction:
                    await self._writer.execute("ROLLBACK")
            except Exception:  # noqa: S110 - the original error is what the caller needs
                pass

    def _projection_rows(self, changed: list[pj.Change]
                         ) -> dict[str, list[tuple[str, int, bytes]]]:
        by_table: dict[str, dict[str, rw.Row]] = {}
        for table, key, _old, _seq in changed:
            by_table.setdefault(table, {})[key] = self.tables.rows[table][key]
        return {table: [(key, self.tables.row_seq[table][key], pj.encode_row(row))
                        for key, row in rows.items()] for table, rows in by_table.items()}

    async def _write_rows(self, changed: list[pj.Change]) -> None:
        for table, rows in self._projection_rows(changed).items():
            await self._writer.executemany(writing.upsert(table), rows)
        await self._writer.execute(
            "UPDATE checkpoints SET seq = ? WHERE name = 'projections'", (self.tables.checkpoint,))

    # --- blobs ----------------------------------------------------------------------------

    async def put_blob(self, data: bytes, *, content_type: str = "application/pdf") -> str:
        """Store bytes once under their SHA-256 (durable on return); returns the hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        async with self._exclusive():
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                await self._writer.execute(
                    "INSERT OR IGNORE INTO blobs (sha256, size, content_type, data, stored_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (digest, len(data), content_type, data,
                     records.iso(clocks.utc(self._clock.now()))))
                await self._writer.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise
        return digest

    async def get_blob(self, digest: str) -> bytes | None:
        async with self._reader.execute(
                "SELECT data FROM blobs WHERE sha256 = ?", (digest,)) as cur:
            row = await cur.fetchone()
        return bytes(row[0]) if row else None

    async def blob_count(self) -> int:
        async with self._reader.execute("SELECT COUNT(*) FROM blobs") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # --- reading --------------------------------------------------------------------------

    async def _read(self, conn: aiosqlite.Connection, where: str,
                    params: tuple[object, ...]) -> list[records.Record]:
        async with conn.execute(f"SELECT {records.COLUMNS} FROM events {where}", params) as cur:
            return [records.to_record(row) for row in await cur.fetchall()]

    async def read(self, *, since: int = 0, limit: int = 10_000) -> list[records.Record]:
        """Committed events with ``seq > since``, oldest first, at most ``limit``."""
        return await self._read(self._reader, "WHERE seq > ? ORDER BY seq LIMIT ?",
                                (since, limit))

    async def read_entity(self, kind: str, key: str) -> list[records.Record]:
        return await self._read(self._reader,
                                "WHERE entity_kind = ? AND entity_key = ? ORDER BY seq",
                                (kind, key))

    async def count(self) -> int:
        async with self._reader.execute("SELECT COUNT(*) FROM events") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def committed(self, *, after: int, limit: int = 1000) -> list[records.Committed]:
        """Committed events with ``seq > after``, oldest first, at most ``limit``: from memory
        when they are recent, else from the file."""
        tail = self._tail
        if tail and tail[0].seq <= after + 1:
            start = after + 1 - tail[0].seq
            return tail[start:start + limit]
        if after >= self.last_seq:
            return []
        rows = await self.read(since=after, limit=limit)
        return [records.Committed(r.seq, r.event) for r in rows]

    async def wait_for(self, seq: int) -> None:
        """Return once an event with sequence number ``>= seq`` is committed."""
        while self.last_seq < seq:
            await self._committed.wait()

    async def follow(self, *, since: int = 0, batch: int = 1000) -> AsyncIterator[records.Record]:
        """Every committed event after ``since``, then each new one as it commits; forever."""
        position = since
        while True:
            records = await self.read(since=position, limit=batch)
            for record in records:
                yield record
                position = record.seq
            if len(records) < batch:
                await self.wait_for(position + 1)
