"""The poller: catches changes no webhook told about, and objects Moment no longer has.

What it does, per kind (customers, then projects, then invoices, so dependencies come first):

* :meth:`Poller.poll_once` lists the objects whose ``lastModifiedDate`` is at or after the
  kind's cursor minus :attr:`Poller.overlap_s` (clock skew, and objects saved while a page was
  being read), hands each to the hint processor's :meth:`~daemon.ingest.hinting.HintProcessor.
  ingest` (the same path as a hint, so the same events), and moves the cursor to the latest
  ``lastModifiedDate`` seen that is not after the host's clock minus :data:`CURSOR_MARGIN_S`
  (DESIGN.md, Bounds): one object that Moment dated in the future must not freeze the cursor
  until real time catches up, and an object of the last minute moves it on the next round
  (so a quiet Moment costs no cursor writes). A persisted cursor beyond that bound (from
  before it existed) is read as the bound. The cursor is persisted as
  ``PollCursorAdvanced(kind, cursor)`` only when it moved. How far Moment's dates run ahead
  of the host's clock is :attr:`Poller.clock_skew_s`, shown in ``/status``.
* :meth:`Poller.full_scan` lists every object, and fetches each managed object the list did not
  show: a 404 records it gone (a paging race never does), an answer records it as usual. It
  persists ``PollCursorAdvanced(kind, cursor, full_scan=True)``.
* :meth:`Poller.run` does a full scan of a kind when the last one is older than
  ``full_scan_interval_s`` (or there was none), else an incremental poll, every
  ``poll_interval_s``. A Moment error ends that round for that kind (logged; the cursor did not
  move, so nothing is skipped) and the next round tries again.
* :meth:`Poller.resync` re-fetches one entity now, by its Moment number: the Moment id comes
  from the log, else from a scan of Moment.

Guarantees: the cursor only moves after every object of the listing has been handed over, so a
crash or an error mid-listing re-reads it; a listed object that does not decode is fetched on
its own (which records it, or parks it with Moment's answer) and never ends the round for the
others; time and sleeps are injected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Final

import anyio
import anyio.abc
import msgspec
import structlog

from daemon.core import clocks
from daemon.core import events as ev
from daemon.ingest import hinting, normalizing
from daemon.ingest.ingesting import Outcome
from daemon.moment import client as moment_client
from daemon.moment import errors, shapes
from daemon.store import eventlog

_log = structlog.get_logger(__name__)

DEFAULT_OVERLAP_S: Final = 120.0
#: The poll cursor never passes the host's clock minus this (DESIGN.md, Bounds).
CURSOR_MARGIN_S: Final = 60.0
#: A ``lastModifiedDate`` before this never moves the cursor (year 1 minus the overlap is
#: not a date: one such object must not stop the poll).
CURSOR_FLOOR: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _parse(text: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


class PollResult(msgspec.Struct, frozen=True, kw_only=True):
    """One poll or scan of one kind: how many objects were listed, what became of them."""

    kind: str
    full_scan: bool
    listed: int
    outcomes: dict[str, int]
    cursor: str


class Poller:
    """Polls one Moment company into the log through ``processor``."""

    def __init__(self, *, log: eventlog.EventLog, client: moment_client.MomentClient,
                 processor: hinting.HintProcessor, poll_interval_s: float,
                 full_scan_interval_s: float, overlap_s: float = DEFAULT_OVERLAP_S,
                 clock: clocks.Clock) -> None:
        if poll_interval_s <= 0 or full_scan_interval_s <= 0 or overlap_s < 0:
            raise ValueError("intervals must be positive and the overlap not negative")
        self._log = log
        self._client = client
        self._processor = processor
        self.poll_interval_s = poll_interval_s
        self.full_scan_interval_s = full_scan_interval_s
        self.overlap_s = overlap_s
        self._clock = clock
        self.last_poll_at: dict[str, dt.datetime] = {}
        #: per kind, how far the latest round's newest ``lastModifiedDate`` ran ahead of the
        #: host's clock (0 when it did not)
        self.skew_s: dict[str, float] = {}

    def _now(self) -> dt.datetime:
        return clocks.utc(self._clock.now())

    @property
    def clock_skew_s(self) -> float:
        """How far Moment's ``lastModifiedDate`` values run ahead of the host's clock."""
        return max(self.skew_s.values(), default=0.0)

    # --- cursors --------------------------------------------------------------------------

    def cursor(self, kind: str) -> dt.datetime | None:
        """The latest ``lastModifiedDate`` seen for a kind, as persisted; None before any."""
        row = self._log.tables.daemon().get(f"cursor:{kind}")
        return None if row is None or not row.value else _parse(row.value)

    def last_full_scan(self, kind: str) -> dt.datetime | None:
        row = self._log.tables.daemon().get(f"cursor:{kind}")
        text = row.extra.get("full_scan_at", "") if row is not None else ""
        return _parse(text) if text else None

    def full_scan_due(self, kind: str) -> bool:
        last = self.last_full_scan(kind)
        return last is None or (self._now() - last).total_seconds() >= self.full_scan_interval_s

    @staticmethod
    def _bound(moment: dt.datetime | None, started: dt.datetime) -> dt.datetime | None:
        bound = started - dt.timedelta(seconds=CURSOR_MARGIN_S)
        return moment if moment is None or moment <= bound else bound

    async def _advance(self, kind: str, latest: dt.datetime | None, *, full_scan: bool,
                       started: dt.datetime) -> str:
        persisted = self.cursor(kind)
        previous = self._bound(persisted, started)
        if latest is None or (previous is not None and latest < previous):
            latest = previous
        cursor = "" if latest is None else clocks.iso(latest)
        if full_scan:
            key = f"cursor:{kind}:full:{clocks.iso(started)}"
        elif latest is None or latest == persisted:
            return cursor
        else:
            key = f"cursor:{kind}:{cursor}"
        await self._log.append(ev.PollCursorAdvanced(kind=kind, cursor=cursor,
                                                     full_scan=full_scan),
                               idempotency_key=key, occurred_at=started)
        return cursor

    # --- one round ------------------------------------------------------------------------

    def _list(self, kind: str, modified_from: dt.datetime | None,
              ) -> AsyncIterator[normalizing.Snapshot | shapes.Unreadable]:
        if kind == "customer":
            return self._client.iter_customers(modified_from=modified_from)
        if kind == "project":
            return self._client.iter_projects(modified_from=modified_from)
        if kind == "invoice":
            return self._client.iter_invoices(modified_from=modified_from)
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(ev.KINDS)}")

    async def poll_once(self, kind: str) -> PollResult:
        """List what changed since the cursor (minus the overlap) and ingest it."""
        return await self._round(kind, full_scan=False)

    async def full_scan(self, kind: str) -> PollResult:
        """List everything; fetch managed objects the list did not show (gone on 404)."""
        return await self._round(kind, full_scan=True)

    async def _round(self, kind: str, *, full_scan: bool) -> PollResult:
        started = self._now()
        cursor = None if full_scan else self._bound(self.cursor(kind), started)
        if cursor is not None and cursor < CURSOR_FLOOR:
            cursor = None
        modified_from = None if cursor is None else cursor - dt.timedelta(seconds=self.overlap_s)
        outcomes: dict[str, int] = {}
        seen: set[int] = set()
        latest: dt.datetime | None = None  # the newest date at or before the bound
        newest: dt.datetime | None = None
        bound = started - dt.timedelta(seconds=CURSOR_MARGIN_S)
        async for snapshot in self._list(kind, modified_from):
            if isinstance(snapshot, shapes.Unreadable):
                outcome = await self._unreadable(snapshot)
                outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
                if snapshot.moment_id is not None:
                    seen.add(snapshot.moment_id)
                continue
            seen.add(snapshot.id)
            modified = snapshot.last_modified_date
            newest = modified if newest is None or modified > newest else newest
            if CURSOR_FLOOR <= modified <= bound and (latest is None or modified > latest):
                latest = modified
            outcome = await self._processor.ingest(snapshot)
            outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
        if full_scan:
            for moment_id in sorted(set(self._processor.ingestor.known_ids(kind)) - seen):
                outcome = await self._processor.process(kind, moment_id)
                outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
        if latest is None and newest is not None and newest >= CURSOR_FLOOR \
                and self.cursor(kind) is None:
            latest = min(newest, bound)  # a first cursor, so the next round is incremental
        new_cursor = await self._advance(kind, latest, full_scan=full_scan, started=started)
        self.last_poll_at[kind] = started
        skew = 0.0 if newest is None else max(0.0, (newest - started).total_seconds())
        self.skew_s[kind] = skew
        if skew > CURSOR_MARGIN_S:
            _log.warning("moment dates run ahead of the host's clock; the poll cursor is held "
                         "at the host's clock", kind=kind, skew_s=round(skew, 1))
        result = PollResult(kind=kind, full_scan=full_scan, listed=len(seen),
                            outcomes=outcomes, cursor=new_cursor)
        _log.info("moment polled", kind=kind, full_scan=full_scan, listed=len(seen),
                  outcomes=outcomes, cursor=new_cursor)
        return result

    async def _unreadable(self, listed: shapes.Unreadable) -> Outcome:
        """One listed object did not decode: fetch it alone, which records it or parks it with
        Moment's answer (one object's problem; the listing goes on)."""
        if listed.moment_id is None:
            _log.warning("moment listed an object without a usable id; skipped",
                         kind=listed.kind, error=listed.error)
            return Outcome.UNREADABLE
        return await self._processor.process(listed.kind, listed.moment_id)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Poll every kind every ``poll_interval_s`` until cancelled (full scans when due)."""
        task_status.started()
        while True:
            for kind in ev.KINDS:
                try:
                    if self.full_scan_due(kind):
                        await self.full_scan(kind)
                    else:
                        await self.poll_once(kind)
                except errors.MomentError as exc:
                    _log.warning("moment poll failed; trying again next round", kind=kind,
                                 error=str(exc), retryable=exc.retryable)
            await self._clock.sleep(self.poll_interval_s)

    # --- resync ---------------------------------------------------------------------------

    async def find_id(self, kind: str, key: str) -> int | None:
        """The Moment id of the object numbered ``key``: from the log, else by a scan."""
        row = self._processor.ingestor.rows(kind).get(key)
        if row is not None:
            return row.fact.moment_id
        async for snapshot in self._list(kind, None):
            if not isinstance(snapshot, shapes.Unreadable) \
                    and normalizing.number_of(snapshot) == key:
                return snapshot.id
        return None

    async def resync(self, kind: str, key: str) -> Outcome:
        """Fetch the entity numbered ``key`` from Moment now and record what it says.

        Raises :class:`LookupError` when neither the log nor Moment knows the number, and
        Moment's errors from the scan; the fetch itself retries and parks as hints do.
        """
        if kind not in ev.KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(ev.KINDS)}")
        moment_id = await self.find_id(kind, key)
        if moment_id is None:
            raise LookupError(f"Moment has no {kind} numbered {key!r}, and the log has none")
        outcome = await self._processor.process(kind, moment_id, number=key)
        _log.info("moment resynced", kind=kind, key=key, moment_id=moment_id, outcome=outcome)
        return outcome
