"""Invoice transfer: a finalized Moment invoice becomes a manual customer-invoice draft entry
(type 10) in the configured journal, gets its PDF attached to its voucher, and is booked.

Steps, each with its outcome committed to the log before the next starts:
1. transfer — many invoices at once through ``/draft-entries/bulk`` (at most 500 a call, one
   voucher per invoice): the intents of the whole batch commit first (one idempotency key for
   the call), then the call, then one read-back of the batch's voucher numbers, then
   ``InvoiceEntryCreated`` for each. The bulk call is all-or-nothing, so an invoice e-conomic
   refuses is split out and parked and the rest of its batch is sent again, never blocked.
2. attach — the PDF from the blob store onto the entry's voucher with ``onConflict`` = 1;
   ``DocumentAlreadyAttachedToVoucher`` on the invoice's own voucher means done. A PDF the
   agreement cannot store is a warning (``InvoicePdfSkipped``, alerted), not a failure.
3. book — one ``bookdraftentries`` call per batch; then ``Applied`` closes the transfer.

Whenever an earlier attempt's outcome is unknown (an open intent with no outcome: timeout,
dropped answer, crash), the invoice is looked up before anything is written again: draft
entries of type 10 in the journal for its customer, and booked entries by
``customerInvoiceNumber``, compared on invoice number, amount and date. So a crash at any
instant ends, after a restart, with each invoice in e-conomic exactly once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

import anyio

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.economic import errors, filters, payloads
from daemon.economic.client import MAX_BULK
from daemon.reconcile import admitting, entries
from daemon.reconcile.controls import Controls
from daemon.reconcile.hooks import crash_point

KIND = entries.KIND
MAX_PDF: Final = 9 * 1024 * 1024
_INDEX = re.compile(r"entries\[(\d+)\]")
_DONE_ATTACH: Final = "DocumentAlreadyAttachedToVoucher"
_CANNOT_STORE: Final = frozenset(("UnableToAttach", "InvalidFileData",
                                  "CannotAttachToElectronicInvoice"))


class Item:
    """One invoice in a pass: its key, mapped entry and warnings."""

    __slots__ = ("entry", "hash", "key", "warnings")

    def __init__(self, key: str, entry: mp.InvoiceEntry, warnings: tuple[str, ...]) -> None:
        self.key = key
        self.entry = entry
        self.warnings = warnings
        self.hash = mp.fields_hash(entry)


def draft_write(e: mp.InvoiceEntry) -> payloads.DraftEntryWrite:
    return payloads.DraftEntryWrite(
        entryTypeNumber=10, journalNumber=e.journal_number, date=f"{e.date}T00:00:00Z",
        amount=e.amount, currency=e.currency, contraAccountNumber=e.contra_account,
        contraVatCode=e.contra_vat_code or None, text=e.text, projectNumber=e.project_number,
        customerNumber=e.customer_number, customerInvoiceNumber=str(e.invoice_number),
        dueDate=f"{e.due_date}T00:00:00Z" if e.due_date else None)


def _amount(value: Decimal) -> Decimal:
    return mp.cents(value)


def live_draft(d: payloads.DraftEntry) -> plans.LiveEntry:
    return plans.LiveEntry(entry_number=d.entryNumber, voucher_number=d.voucherNumber or 0,
                           invoice_number=d.customerInvoiceNumber or "",
                           customer_number=d.customerNumber, amount=_amount(d.amount),
                           date=d.date[:10])


def live_booked(b: payloads.BookedEntry) -> plans.LiveEntry:
    return plans.LiveEntry(entry_number=b.entryNumber, voucher_number=b.voucherNumber or 0,
                           invoice_number=str(b.customerInvoiceNumber or ""),
                           customer_number=b.customerNumber, amount=_amount(b.amount),
                           date=(b.date or "")[:10], booked=True)


class Invoices:
    kind = KIND

    def __init__(self, ctx: Controls) -> None:
        self.ctx = ctx
        self._years: list[payloads.AccountingYear] = []

    # --- the pass ---------------------------------------------------------------------------
    async def reconcile(self, keys: Sequence[str]) -> None:
        ctx = self.ctx
        items = [Item(a.key, a.desired, a.mapped.warnings)
                 for a in await admitting.admit(ctx, entries.SPEC, keys) if a.desired is not None]
        if not items:
            return
        try:
            await self._transfer([i for i in items if self._step(i) == "transfer"])
            await self._attach([i for i in items if self._step(i) == "attach"])
            await self._book([i for i in items if self._step(i) == "book"])
        except errors.EconomicError as err:  # a lookup failed: the pass's items back off
            await ctx.outcomes.refused_many(
                KIND, [i.key for i in items if self._step(i) != "later"], "read", err)
            return
        done: list[tuple[ev.Event, str, None]] = []
        for i in items:
            step = self._step(i)
            state = ctx.log.tables.state(KIND, i.key)
            if step == "nothing" and state.applied_hash != i.hash:
                applied = ev.Applied(kind=KIND, key=i.key, action="transfer", content_hash=i.hash,
                                     economic_number=i.entry.invoice_number,
                                     warnings=i.warnings)
                done.append((applied, f"applied:{KIND}:{i.key}:{i.hash}", None))
            elif step == "report_booked_mismatch":
                await self._mismatch(i)
        if done:
            await ctx.log.append_many(done)

    def _step(self, i: Item) -> str:
        st = self.ctx.log.tables.state(KIND, i.key)
        if st.parked or self.ctx.queue.queued(KIND, i.key):
            return "later"  # parked, or backed off during this pass
        return entries.SPEC.next_step(i.entry, st, self.ctx.options, desired_hash=i.hash).name

    async def _mismatch(self, i: Item) -> None:
        st = self.ctx.log.tables.state(KIND, i.key)
        detail = (f"invoice {i.key} changed in Moment after it was booked in e-conomic; booked "
                  "entries are never edited: correct it with a credit note")
        if detail not in st.warnings:
            await self.ctx.log.append(ev.BookedMismatch(kind=KIND, key=i.key, detail=detail),
                                      idempotency_key=f"mismatch:{i.key}:{i.hash}")

    # --- accounting years -------------------------------------------------------------------
    async def year_of(self, day: str) -> str:
        for attempt in range(2):
            if attempt or not self._years:
                self._years = await self.ctx.client.accounting_years()
            for y in self._years:
                if y.fromDate <= day[:10] <= y.toDate:
                    return y.year
        return day[:4]

    # --- lookups ----------------------------------------------------------------------------
    async def lookup(self, items: Sequence[Item]) -> int:
        """Find invoices already in e-conomic and record them; returns how many were found."""
        if not items:
            return 0
        j = self.ctx.options.journal_number
        drafts: list[plans.LiveEntry] = []
        for chunk in filters.chunks(sorted({i.entry.customer_number for i in items})):
            flt = (filters.eq("entryTypeNumber", 10) & filters.eq("journalNumber", j)
                   & filters.in_("customerNumber", chunk))
            drafts += [live_draft(d) async for d in self.ctx.client.iter_draft_entries(filter=flt)]
        booked: list[plans.LiveEntry] = []
        for chunk in filters.chunks(sorted({i.entry.invoice_number for i in items})):
            flt = filters.in_("customerInvoiceNumber", chunk)
            booked += [live_booked(b) async for b in
                       self.ctx.client.iter_booked_entries(filter=flt)]
        out: list[tuple[ev.Event, str, None]] = []
        found = 0
        for i in items:
            st = self.ctx.log.tables.state(KIND, i.key)
            b = next((e for e in booked if e.customer_number == i.entry.customer_number
                      and plans.entry_matches(i.entry, e)), None)
            d = next((e for e in drafts if e.customer_number == i.entry.customer_number
                      and plans.entry_matches(i.entry, e)), None)
            hit = b or d
            if hit is None:
                continue
            found += 1
            year = await self.year_of(hit.date)
            if st.voucher_number is None:
                out.append((ev.InvoiceEntryCreated(
                    kind=KIND, key=i.key, journal_number=j, entry_number=hit.entry_number,
                    voucher_number=hit.voucher_number, accounting_year=year,
                    found_by_lookup=True), f"entry:{i.key}:{year}:{hit.voucher_number}", None))
            if b is not None and not st.booked:
                out.append((ev.InvoiceBooked(kind=KIND, key=i.key, accounting_year=year,
                                             voucher_number=b.voucher_number,
                                             found_by_lookup=True),
                            f"booked:{i.key}:{year}:{b.voucher_number}", None))
        if out:
            await self.ctx.log.append_many(out)
        return found

    # --- 1. transfer ------------------------------------------------------------------------
    async def _transfer(self, items: list[Item]) -> None:
        if not items:
            return
        unknown = [i for i in items if self.ctx.outcomes.open_intent(KIND, i.key, "transfer")]
        await self.lookup(unknown)
        fresh = [i for i in items if self._step(i) == "transfer"]
        for start in range(0, len(fresh), MAX_BULK):
            await self._send_batch(fresh[start:start + MAX_BULK])

    async def _send_batch(self, batch: list[Item]) -> None:
        ctx = self.ctx
        if not batch or ctx.stopping:
            return
        # one key for the call, recorded with each invoice's intent (one transaction) before
        # it is sent
        ikey = await self._intents(batch, "transfer")
        crash_point("invoice.after_intent")
        try:
            numbers = await ctx.client.create_draft_entries(
                [draft_write(i.entry) for i in batch], idempotency_key=ikey)
        except errors.ValidationError as err:
            await self._split(batch, err)
            return
        except errors.EconomicError as err:
            await ctx.outcomes.refused_many(KIND, [i.key for i in batch], "transfer", err)
            return
        crash_point("invoice.after_send")
        j = ctx.options.journal_number
        try:
            flt = (filters.eq("journalNumber", j) & filters.gte("entryNumber", min(numbers))
                   & filters.lte("entryNumber", max(numbers)))
            vouchers = {d.entryNumber: d async for d in ctx.client.iter_draft_entries(filter=flt)}
            years = [await self.year_of(i.entry.date) for i in batch]
        except errors.EconomicError as err:  # created, numbers unknown: looked up next time
            await ctx.outcomes.refused_many(KIND, [i.key for i in batch], "transfer", err,
                                            retry=True)
            return
        out: list[tuple[ev.Event, str, None]] = []
        for i, n, year in zip(batch, numbers, years, strict=True):
            d = vouchers.get(n)
            if d is None or d.voucherNumber is None:
                continue  # gone already (someone deleted it): the next pass looks it up
            out.append((ev.InvoiceEntryCreated(kind=KIND, key=i.key, journal_number=j,
                                               entry_number=n, voucher_number=d.voucherNumber,
                                               accounting_year=year),
                        f"entry:{i.key}:{year}:{d.voucherNumber}", None))
        await ctx.log.append_many(out)
        crash_point("invoice.after_entry")

    async def _intents(self, batch: Sequence[Item], action: str) -> str:
        """One fresh idempotency key for a batch call, committed as each item's intent."""
        first = batch[0]
        ikey = f"{KIND}:{first.key}:{action}:{first.hash}:{uuid.uuid4().hex[:12]}"
        await self.ctx.log.append_many([
            (ev.WriteIntended(kind=KIND, key=i.key, action=action, idempotency_key=ikey,
                              content_hash=i.hash), f"intent:{ikey}:{i.key}", None)
            for i in batch])
        return ikey

    async def _split(self, batch: list[Item], err: errors.ValidationError) -> None:
        """All-or-nothing refusal: park the invoices e-conomic named, send the rest again."""
        bad = {int(m.group(1)) for k in err.fields for m in [_INDEX.search(k)] if m}
        bad = {b for b in bad if b < len(batch)}
        if not bad and len(batch) == 1:
            bad = {0}
        if bad:
            for idx in sorted(bad):
                await self.ctx.outcomes.refused(KIND, batch[idx].key, "transfer",
                                                _only(err, idx))
            await self._send_batch([i for n, i in enumerate(batch) if n not in bad])
            return
        half = len(batch) // 2  # e-conomic did not say which: find it by halves
        await self._send_batch(batch[:half])
        await self._send_batch(batch[half:])

    # --- 2. attach --------------------------------------------------------------------------
    async def _attach(self, items: list[Item]) -> None:
        limiter = anyio.Semaphore(self.ctx.max_in_flight)

        async def one(i: Item) -> None:
            async with limiter:
                if not self.ctx.stopping:
                    await self.attach(i)

        async with anyio.create_task_group() as tg:
            for i in items:
                tg.start_soon(one, i)

    async def attach(self, i: Item) -> None:
        ctx = self.ctx
        st = ctx.log.tables.state(KIND, i.key)
        assert st.voucher_number is not None
        pdf = await ctx.log.get_blob(i.entry.pdf_sha256) if i.entry.pdf_sha256 else None
        reason = ("Moment had no PDF for this invoice" if not i.entry.pdf_sha256 else
                  "the PDF is missing from the local store" if pdf is None else
                  "the PDF is larger than the 9 MiB e-conomic accepts"
                  if len(pdf) > MAX_PDF else "")
        if pdf is None or reason:
            await self._skipped(i, reason)
            return
        ikey = await ctx.outcomes.intent(KIND, i.key, "attach",
                                         f"{st.accounting_year}-{st.voucher_number}")
        number: int | None = None
        try:
            number = await ctx.client.attach_document(
                accounting_year=st.accounting_year, voucher_number=st.voucher_number,
                content=pdf, filename=f"invoice-{i.entry.invoice_number}.pdf", on_conflict=1,
                idempotency_key=ikey)
        except errors.EconomicError as err:
            if err.code == _DONE_ATTACH:
                pass  # our own voucher already carries it (an earlier attempt's outcome)
            elif err.code in _CANNOT_STORE or isinstance(err, errors.Forbidden):
                await self._skipped(i, f"e-conomic cannot store it ({err.code or err.status}: "
                                       f"{err.message})")
                return
            else:
                await ctx.outcomes.refused(KIND, i.key, "attach", err)
                return
        crash_point("invoice.after_attach_send")
        await ctx.log.append(ev.InvoicePdfAttached(kind=KIND, key=i.key,
                                                   accounting_year=st.accounting_year,
                                                   voucher_number=st.voucher_number,
                                                   document_number=number),
                             idempotency_key=f"attached:{i.key}:{ikey}")
        crash_point("invoice.after_attach")

    async def _skipped(self, i: Item, reason: str) -> None:
        await self.ctx.log.append(ev.InvoicePdfSkipped(kind=KIND, key=i.key, reason=reason),
                                  idempotency_key=f"pdf-skipped:{i.key}:{i.hash}")
        self.ctx.observer.pdf_skipped(i.key, reason)

    # --- 3. book ----------------------------------------------------------------------------
    async def _book(self, items: list[Item]) -> None:
        if not items:
            return
        unknown = [i for i in items if self.ctx.outcomes.open_intent(KIND, i.key, "book")]
        await self.lookup(unknown)
        fresh = [i for i in items if self._step(i) == "book"]
        for start in range(0, len(fresh), MAX_BULK):
            await self._book_batch(fresh[start:start + MAX_BULK])

    async def _book_batch(self, batch: list[Item]) -> None:
        ctx = self.ctx
        if not batch or ctx.stopping:
            return
        ikey = await self._intents(batch, "book")
        crash_point("invoice.after_book_intent")
        states = [ctx.log.tables.state(KIND, i.key) for i in batch]
        try:
            await ctx.client.book_draft_entries(
                ctx.options.journal_number, [s.entry_number or 0 for s in states],
                idempotency_key=ikey)
        except errors.ValidationError as err:
            # some entry is not (or no longer) a draft: see what is booked, then split
            await self.lookup(batch)
            left = [i for i in batch if self._step(i) == "book"]
            if len(left) == 1 and len(batch) == 1:
                await ctx.outcomes.refused(KIND, left[0].key, "book", err)
            elif left:
                half = max(1, len(left) // 2)
                await self._book_batch(left[:half])
                await self._book_batch(left[half:])
            return
        except errors.EconomicError as err:
            await ctx.outcomes.refused_many(KIND, [i.key for i in batch], "book", err)
            return
        crash_point("invoice.after_book_send")
        await ctx.log.append_many([
            (ev.InvoiceBooked(kind=KIND, key=i.key, accounting_year=s.accounting_year,
                              voucher_number=s.voucher_number or 0),
             f"booked:{i.key}:{s.accounting_year}:{s.voucher_number}", None)
            for i, s in zip(batch, states, strict=True)])
        crash_point("invoice.after_book")


def _only(err: errors.ValidationError, idx: int) -> errors.ValidationError:
    """The part of a bulk refusal about entry ``idx``."""
    mine = {k: v for k, v in err.fields.items() if f"entries[{idx}]" in k}
    code = err.code
    return errors.ValidationError(err.message, fields=mine or err.fields, method=err.method,
                                  path=err.path, status=err.status, code=code, body=err.body)
