"""Looking invoices up in e-conomic: which of them are there already, and on which voucher.

Looking an invoice up (DESIGN.md) reads the type-10 draft entries of its customer, in every
journal (an invoice sent to a journal the configuration has since left, or by a log that lost
its tail, is found all the same), and the booked entries by its invoice number, and compares
invoice number, customer, amount in cents and date. The reads go in groups of at most 200
values, each followed to its last page. A group whose read fails makes only its own invoices
wait (:attr:`Lookup.failed`); the others carry on.

What is found is recorded (``InvoiceEntryCreated``, ``InvoiceBooked``, ``found_by_lookup``) in
one transaction, unless its voucher is also another invoice's: every invoice must have a voucher
of its own (its PDF goes there), so the invoices sharing one are parked with a reason instead.
An entry under the invoice's number and customer with another amount or date is never taken for
the invoice, nor is a second one created beside it: it is reported in :attr:`Lookup.differs`.

Never writes to e-conomic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from daemon.core import events as ev
from daemon.core import plans
from daemon.economic import errors, filters, payloads
from daemon.economic.client import EconomicClient
from daemon.reconcile.controls import Controls
from daemon.reconcile.invoice_items import KIND, Item, journal_of, live_booked, live_draft

Hit = tuple[Item, plans.LiveEntry, str]  # the invoice, its entry, the entry's accounting year


@dataclass
class Lookup:
    """What one lookup learnt: ``found`` recorded now (or already so recorded), ``absent``
    read and not in e-conomic, ``differs`` in e-conomic under the invoice's number with other
    content, ``failed`` not read (the error), ``parked`` sharing a voucher."""

    found: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)
    differs: dict[str, plans.LiveEntry] = field(default_factory=dict)
    failed: dict[str, errors.EconomicError] = field(default_factory=dict)
    parked: set[str] = field(default_factory=set)


class Finder:
    """Lookups and voucher claims for one controller; call :meth:`new_pass` at each pass."""

    def __init__(self, ctx: Controls) -> None:
        self.ctx = ctx
        self._years: list[payloads.AccountingYear] = []
        self._owners: dict[tuple[str, int], str] | None = None

    def new_pass(self) -> None:
        self._owners = None

    async def year_of(self, day: str) -> str:
        """The accounting year holding ``day`` (read once, again when none holds it)."""
        for attempt in range(2):
            if attempt or not self._years:
                self._years = await self.ctx.client.accounting_years()
            for y in self._years:
                if y.fromDate <= day[:10] <= y.toDate:
                    return y.year
        return day[:4]

    # --- reading ---------------------------------------------------------------------------
    async def _read(self, items: Sequence[Item], look: Lookup
                    ) -> tuple[dict[str, list[plans.LiveEntry]], dict[str, list[plans.LiveEntry]]]:
        """Drafts and booked entries by invoice number; failed groups noted in ``look``."""
        by_customer: dict[int, list[Item]] = {}
        for i in items:
            by_customer.setdefault(i.entry.customer_number, []).append(i)
        drafts: dict[str, list[plans.LiveEntry]] = {}
        client = self.ctx.client
        for chunk in _groups(by_customer):
            flt = filters.eq("entryTypeNumber", 10) & filters.in_("customerNumber", chunk)
            try:
                rows = [live_draft(d) async for d in client.iter_draft_entries(filter=flt)]
            except errors.EconomicError as err:
                look.failed.update((i.key, err) for c in chunk for i in by_customer[c])
                continue
            for e in rows:
                drafts.setdefault(e.invoice_number, []).append(e)
        booked = await self.read_booked(items, look)
        return drafts, booked

    async def read_booked(self, items: Sequence[Item], look: Lookup
                          ) -> dict[str, list[plans.LiveEntry]]:
        """The booked customer rows of ``items`` by invoice number (any customer): one read
        per group of 200 invoice numbers, each to its last page; failed groups noted in
        ``look``."""
        by_number: dict[int, list[Item]] = {}
        for i in items:
            by_number.setdefault(i.entry.invoice_number, []).append(i)
        booked: dict[str, list[plans.LiveEntry]] = {}
        for chunk in _groups(by_number):
            flt = filters.in_("customerInvoiceNumber", chunk)
            try:
                rows = [live_booked(b)
                        async for b in self.ctx.client.iter_booked_entries(filter=flt)]
            except errors.EconomicError as err:
                look.failed.update((i.key, err) for n in chunk for i in by_number[n])
                continue
            for e in rows:
                booked.setdefault(e.invoice_number, []).append(e)
        return booked

    async def read_vouchers(self, vouchers: Iterable[tuple[str, int]]
                            ) -> tuple[dict[tuple[str, int], list[payloads.BookedEntry]],
                                       dict[tuple[str, int], errors.EconomicError]]:
        """:func:`read_vouchers` with the accounting years read once."""
        wanted = list(vouchers)
        try:
            if wanted and not self._years:
                self._years = await self.ctx.client.accounting_years()
        except errors.EconomicError as err:
            return {}, {v: err for v in wanted}
        return await read_vouchers(self.ctx.client, self._years, wanted)

    async def lookup(self, items: Sequence[Item]) -> Lookup:
        """Look ``items`` up and record what is found (see the module docstring)."""
        look = Lookup()
        if not items:
            return look
        drafts, booked = await self._read(items, look)
        hits: list[Hit] = []
        for i in items:
            if i.key in look.failed:
                continue
            number, cust = str(i.entry.invoice_number), i.entry.customer_number
            mine = [e for e in (*booked.get(number, ()), *drafts.get(number, ()))
                    if e.customer_number == cust]  # booked first: they are what counts
            exact = next((e for e in mine if plans.entry_matches(i.entry, e)), None)
            if exact is None:
                if mine:
                    look.differs[i.key] = mine[0]
                else:
                    look.absent.add(i.key)
                continue
            try:
                year = await self.year_of(exact.date)
            except errors.EconomicError as err:
                look.failed[i.key] = err
                continue
            hits.append((i, exact, year))
        clean = await self.claim(hits)
        look.parked = {i.key for i, _e, _y in hits} - {i.key for i, _e, _y in clean}
        look.found = {i.key for i, _e, _y in clean}
        await self._record(clean)
        return look

    async def _record(self, hits: Iterable[Hit]) -> None:
        tables = self.ctx.log.tables
        out: list[tuple[ev.Event, str, None]] = []
        for i, e, year in hits:
            st = tables.state(KIND, i.key)
            # a booked entry has a number of its own: the voucher says it is the same entry
            moved = (st.voucher_number, st.accounting_year) != (e.voucher_number, year) or \
                (not e.booked and st.entry_number != e.entry_number)
            if moved:
                journal = e.journal_number if e.journal_number is not None \
                    else journal_of(st, self.ctx.options)
                out.append((ev.InvoiceEntryCreated(
                    kind=KIND, key=i.key, journal_number=journal, entry_number=e.entry_number,
                    voucher_number=e.voucher_number, accounting_year=year,
                    found_by_lookup=True),
                    f"entry:{i.key}:{year}:{e.voucher_number}:{e.entry_number}", None))
            if e.booked and not st.booked:
                out.append((ev.InvoiceBooked(kind=KIND, key=i.key, accounting_year=year,
                                             voucher_number=e.voucher_number,
                                             found_by_lookup=True),
                            f"booked:{i.key}:{year}:{e.voucher_number}", None))
        if out:
            await self.ctx.log.append_many(out)

    # --- vouchers ----------------------------------------------------------------------------
    def _owner_index(self) -> dict[tuple[str, int], str]:
        if self._owners is None:
            self._owners = {(st.accounting_year, st.voucher_number): st.key
                            for st in self.ctx.log.tables.states().values()
                            if st.kind == KIND and st.voucher_number is not None}
        return self._owners

    def forget(self, key: str) -> None:
        """``key`` holds no voucher any more (its entry is gone)."""
        owners = self._owner_index()
        for where in [w for w, k in owners.items() if k == key]:
            del owners[where]

    async def claim(self, hits: Sequence[Hit]) -> list[Hit]:
        """The hits whose voucher is their invoice's own; the invoices sharing a voucher (with
        each other, or with an invoice recorded before) are parked, unless already booked."""
        owners = self._owner_index()
        holders: dict[tuple[str, int], set[str]] = {}
        for i, e, year in hits:
            holders.setdefault((year, e.voucher_number), set()).add(i.key)
        for where, keys in holders.items():
            other = owners.get(where)
            if other is not None:
                keys.add(other)
        clean: list[Hit] = []
        for i, e, year in hits:
            where = (year, e.voucher_number)
            if len(holders[where]) == 1:
                clean.append((i, e, year))
                owners[where] = i.key
        for (year, voucher), keys in sorted(holders.items()):
            if len(keys) < 2:
                continue
            for key in sorted(keys):
                if self.ctx.log.tables.state(KIND, key).booked:
                    continue
                others = ", ".join(sorted(keys - {key}))
                await self.ctx.outcomes.park(KIND, key, reason=(
                    f"invoice {key} is on voucher {voucher} ({year}) in e-conomic together "
                    f"with invoice {others}; each invoice needs a voucher of its own, to carry "
                    "its own PDF. Give the draft entries their own voucher numbers in the "
                    "journal in e-conomic (or delete them), then retry the invoices"))
        return clean


async def read_vouchers(client: EconomicClient, years: Sequence[payloads.AccountingYear],
                        vouchers: Iterable[tuple[str, int]]
                        ) -> tuple[dict[tuple[str, int], list[payloads.BookedEntry]],
                                   dict[tuple[str, int], errors.EconomicError]]:
    """Every booked row (customer, revenue, VAT) on the given (accounting year, voucher
    number)s, and the vouchers whose read failed: one read per year and group of 200 voucher
    numbers (``voucherNumber$in:`` within the year's dates, from ``years``), each to its last
    page. Booked rows do not name their year, so a year not in ``years`` is read without the
    dates (a voucher number of another year may then add its rows)."""
    by_year: dict[str, set[int]] = {}
    for year, voucher in vouchers:
        by_year.setdefault(year, set()).add(voucher)
    rows: dict[tuple[str, int], list[payloads.BookedEntry]] = {}
    failed: dict[tuple[str, int], errors.EconomicError] = {}
    spans = {y.year: _span(y) for y in years}
    for year, numbers in sorted(by_year.items()):
        span = spans.get(year)
        for chunk in _groups(numbers):
            flt = filters.in_("voucherNumber", chunk)
            if span is not None:
                flt = flt & filters.gte("date", span[0]) & filters.lte("date", span[1])
            try:
                async for b in client.iter_booked_entries(filter=flt):
                    rows.setdefault((year, b.voucherNumber or 0), []).append(b)
            except errors.EconomicError as err:
                failed.update(((year, v), err) for v in chunk)
    return rows, failed


def _span(year: payloads.AccountingYear) -> tuple[dt.datetime, dt.datetime] | None:
    """The first and the last second of accounting year ``year`` in UTC (None if its dates
    are not dates)."""
    try:
        first = dt.datetime.fromisoformat(year.fromDate[:10]).replace(tzinfo=dt.UTC)
        last = dt.datetime.fromisoformat(year.toDate[:10]).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return first, last + dt.timedelta(days=1, seconds=-1)


def _groups(values: Iterable[int]) -> list[list[int]]:
    """Sorted values in groups of at most 200, as one ``$in:`` takes."""
    ordered = sorted(values)
    return [ordered[n:n + filters.MAX_IN] for n in range(0, len(ordered), filters.MAX_IN)]
