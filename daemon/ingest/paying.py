"""Reading the paid status of the invoices the daemon booked, from e-conomic, as facts.

Every ``[payments] poll_interval``, at start, and when asked (``resync payment N``, and every
e-conomic day-book webhook: a consumer of the log wakes the reader for each
``economic_hint_received`` of kind ``daybook``), :meth:`PaidStatus.refresh` reads the customer
rows of every invoice the log records as booked in **one filtered, paged read**:
bookedEntriesapi ``GET /booked-entries`` filtered by ``customerInvoiceNumber`` from the lowest
to the highest such invoice number (a gap of over :data:`GAP` numbers, a new number series,
starts a range of its own in the same filter), followed cursor page by cursor page (1000 rows a
page), so N booked invoices cost about ceil(N/1000) reads, never one per invoice. Each row is
matched to its invoice by invoice number, voucher number and accounting year (what the log
recorded when the daemon booked it); rows of other vouchers (a payment that names the invoice,
an invoice e-conomic numbered the same) are not the invoice's.

A matched row whose ``amount`` or ``remainder`` differs from the invoice's latest
:class:`~daemon.core.events.PaymentObserved` fact is appended as a new fact, with the UTC date
of the read as ``seen_on`` (Moment's ``paidDate``); an invoice never paid and never recorded is
not (Moment shows "not paid" without being told). The facts of one read commit together; the
reconciler's payment kind takes them to Moment.

Guarantees: reads e-conomic only, writes only facts to the log, each once (an idempotency key
per reading after the latest fact, so two reads of the same row collapse). A read that fails is
logged and kept in :attr:`PaidStatus.last_error`; nothing is appended and the next round tries
again. Never reads Moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import anyio
import anyio.abc
import structlog

from daemon import waiting
from daemon.core import clocks
from daemon.core import events as ev
from daemon.core import payments as pay
from daemon.core import projections as pj
from daemon.economic import errors, filters
from daemon.economic.client import EconomicClient
from daemon.store import consuming, records
from daemon.store.eventlog import EventLog

_log = structlog.get_logger(__name__)

RETRY_S: Final = 60.0  # after a failed read, try again this soon (or at the interval)
#: Booked invoice numbers further apart than this start a range of their own, so a gap in the
#: numbering (a new series) does not make the read cover e-conomic's own invoices in between.
GAP: Final = 1000
#: Ranges in one read's filter; more make another read (each a short filter e-conomic takes).
RANGES_PER_READ: Final = 20


def ranges(numbers: Sequence[int], gap: int = GAP) -> list[tuple[int, int]]:
    """Sorted ``numbers`` as ``(first, last)`` runs, a new run after a gap over ``gap``."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and n - out[-1][1] <= gap:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def range_filters(numbers: Sequence[int]) -> list[filters.Filter]:
    """The filters of the reads that cover ``numbers``: one per :data:`RANGES_PER_READ` runs
    (for numbers that run on with gaps under :data:`GAP`, one filter in all)."""
    runs = [filters.gte("customerInvoiceNumber", a) & filters.lte("customerInvoiceNumber", b)
            for a, b in ranges(numbers)]
    out: list[filters.Filter] = []
    for start in range(0, len(runs), RANGES_PER_READ):
        chunk = runs[start:start + RANGES_PER_READ]
        flt = chunk[0]
        for more in chunk[1:]:
            flt = flt | more
        out.append(flt)
    return out


@dataclass(frozen=True, slots=True)
class Booked:
    """An invoice the daemon booked, as the log has it."""

    number: int
    moment_id: int
    voucher_number: int
    accounting_year: str


def booked_invoices(tables: pj.Tables) -> list[Booked]:
    """Every invoice the log records as booked that Moment still has, by number."""
    out: list[Booked] = []
    invoices = tables.invoices()
    for key, row in invoices.items():
        if row.gone or not key.isdigit():
            continue
        st = tables.state("invoice", key)
        if st.booked and st.voucher_number is not None:
            out.append(Booked(number=int(key), moment_id=row.fact.moment_id,
                              voucher_number=st.voucher_number,
                              accounting_year=st.accounting_year))
    out.sort(key=lambda b: b.number)
    return out


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _year_of(date: str | None) -> str:
    return (date or "")[:4]


def _in_year(date: str | None, accounting_year: str) -> bool:
    """Whether a row dated ``date`` lies in ``accounting_year`` ("2026" or "2025/2026"; unknown
    when the log recorded none: then the voucher number decides alone)."""
    year = _year_of(date)
    return not accounting_year or (bool(year) and year in accounting_year)


class PaidStatus:
    """The paid-status reader; run it with ``await tg.start(reader.run)``."""

    def __init__(self, *, log: EventLog, client: EconomicClient, clock: clocks.Clock,
                 poll_interval_s: float = 3600.0) -> None:
        self.log = log
        self.client = client
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.last_read_at: float | None = None
        self.last_error: str | None = None
        self.reads = 0  # read passes made (each one filtered, paged read)
        self.rounds = 0  # rounds of :meth:`run` finished, read or failed
        self._now = anyio.Event()
        self._lock = anyio.Lock()
        self._round = waiting.Condition(lambda: False)
        # the day-book webhooks, as committed: from the head (what came before was read at start)
        self.hints = consuming.Consumer(name="payments", log=log, handle=self._on_events,
                                        clock=clock)

    async def _on_events(self, batch: Sequence[records.Committed]) -> None:
        if any(isinstance(e, ev.EconomicHintReceived) and e.kind == "daybook"
               for _seq, e in batch):
            self.request()

    async def after_round(self, n: int) -> None:
        """Return once :meth:`run` has finished ``n`` rounds (for tests and the demo)."""
        self._round = waiting.Condition(lambda: self.rounds >= n)
        self._round.recheck()
        await self._round.wait()

    def request(self) -> None:
        """Refresh now (a day-book webhook, an operator's resync), not at the next interval."""
        self._now.set()

    async def refresh(self) -> int:
        """One read of every booked invoice's customer row; returns how many facts it
        appended. Raises the client's error when e-conomic fails the read (nothing appended)."""
        async with self._lock:
            tables = self.log.tables
            booked = booked_invoices(tables)
            if not booked:
                self.last_read_at = self.clock.now()
                return 0
            wanted = {b.number: b for b in booked}
            rows: dict[int, tuple[int, str, str, str, str]] = {}
            for flt in range_filters([b.number for b in booked]):
                self.reads += 1
                async for row in self.client.iter_booked_entries(filter=flt):
                    b = wanted.get(row.customerInvoiceNumber or 0)
                    if (b is None or row.remainder is None
                            or row.voucherNumber != b.voucher_number
                            or not _in_year(row.date, b.accounting_year)):
                        continue
                    rows[b.number] = (row.entryNumber, _money(row.amount),
                                      _money(row.remainder), row.currencyCode or "",
                                      _year_of(row.date))
            today = clocks.utc(self.clock.now()).date().isoformat()
            facts = list(self._facts(tables, wanted, rows, today))
            for start in range(0, len(facts), 2000):
                await self.log.append_many(facts[start:start + 2000])
            self.last_read_at = self.clock.now()
            return len(facts)

    def _facts(self, tables: pj.Tables, wanted: dict[int, Booked],
               rows: dict[int, tuple[int, str, str, str, str]], today: str,
               ) -> Iterable[tuple[ev.Event, str, None]]:
        payments = tables.payments()
        for number, (entry, amount, remainder, currency, year) in sorted(rows.items()):
            latest = payments.get(str(number))
            fact = latest.fact if latest is not None else None
            if not pay.changed(fact, amount, remainder):
                continue
            b = wanted[number]
            yield (ev.PaymentObserved(
                invoice_number=number, moment_id=b.moment_id, year=year, entry_number=entry,
                voucher_number=b.voucher_number, amount=amount, remainder=remainder,
                currency=currency, seen_on=today),
                pay.fact_key(number, amount, remainder, latest.seq if latest else 0), None)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Refresh at start, then every ``poll_interval_s`` or when :meth:`request` asks, until
        cancelled; a failed read is tried again after :data:`RETRY_S` at the latest."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.hints.run)
            task_status.started()
            await self._rounds()

    async def _rounds(self) -> None:
        while True:
            self._now = anyio.Event()
            wait = self.poll_interval_s
            try:
                appended = await self.refresh()
                self.last_error = None
                _log.info("paid status read", facts=appended)
            except errors.EconomicError as err:
                self.last_error = str(err)
                wait = min(wait, RETRY_S)
                _log.warning("paid status read failed; tried again later", error=str(err))
            self.rounds += 1
            self._round.recheck()
            await waiting.wait_for(self._now, seconds=wait, clock=self.clock)
