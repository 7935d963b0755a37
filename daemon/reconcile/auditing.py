"""Comparing booked invoices with e-conomic's booked entries, on every full reconcile.

Each invoice the log records as booked (and whose Moment invoice did not change since: that is
reported by the transfer) is read back from e-conomic's booked entries by its invoice number,
through the lookup's reader (:meth:`daemon.reconcile.finding.Finder.read_booked`: one read per
200 invoice numbers, each to its last page, so N booked invoices cost about ceil(N/200) reads).
The customer row on the invoice's voucher is compared with what the daemon sends for the
invoice: ``amount``, ``customer`` and ``date`` (the date part). No row there is ``missing``. The
VAT code is on the voucher's revenue row, which the lookup does not read: it would cost a read
per voucher group more, so VAT is not compared here (it was checked before sending).

A difference is recorded once as ``BookedMismatch`` (an unchanged difference is not recorded
again), shown in ``/status`` under ``reconcile.booked_mismatches`` and alerted. A group whose
read fails is compared on the next full reconcile.

Never writes to e-conomic, and never edits a booked entry: corrections are new entries, made
by a person.
"""

from __future__ import annotations

import hashlib

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.core import projections as pj
from daemon.reconcile import entries
from daemon.reconcile.controls import Controls
from daemon.reconcile.finding import Finder, Lookup
from daemon.reconcile.invoice_items import KIND, Item

_NEVER_EDITED = ("The daemon never edits booked entries: if e-conomic's entry is wrong, "
                 "correct it there with a new entry (or a credit note)")


async def audit_booked(ctx: Controls) -> int:
    """Compare every booked, unchanged invoice with its booked entry; returns how many
    differences were recorded now."""
    tables, options = ctx.log.tables, ctx.options
    items: list[Item] = []
    for a in entries.SPEC.items(tables, options):
        st = a.state
        if a.desired is None or not st.booked or st.parked or st.voucher_number is None:
            continue
        if entries.SPEC.next_step(a.desired, st, options, desired_hash=a.content).name \
                != "nothing":
            continue  # still in progress, or changed in Moment (reported by the transfer)
        items.append(Item(a.key, a.desired, (), content=a.content))
    if not items:
        return 0
    look = Lookup()
    booked = await Finder(ctx).read_booked(items, look)
    out: list[tuple[ev.Event, str, None]] = []
    for i in items:
        if i.key in look.failed:
            continue
        st = tables.state(KIND, i.key)
        fields, note = compare(i.entry, st, booked.get(str(i.entry.invoice_number), ()))
        if not fields or note == st.mismatch:
            continue  # matches, or the same difference is already recorded
        digest = hashlib.sha256(f"{st.mismatch}|{note}".encode()).hexdigest()[:16]
        out.append((ev.BookedMismatch(kind=KIND, key=i.key, detail=note, fields=fields),
                    f"booked-mismatch:{i.key}:{digest}", None))
    if out:
        await ctx.log.append_many(out)
        for e, _k, _n in out:
            assert isinstance(e, ev.BookedMismatch)
            ctx.observer.booked_mismatch(e.key, list(e.fields), e.detail)
    return len(out)


def compare(sent: mp.InvoiceEntry, st: pj.EntityState, rows: tuple[plans.LiveEntry, ...]
            | list[plans.LiveEntry]) -> tuple[tuple[str, ...], str]:
    """The fields of booked invoice ``sent`` that e-conomic's customer row on its voucher
    holds otherwise, and the sentence saying so (``()``, ``""`` when they agree)."""
    n = sent.invoice_number
    where = f"voucher {st.voucher_number} ({st.accounting_year})"
    mine = [r for r in rows if r.voucher_number == st.voucher_number]
    if not mine:
        return ("missing",), (
            f"Invoice {n} was booked in e-conomic on {where}, but e-conomic's booked entries "
            f"hold no customer entry for invoice {n} on that voucher. {_NEVER_EDITED}; if "
            "the invoice is missing from the books, book it there anew.")
    row = next((r for r in mine if r.customer_number == sent.customer_number), mine[0])
    diffs: list[tuple[str, str, str]] = []
    if row.amount != sent.amount:
        diffs.append(("amount", f"{row.amount:.2f} {sent.currency}",
                      f"{sent.amount:.2f} {sent.currency}"))
    if row.customer_number != sent.customer_number:
        diffs.append(("customer", f"customer {row.customer_number}",
                      f"customer {sent.customer_number}"))
    if row.date[:10] != sent.date:
        diffs.append(("date", row.date[:10], sent.date))
    if not diffs:
        return (), ""
    said = "; ".join(f"{name} {live} in e-conomic, {moment} in Moment"
                     for name, live, moment in diffs)
    return tuple(name for name, _l, _m in diffs), (
        f"Invoice {n}'s booked entry in e-conomic ({where}) differs from the invoice in "
        f"Moment: {said}. {_NEVER_EDITED}.")
