"""Creating invoices' draft entries: many at once through ``/draft-entries/bulk``.

Creating is always preceded by the lookup (:mod:`daemon.reconcile.finding`), whatever the log
says, so a log that lost its tail cannot double-book. Then, per batch of at most 500:
1. the intents of the whole batch commit first, one idempotency key for the call, recorded with
   each invoice's intent together with the journal it goes to. A batch whose outcome is unknown
   (a timeout, a dropped answer, a crash) and whose invoices are all still to send, unchanged,
   is sent again as it was, under the key read back from the log: e-conomic replays the call
   instead of applying it twice, even when the lookup did not see the entries yet;
2. the call; an answer that cannot be read is an unknown outcome, looked up at once;
3. the entries are read back by the numbers e-conomic gave and matched to the invoices by the
   ``customerInvoiceNumber`` read back, never by position; an invoice whose voucher is another
   invoice's too is parked (:meth:`Finder.claim`); the rest get ``InvoiceEntryCreated``.
Once an answer is known its key is never used again: a later send is a new intent.

The bulk call is all-or-nothing: an invoice e-conomic refuses is split out and parked and the
rest of its batch is sent again (a new batch, so a new key), never blocked.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence

from daemon.core import events as ev
from daemon.core import plans
from daemon.economic import errors, filters, payloads
from daemon.economic.client import MAX_BULK
from daemon.reconcile import invoice_items as items_
from daemon.reconcile.controls import Controls
from daemon.reconcile.finding import Finder, Hit
from daemon.reconcile.hooks import crash_point
from daemon.reconcile.invoice_items import KIND, Item

_INDEX = re.compile(r"entries\[(\d+)\]")


class Transfer:
    """``still(item)``: whether the item is still to be transferred (not recorded, parked or
    backed off since)."""

    def __init__(self, ctx: Controls, finder: Finder, still: Callable[[Item], bool]) -> None:
        self.ctx = ctx
        self.finder = finder
        self.still = still

    async def run(self, items: Sequence[Item]) -> None:
        if not items:
            return
        look = await self.finder.lookup(items)
        await self.wait_for_lookup(look.failed)
        for key, entry in look.differs.items():
            await self.ctx.outcomes.park(KIND, key, reason=differs(key, entry, next(
                i for i in items if i.key == key)))
        for batch, ikey in self.batches([i for i in items if self.still(i)]):
            await self.send(batch, ikey)

    async def wait_for_lookup(self, failed: dict[str, errors.EconomicError]) -> None:
        """Only the invoices whose lookup failed wait (back off, or park when refused)."""
        if not failed:
            return
        draw = self.ctx.outcomes.rng.random()
        for key, err in failed.items():
            await self.ctx.outcomes.refused(KIND, key, "read", err, draw=draw)

    def batches(self, items: Sequence[Item]) -> list[tuple[list[Item], str | None]]:
        """Batches to send, each with the key to reuse (None: a new intent). A batch is resent
        under its key only when its outcome is unknown and it is the same batch: the same
        invoices, each unchanged."""
        by_key: dict[str, list[Item]] = {}
        fresh: list[Item] = []
        for i in items:
            open_key = self.ctx.outcomes.open_intent(KIND, i.key, "transfer")
            if open_key:
                by_key.setdefault(open_key, []).append(i)
            else:
                fresh.append(i)
        out: list[tuple[list[Item], str | None]] = []
        for open_key, group in by_key.items():
            if items_.batch_key_digest(open_key) == items_.batch_digest(group):
                out.append((items_.ordered(group), open_key))
            else:
                fresh += group
        fresh = items_.ordered(fresh)
        out += [(fresh[n:n + MAX_BULK], None) for n in range(0, len(fresh), MAX_BULK)]
        return out

    async def _intents(self, batch: Sequence[Item]) -> str:
        """One fresh key for a batch call, committed as each item's intent, with its journal."""
        ikey = (f"{KIND}:{batch[0].key}:transfer:{items_.batch_digest(batch)}:"
                f"{uuid.uuid4().hex[:12]}")
        await self.ctx.log.append_many([
            (ev.WriteIntended(kind=KIND, key=i.key, action="transfer", idempotency_key=ikey,
                              content_hash=i.hash, journal_number=i.entry.journal_number),
             f"intent:{ikey}:{i.key}", None) for i in batch])
        return ikey

    async def retire(self, batch: Sequence[Item]) -> None:
        """The call's answer is known but these were not recorded: their key is spent, and a
        later send is a new intent (to none of the journals yet)."""
        if batch:
            await self.ctx.log.append_many([
                (ev.WriteIntended(kind=KIND, key=i.key, action="transfer",
                                  idempotency_key=f"{KIND}:{i.key}:transfer:spent:"
                                                  f"{uuid.uuid4().hex[:12]}",
                                  content_hash=i.hash),
                 f"intent:retired:{i.key}:{uuid.uuid4().hex}", None) for i in batch])

    async def send(self, batch: list[Item], ikey: str | None = None) -> None:
        ctx = self.ctx
        if not batch or ctx.stopping:
            return
        batch = items_.ordered(batch)
        if ikey is None:
            ikey = await self._intents(batch)
        crash_point("invoice.after_intent")
        try:
            numbers = await ctx.client.create_draft_entries(
                [items_.draft_write(i.entry) for i in batch], idempotency_key=ikey)
        except errors.ValidationError as err:
            await self._split(batch, err)
            return
        except errors.UnknownOutcome as err:  # applied; what it created is unknown
            look = await self.finder.lookup(batch)
            await self.wait_for_lookup(look.failed)
            await ctx.outcomes.refused_many(KIND, [i.key for i in batch if self.still(i)
                                          and i.key not in look.failed], "transfer", err)
            return
        except errors.EconomicError as err:
            await ctx.outcomes.refused_many(KIND, [i.key for i in batch], "transfer", err)
            return
        crash_point("invoice.after_send")
        await self._read_back(batch, numbers)
        crash_point("invoice.after_entry")

    async def _read_back(self, batch: list[Item], numbers: Sequence[int]) -> None:
        """Match the created entries to the invoices by the invoice number read back."""
        ctx = self.ctx
        created: list[payloads.DraftEntry] = []
        wanted = set(numbers)
        try:
            if wanted:  # one range read (entries made meanwhile by others are left out)
                flt = filters.gte("entryNumber", min(wanted)) & \
                    filters.lte("entryNumber", max(wanted))
                created = [d async for d in ctx.client.iter_draft_entries(filter=flt)
                           if d.entryNumber in wanted]
            by_number: dict[tuple[str, int | None], list[plans.LiveEntry]] = {}
            for d in created:
                e = items_.live_draft(d)
                by_number.setdefault((e.invoice_number, e.customer_number), []).append(e)
            hits: list[Hit] = []
            for i in batch:
                mine = by_number.get((str(i.entry.invoice_number), i.entry.customer_number), [])
                hit = next((x for x in mine if plans.entry_matches(i.entry, x)), None)
                if hit is not None and hit.voucher_number:
                    hits.append((i, hit, await self.finder.year_of(hit.date)))
        except errors.EconomicError as err:  # created, numbers unknown: looked up next pass
            await ctx.outcomes.refused_many(KIND, [i.key for i in batch], "transfer", err,
                                            retry=True)
            return
        clean = await self.finder.claim(hits)
        recorded = {i.key for i, _e, _y in clean}
        await ctx.log.append_many([
            (ev.InvoiceEntryCreated(kind=KIND, key=i.key, journal_number=e.journal_number
                                    if e.journal_number is not None else i.entry.journal_number,
                                    entry_number=e.entry_number,
                                    voucher_number=e.voucher_number, accounting_year=year,
                                    vat_code=i.entry.contra_vat_code),
             f"entry:{i.key}:{year}:{e.voucher_number}:{e.entry_number}", None)
            for i, e, year in clean])
        # not found (deleted at once, say) or parked: the next pass looks them up afresh
        await self.retire([i for i in batch if i.key not in recorded])

    async def _split(self, batch: list[Item], err: errors.ValidationError) -> None:
        """All-or-nothing refusal: park the invoices e-conomic named, send the rest again."""
        bad = {int(m.group(1)) for k in err.fields for m in [_INDEX.search(k)] if m}
        bad = {b for b in bad if b < len(batch)}
        if not bad and len(batch) == 1:
            bad = {0}
        if bad:
            for idx in sorted(bad):
                await self.ctx.outcomes.refused(KIND, batch[idx].key, "transfer", _only(err, idx))
            await self.send([i for n, i in enumerate(batch) if n not in bad])
            return
        half = len(batch) // 2  # e-conomic did not say which: find it by halves
        await self.send(batch[:half])
        await self.send(batch[half:])


def differs(key: str, e: plans.LiveEntry, i: Item) -> str:
    """The reason for parking an invoice whose number e-conomic has with other content."""
    what = "booked entry" if e.booked else "draft entry"
    return (f"invoice {key}: e-conomic already has invoice number {e.invoice_number} for "
            f"customer {e.customer_number} ({what} {e.entry_number}, voucher "
            f"{e.voucher_number}) with amount {e.amount} dated {e.date}, but Moment's invoice "
            f"has amount {i.entry.amount} dated {i.entry.date}; the daemon does not create a "
            "second one. Correct or delete the entry in e-conomic, then retry the invoice")


def _only(err: errors.ValidationError, idx: int) -> errors.ValidationError:
    """The part of a bulk refusal about entry ``idx``."""
    mine = {k: v for k, v in err.fields.items() if f"entries[{idx}]" in k}
    return errors.ValidationError(err.message, fields=mine or err.fields, method=err.method,
                                  path=err.path, status=err.status, code=err.code,
                                  body=err.body)
