"""Invoice transfer: a finalized Moment invoice becomes a manual customer-invoice draft entry
(type 10), gets its PDF attached to its voucher, and is booked.

Steps, each with its outcome committed to the log before the next starts:
1. transfer (:mod:`daemon.reconcile.transferring`) — many invoices at once through
   ``/draft-entries/bulk``, always after a lookup (:mod:`daemon.reconcile.finding`), each
   invoice matched to its entry by the invoice number read back, each on a voucher of its own.
2. attach — the PDF from the blob store onto the entry's voucher with ``onConflict`` = 1;
   ``DocumentAlreadyAttachedToVoucher`` means done only on the invoice's own voucher (no other
   invoice's entry on it). A PDF the agreement cannot store is a warning (``InvoicePdfSkipped``,
   alerted), not a failure.
3. book — one ``bookdraftentries`` call per batch and journal; then ``Applied`` closes it.

Each invoice uses the journal recorded with it (its entry's, or that of a transfer in doubt):
changing ``journal_number`` affects only invoices not yet sent. A lookup that fails makes only
the invoices that needed it wait. When e-conomic says an invoice's voucher or entry is not
there, the invoice is looked up: booked (a person booked it) or moved, it is recorded so; gone
(a person deleted the draft), it is transferred again, once (``InvoiceEntryGone``); gone a second
time, it is parked with a reason, since a person evidently keeps deleting it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

import anyio

from daemon.core import books, plans
from daemon.core import events as ev
from daemon.core import rows as rw
from daemon.economic import errors, filters
from daemon.economic.client import MAX_BULK
from daemon.reconcile import admitting, entries, vetting
from daemon.reconcile.controls import Controls
from daemon.reconcile.finding import Finder
from daemon.reconcile.hooks import crash_point
from daemon.reconcile.invoice_items import Item, journal_of
from daemon.reconcile.transferring import Transfer, differs

KIND: Final = entries.KIND
MAX_PDF: Final = 9 * 1024 * 1024
_DONE_ATTACH: Final = "DocumentAlreadyAttachedToVoucher"
_NO_VOUCHER: Final = frozenset(("InvalidVoucherNumber", "JournalEntryDoesNotExist"))
_CANNOT_STORE: Final = frozenset(("UnableToAttach", "InvalidFileData",
                                  "CannotAttachToElectronicInvoice"))


class Invoices:
    kind = KIND

    def __init__(self, ctx: Controls) -> None:
        self.ctx = ctx
        self.finder = Finder(ctx)
        self.transfer = Transfer(ctx, self.finder, lambda i: self._step(i) == "transfer")

    # --- the pass ---------------------------------------------------------------------------
    async def reconcile(self, keys: Sequence[str]) -> None:
        ctx = self.ctx
        self.finder.new_pass()
        items = await vetting.vet(
            ctx, await admitting.admit(ctx, entries.SPEC, keys),
            to_transfer=lambda a: not plans.progress_of(a.state).entry_created)
        if not items:
            return
        await self.transfer.run([i for i in items if self._step(i) == "transfer"])
        await self._attach([i for i in items if self._step(i) == "attach"])
        await self._book([i for i in items if self._step(i) == "book"])
        done: list[tuple[ev.Event, str, None]] = []
        for i in items:
            step = self._step(i)
            state = ctx.log.tables.state(KIND, i.key)
            if step == "nothing" and state.applied_hash != i.content:
                applied = ev.Applied(kind=KIND, key=i.key, action="transfer",
                                     content_hash=i.content,
                                     economic_number=i.entry.invoice_number,
                                     warnings=i.warnings)
                done.append((applied, f"applied:{KIND}:{i.key}:{i.content}", None))
            elif step == "report_booked_mismatch":
                await self._mismatch(i)
        if done:
            await ctx.log.append_many(done)

    def _step(self, i: Item) -> str:
        st = self.ctx.log.tables.state(KIND, i.key)
        if st.parked or self.ctx.queue.queued(KIND, i.key):
            return "later"  # parked, or backed off during this pass
        return entries.SPEC.next_step(i.entry, st, self.ctx.options, desired_hash=i.content).name

    async def _mismatch(self, i: Item) -> None:
        st = self.ctx.log.tables.state(KIND, i.key)
        detail = (f"invoice {i.key} changed in Moment after it was booked in e-conomic; booked "
                  "entries are never edited: correct it with a credit note")
        if detail not in st.warnings:
            await self.ctx.log.append(ev.BookedMismatch(kind=KIND, key=i.key, detail=detail,
                                                        fields=("moment",)),
                                      idempotency_key=f"mismatch:{i.key}:{i.content}")

    # --- an entry e-conomic says is not there ---------------------------------------------
    async def _recheck(self, items: Sequence[Item], *, action: str = "",
                       err: errors.EconomicError | None = None) -> None:
        """Look the invoices up after e-conomic said their voucher or entry is not there:
        found (booked, or moved), they are recorded so and come again; found where the log
        says, e-conomic's refusal ``err`` of ``action`` stands (when given); absent, their
        entry is gone; with other content, they are parked; not read, they wait."""
        tables = self.ctx.log.tables
        before = {i.key: _where(tables.state(KIND, i.key)) for i in items}
        look = await self.finder.lookup(items)
        await self.transfer.wait_for_lookup(look.failed)
        for i in items:
            if i.key in look.found:
                if _where(tables.state(KIND, i.key)) != before[i.key]:
                    self.ctx.queue.add(KIND, i.key)  # booked or moved: the next step, next pass
                elif err is not None:
                    await self.ctx.outcomes.refused(KIND, i.key, action, err)
            elif i.key in look.differs:
                await self.ctx.outcomes.park(KIND, i.key,
                                             reason=differs(i.key, look.differs[i.key], i))
            elif i.key in look.absent:
                await self._gone(i)

    async def _gone(self, i: Item) -> None:
        ctx = self.ctx
        st = ctx.log.tables.state(KIND, i.key)
        detail = (f"the draft entry {st.entry_number} (voucher {st.voucher_number}) of invoice "
                  f"{i.key} in journal {journal_of(st, ctx.options)} is no longer in e-conomic, "
                  "and no entry of the invoice is booked")
        await ctx.log.append(ev.InvoiceEntryGone(
            kind=KIND, key=i.key, journal_number=st.journal_number,
            entry_number=st.entry_number, voucher_number=st.voucher_number, detail=detail),
            idempotency_key=f"gone:{i.key}:{uuid.uuid4().hex}")
        self.finder.forget(i.key)
        if st.entries_lost:
            await ctx.outcomes.park(KIND, i.key, reason=(
                f"{detail}: it was deleted there again after the daemon created it anew once, "
                "so it is not created again. If the invoice belongs in e-conomic, retry it; "
                "otherwise leave it parked"))
        else:
            ctx.queue.add(KIND, i.key)  # transferred again, after a lookup, next pass

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
                content=pdf, filename=pdf_name(i, ctx.options.language), on_conflict=1,
                idempotency_key=ikey)
        except errors.EconomicError as err:
            if err.code == _DONE_ATTACH:
                # done, if the voucher is the invoice's own (an earlier attempt's outcome)
                if not await self._own_voucher(i):
                    return
            elif err.code in _CANNOT_STORE or isinstance(err, errors.Forbidden):
                await self._skipped(i, f"e-conomic cannot store it ({err.code or err.status}: "
                                       f"{err.message})")
                return
            elif err.code in _NO_VOUCHER or isinstance(err, errors.NotFound):
                await self._recheck([i], action="attach", err=err)  # deleted, moved, booked?
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

    async def _own_voucher(self, i: Item) -> bool:
        """Whether the invoice's voucher carries no other invoice's entry (in the log, or in
        e-conomic's drafts and booked entries of its year); if it does, the invoice is parked:
        the document there may be the other invoice's PDF."""
        ctx = self.ctx
        st = ctx.log.tables.state(KIND, i.key)
        year, voucher = st.accounting_year, st.voucher_number
        others = {s.key for s in ctx.log.tables.states().values()
                  if s.kind == KIND and s.key != i.key and s.voucher_number == voucher
                  and s.accounting_year == year}
        flt = filters.eq("voucherNumber", voucher or 0)
        try:
            lines = [(d.customerInvoiceNumber or "", d.date)
                     async for d in ctx.client.iter_draft_entries(filter=flt)]
            lines += [(str(b.customerInvoiceNumber or ""), b.date or "")
                      async for b in ctx.client.iter_booked_entries(filter=flt)]
            for number, day in lines:
                if number.strip() not in ("", str(i.entry.invoice_number)) and \
                        await self.finder.year_of(day) == year:
                    others.add(number.strip())
        except errors.EconomicError as err:
            await ctx.outcomes.refused(KIND, i.key, "read", err)
            return False
        if not others:
            return True
        await ctx.outcomes.park(KIND, i.key, reason=(
            f"invoice {i.key}'s voucher {voucher} ({year}) already carries a document, and "
            f"the voucher also holds invoice {', '.join(sorted(others))}: the document may be "
            "that invoice's PDF, so this one's is not taken as attached. Give the invoices "
            "their own voucher numbers in e-conomic, then retry this invoice"))
        return False

    async def _skipped(self, i: Item, reason: str) -> None:
        await self.ctx.log.append(ev.InvoicePdfSkipped(kind=KIND, key=i.key, reason=reason),
                                  idempotency_key=f"pdf-skipped:{i.key}:{i.hash}")
        self.ctx.observer.pdf_skipped(i.key, reason)

    # --- 3. book ----------------------------------------------------------------------------
    async def _book(self, items: list[Item]) -> None:
        if not items:
            return
        # an open intent's outcome is unknown; an invoice in doubt after a restore may have
        # been booked in the tail the log lost: both are looked up before booking
        unknown = [i for i in items if self.ctx.outcomes.open_intent(KIND, i.key, "book")
                   or self.ctx.log.tables.state(KIND, i.key).in_doubt]
        look = await self.finder.lookup(unknown)
        await self.transfer.wait_for_lookup(look.failed)
        by_journal: dict[int, list[Item]] = {}
        for i in items:
            if self._step(i) == "book":
                st = self.ctx.log.tables.state(KIND, i.key)
                by_journal.setdefault(journal_of(st, self.ctx.options), []).append(i)
        for journal, fresh in sorted(by_journal.items()):
            for start in range(0, len(fresh), MAX_BULK):
                await self._book_batch(journal, fresh[start:start + MAX_BULK])

    async def _book_batch(self, journal: int, batch: list[Item]) -> None:
        ctx = self.ctx
        if not batch or ctx.stopping:
            return
        ikey = await self._intents(batch, "book")
        crash_point("invoice.after_book_intent")
        states = [ctx.log.tables.state(KIND, i.key) for i in batch]
        try:
            await ctx.client.book_draft_entries(
                journal, [s.entry_number or 0 for s in states], idempotency_key=ikey)
        except (errors.ValidationError, errors.NotFound) as err:
            # some entry is not (or no longer) a draft there: see what is booked, moved or
            # gone, then book the rest in halves
            await self._recheck(batch)
            left = [i for i in batch if self._step(i) == "book"]
            moved = [i for i, s in zip(batch, states, strict=True)
                     if ctx.log.tables.state(KIND, i.key).entry_number != s.entry_number]
            if len(left) == 1 and len(batch) == 1 and not moved:
                await ctx.outcomes.refused(KIND, left[0].key, "book", err)
            elif left:
                half = max(1, len(left) // 2)
                await self._book_batch(journal, left[:half])
                await self._book_batch(journal, left[half:])
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

    async def _intents(self, batch: Sequence[Item], action: str) -> str:
        """One fresh idempotency key for a batch call, committed as each item's intent."""
        first = batch[0]
        ikey = f"{KIND}:{first.key}:{action}:{first.hash}:{uuid.uuid4().hex[:12]}"
        await self.ctx.log.append_many([
            (ev.WriteIntended(kind=KIND, key=i.key, action=action, idempotency_key=ikey,
                              content_hash=i.hash), f"intent:{ikey}:{i.key}", None)
            for i in batch])
        return ikey


def _where(st: rw.EntityState) -> tuple[int | None, int | None, str, bool]:
    return (st.entry_number, st.voucher_number, st.accounting_year, st.booked)


def pdf_name(i: Item, language: str) -> str:
    """``Faktura-17.pdf`` / ``Kreditnota-18.pdf`` (``Invoice``/``Credit-note`` in English): no
    spaces, which a multipart file name would carry percent-encoded."""
    words = books.words(language, is_credit_note=i.entry.amount < 0).replace(" ", "-")
    return f"{words}-{i.entry.invoice_number}.pdf"
