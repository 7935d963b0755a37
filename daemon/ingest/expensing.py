"""The booked-entries poller: e-conomic's booked costs on projects, as facts in the log.

What it does (DESIGN.md, "Mapping e-conomic → Moment"): reads bookedEntriesapi's
``GET /booked-entries`` (cursor pages of 1000) for supplier invoices and finance vouchers
(``type`` 3 or 5) on a project, on ``[expenses] accounts`` when set, and appends each entry it
has not recorded yet as a :class:`~daemon.core.events.BookedEntryRecorded` fact keyed
``YEAR:ENTRY``, with its account's type and its VAT code's rate as the agreement's books say
(read once, again on each full scan or when an entry names an account or code not seen yet).

* :meth:`BookedEntries.read_new` — incremental: entries whose ``entryNumber`` is above the
  persisted cursor (so a bill booked today with last month's date is not missed), dated within
  ``lookback``; the cursor is the highest entry number read.
* :meth:`BookedEntries.full_scan` — every entry dated within ``lookback``.
* :meth:`BookedEntries.backfill` — every entry dated from a given day on.
* :meth:`BookedEntries.request_read` — ask for an incremental read now; the daemon's log
  consumer :meth:`BookedEntries.on_events` does on each e-conomic day-book webhook's hint.
  :meth:`BookedEntries.run` serves it, and reads on ``poll_interval`` and scans on
  ``full_scan_interval``.

Guarantees: facts and the cursor that covers them commit in one transaction per page, so a
crash mid-read re-reads the page and records nothing twice (each fact's idempotency key is its
entry); an entry whose amount, date or project does not parse is recorded with its problem and
a warning, and never stops the read; an e-conomic error ends that round (logged, kept for
``/status``; the cursor did not move past what was recorded) and the next round tries again.
Writes nothing to e-conomic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import anyio
import anyio.abc
import msgspec
import structlog

from daemon import waiting
from daemon.core import clocks, reports
from daemon.core import events as ev
from daemon.core import expenses as xp
from daemon.economic import errors, filters, payloads
from daemon.economic.client import EconomicClient
from daemon.store import eventlog, records

_log = structlog.get_logger(__name__)

CURSOR: Final = "booked_entries"  # the PollCursorAdvanced kind of this poller's cursor
RETRY_S: Final = 30.0  # after a failed round, the next one no later than this


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """What one read saw: entries listed, facts recorded, and the cursor after it."""

    listed: int
    recorded: int
    problems: int
    cursor: int


class Books(msgspec.Struct, frozen=True, kw_only=True):
    """The agreement's accounts (number → type) and VAT codes (code → rate, reverse charge)."""

    account_types: dict[int, str]
    vat: dict[str, tuple[Decimal, bool]]


async def read_books(client: EconomicClient) -> Books:
    """The accounts and VAT codes as e-conomic holds them now (two paged reads)."""
    accounts = await client.accounts()
    codes = await client.vat_accounts()
    return Books(
        account_types={a.accountNumber: a.accountType or "" for a in accounts},
        vat={v.vatCode: (Decimal(str(v.ratePercentage or 0)),
                         v.vatType is not None and v.vatType.vatTypeNumber == 3)
             for v in codes})


class BookedEntries:
    """Reads one agreement's booked costs into ``log``; see the module docstring."""

    def __init__(self, *, log: eventlog.EventLog, client: EconomicClient, clock: clocks.Clock,
                 accounts: Sequence[int] = (), lookback_s: float = 30 * 86400.0,
                 poll_interval_s: float = 300.0, full_scan_interval_s: float = 86400.0) -> None:
        self.log = log
        self.client = client
        self.clock = clock
        self.accounts = tuple(accounts)
        self.lookback_s = lookback_s
        self.poll_interval_s = poll_interval_s
        self.full_scan_interval_s = full_scan_interval_s
        self.last_read_at: float | None = None
        self.last_error: str | None = None
        self._books: Books | None = None
        self._fresh = False  # the books were read during the read in progress
        self._now = anyio.Event()
        self._lock = anyio.Lock()  # one read at a time: the cursor moves in order

    # --- what the log holds ---------------------------------------------------------------
    @property
    def cursor(self) -> int:
        """The highest entry number read (0: none yet)."""
        row = self.log.tables.daemon().get(f"cursor:{CURSOR}")
        return int(row.value) if row is not None and row.value.isdigit() else 0

    def status(self) -> reports.BookedEntries:
        """The ``booked_entries`` of ``GET /status``."""
        row = self.log.tables.daemon().get(f"cursor:{CURSOR}")
        return reports.BookedEntries(
            cursor=self.cursor if row is not None else None,
            last_read_at=clocks.iso_posix(self.last_read_at),
            last_full_scan_at=clocks.iso_posix(self._full_scan_at()),
            last_error=self.last_error)

    def _full_scan_at(self) -> float | None:
        row = self.log.tables.daemon().get(f"cursor:{CURSOR}")
        stamp = row.extra.get("full_scan_at") if row is not None else None
        if not stamp:
            return None
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    # --- reads ----------------------------------------------------------------------------
    def request_read(self) -> None:
        """Ask :meth:`run` for an incremental read now (a day-book webhook's hint); cheap,
        never blocks, and several requests before the read are one read."""
        self._now.set()

    async def read_new(self) -> Reading:
        """Entries above the cursor, dated within ``lookback``."""
        flt = filters.gt("entryNumber", self.cursor)
        return await self._read(flt, since=self._lookback_start(), full_scan=False)

    async def full_scan(self) -> Reading:
        """Every entry dated within ``lookback`` (the books are read again first)."""
        self._books = None
        return await self._read(None, since=self._lookback_start(), full_scan=True)

    async def backfill(self, since: dt.date) -> Reading:
        """Every entry dated ``since`` or later (``moment-sync backfill expenses``)."""
        return await self._read(None, since=since, full_scan=False)

    async def read_entry(self, entry_number: int) -> Reading:
        """Entry ``entry_number`` whatever its date (``moment-sync resync expense``)."""
        return await self._read(filters.eq("entryNumber", entry_number), since=None,
                                full_scan=False)

    def _lookback_start(self) -> dt.date:
        return clocks.utc(self.clock.now() - self.lookback_s).date()

    async def _read(self, extra: filters.Filter | None, *, since: dt.date | None,
                    full_scan: bool) -> Reading:
        async with self._lock:
            try:
                reading = await self._read_locked(extra, since=since, full_scan=full_scan)
            except errors.EconomicError as err:
                self.last_error = str(err)
                raise
            self.last_error = None
            self.last_read_at = self.clock.now()
            return reading

    async def _read_locked(self, extra: filters.Filter | None, *, since: dt.date | None,
                           full_scan: bool) -> Reading:
        self._fresh = False
        parts = [filters.or_(filters.eq("type", 3), filters.eq("type", 5)),
                 filters.gte("projectNumber", 1)]
        if since is not None:
            parts.append(filters.gte("date", dt.datetime(since.year, since.month, since.day,
                                                         tzinfo=dt.UTC)))
        base = filters.and_(*([extra] if extra is not None else []), *parts)
        groups = ([base] if not self.accounts else
                  [filters.and_(filters.in_("accountNumber", chunk), base)
                   for chunk in filters.chunks(sorted(set(self.accounts)))])
        listed = recorded = problems = 0
        cursor = self.cursor
        for flt in groups:
            page: list[payloads.BookedEntry | payloads.UnreadableBookedEntry] = []
            async for row in self.client.iter_booked_rows(filter=flt):
                page.append(row)
                if len(page) >= 1000:
                    got, bad, cursor = await self._record(page, cursor)
                    listed, recorded, problems = listed + len(page), recorded + got, \
                        problems + bad
                    page = []
            got, bad, cursor = await self._record(page, cursor)
            listed, recorded, problems = listed + len(page), recorded + got, problems + bad
        if full_scan:
            await self.log.append(
                ev.PollCursorAdvanced(kind=CURSOR, cursor=str(cursor), full_scan=True),
                idempotency_key=f"cursor:{CURSOR}:full:{self.clock.now()!r}")
        return Reading(listed=listed, recorded=recorded, problems=problems, cursor=cursor)

    async def _record(self, rows: Sequence[payloads.BookedEntry
                                           | payloads.UnreadableBookedEntry],
                      cursor: int) -> tuple[int, int, int]:
        """Append the facts of ``rows`` not recorded yet, and the cursor when it moved, in one
        transaction; returns (recorded, with a problem, the cursor)."""
        known = self.log.tables.expenses()
        batch: list[tuple[ev.Event, str, str | None]] = []
        problems = 0
        top = cursor
        for row in rows:
            top = max(top, row.entryNumber)
            fact = await self._fact(row)
            if fact.entity_key in known:
                continue
            batch.append((fact, f"booked:{fact.entity_key}", None))
            if fact.problem:
                problems += 1
                _log.warning("booked entry skipped", entry=fact.entity_key,
                             problem=fact.problem)
        if top > cursor:
            batch.append((ev.PollCursorAdvanced(kind=CURSOR, cursor=str(top)),
                          f"cursor:{CURSOR}:{top}", None))
        if batch:
            await self.log.append_many(batch)
        return len(batch) - (top > cursor), problems, top

    async def _fact(self, row: payloads.BookedEntry | payloads.UnreadableBookedEntry,
                    ) -> ev.BookedEntryRecorded:
        books = await self._books_for(row)
        if isinstance(row, payloads.UnreadableBookedEntry):
            account = row.accountNumber if isinstance(row.accountNumber, int) else None
            return xp.recorded(
                entry_number=row.entryNumber,
                entry_type=row.type if isinstance(row.type, int) else None,
                account_number=account,
                account_type=books.account_types.get(account or 0, ""),
                project_number=row.projectNumber, amount=row.amount,
                currency=row.currencyCode if isinstance(row.currencyCode, str) else "",
                date=row.date, text=row.text if isinstance(row.text, str) else "",
                vat_code="", vat_rate=None, reverse_charge=False,
                voucher_number=row.voucherNumber if isinstance(row.voucherNumber, int) else None,
                customer_number=row.customerNumber if isinstance(row.customerNumber, int)
                else None,
                customer_invoice_number=row.customerInvoiceNumber
                if isinstance(row.customerInvoiceNumber, int) else None,
                unreadable=row.error)
        code = row.vatAccountNumber or ""
        rate, reverse = books.vat.get(code, (None, False)) if code else (None, False)
        return xp.recorded(
            entry_number=row.entryNumber, entry_type=row.type,
            account_number=row.accountNumber,
            account_type=books.account_types.get(row.accountNumber, ""),
            project_number=row.projectNumber, amount=row.amount,
            currency=row.currencyCode or "", date=row.date, text=row.text or "",
            vat_code=code, vat_rate=rate, reverse_charge=reverse,
            voucher_number=row.voucherNumber, customer_number=row.customerNumber,
            customer_invoice_number=row.customerInvoiceNumber)

    async def _books_for(self, row: payloads.BookedEntry | payloads.UnreadableBookedEntry
                         ) -> Books:
        """The books, read again once when ``row`` names an account or VAT code they lack."""
        books = self._books
        account = row.accountNumber if isinstance(row.accountNumber, int) else None
        code = row.vatAccountNumber if isinstance(row.vatAccountNumber, str) else None
        unknown = books is not None and ((account is not None
                                          and account not in books.account_types)
                                         or bool(code and code not in books.vat))
        if books is None or (unknown and not self._fresh):
            books = self._books = await read_books(self.client)
            self._fresh = True  # read during this read: not again for another unknown
        return books

    async def on_events(self, batch: Sequence[records.Committed]) -> None:
        """A log consumer's handler: a day-book webhook's hint (``EconomicHintReceived`` of
        kind ``daybook``) asks for an incremental read now, whatever vouchers it names (the
        cursor decides what is new). Idempotent: a batch seen twice asks once more."""
        if any(isinstance(e, ev.EconomicHintReceived) and e.kind == "daybook"
               for _seq, e in batch):
            self.request_read()

    # --- the loop -------------------------------------------------------------------------
    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Scan when the last full scan is older than ``full_scan_interval`` (or there was
        none), else read incrementally; then wait ``poll_interval`` or for
        :meth:`request_read`. Until cancelled."""
        task_status.started()
        while True:
            self._now = anyio.Event()
            wait = self.poll_interval_s
            try:
                last = self._full_scan_at()
                if last is None or self.clock.now() - last >= self.full_scan_interval_s:
                    await self.full_scan()
                else:
                    await self.read_new()
            except errors.EconomicError as err:
                _log.warning("reading booked entries failed; the next round tries again",
                             error=str(err))
                wait = min(wait, RETRY_S)
            await waiting.wait_for(self._now, seconds=wait, clock=self.clock)
