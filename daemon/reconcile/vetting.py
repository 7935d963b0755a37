"""Vets the invoices of a pass against the agreement's books before any is sent.

An invoice still to be transferred gets the VAT code and exchange rate the books give it
(:func:`daemon.core.mapping.with_books`, over the chart the controls cache); one whose VAT code
cannot be known, or whose VAT in Moment disagrees with that code's rate, is parked with the
sentence (alerted) and never sent. Invoices already in e-conomic are not vetted again: their
entry is what was sent. When the books cannot be read, the invoices to transfer wait (backed
off, or parked when e-conomic refuses for good), and the others carry on.

Never writes to e-conomic; the only events recorded are ``Parked`` and retry bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.economic import errors
from daemon.reconcile import specs
from daemon.reconcile.controls import Controls
from daemon.reconcile.invoice_items import KIND, Item

Admitted = specs.Item[ev.InvoiceFinalized, mp.InvoiceEntry]


async def vet(ctx: Controls, admitted: Sequence[Admitted], *,
              to_transfer: Callable[[Admitted], bool]) -> list[Item]:
    """The pass's items: those to transfer with their books applied (or parked, or waiting
    when the books cannot be read), the others as mapped."""
    items: list[Item] = []
    fresh = [a for a in admitted if a.desired is not None and to_transfer(a)]
    chart = None
    if fresh:
        try:
            chart = await ctx.chart.books()
        except errors.EconomicError as err:
            await ctx.outcomes.refused_many(KIND, [a.key for a in fresh], "read", err)
    for a in admitted:
        if a.desired is None:
            continue
        if not to_transfer(a):
            items.append(Item(a.key, a.desired, a.mapped.warnings, content=a.content))
            continue
        if chart is None:
            continue  # waits for the books
        booked = mp.with_books(a.desired, a.fact, ctx.options, chart)
        if booked.value is None:
            await ctx.outcomes.park(KIND, a.key, reason=booked.problem)
            continue
        items.append(Item(a.key, booked.value, (*a.mapped.warnings, *booked.warnings),
                          content=a.content))
    return items
