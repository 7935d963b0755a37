"""The payment kind: the paid status of each invoice the daemon booked, into Moment.

Desired state (:class:`PaymentSpec`): the latest :class:`~daemon.core.events.PaymentObserved`
fact of each booked invoice (appended by :mod:`daemon.ingest.paying` when e-conomic's customer
row changed), mapped by :func:`daemon.core.payments.map_payment` to Moment's payment status, for
an invoice Moment still has (the fact carries the Moment id the log knew for the invoice).
Nothing is desired while ``[payments] enabled`` is false. In sync once ``Applied`` records the
mapped status.

The controller (:class:`Payments`), for each queued payment not in sync:

1. reads Moment's status (``GET /invoices/{id}/paymentStatus``): the lookup that makes an
   unknown earlier outcome harmless, and the comparison DESIGN.md asks for (``paidAmount`` and
   ``fullyPaid``); when Moment already shows it, ``Applied`` is recorded and nothing is sent;
2. otherwise commits the intent (``WriteIntended``, its key sent as ``Idempotency-Key``), then
   ``PUT``s the status, then records ``Applied``.

A retryable failure (429, 5xx, transport, an answer that cannot be read) backs the payment off
(its intent stays open: the next attempt reads first); Moment refusing (an unknown invoice, a
draft, a body it does not take) parks it with a sentence naming the invoice and what to do; the
rest go on. The PUT is idempotent, so a repeated send can never pay twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Final

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import payments as pay
from daemon.core import plans
from daemon.core import projections as pj
from daemon.moment import errors as moment_errors
from daemon.moment import shapes
from daemon.reconcile import moment_writes, reasons, specs
from daemon.reconcile.hooks import crash_point

KIND: Final = pay.KIND
ACTION: Final = "set_payment"
LOOKUP: Final = "read_payment"

Item = specs.Item[ev.PaymentObserved, pay.PaymentFields]


class PaymentSpec(specs.Spec[ev.PaymentObserved, pay.PaymentFields, None]):
    kind = KIND

    def rows(self, tables: pj.Tables) -> Mapping[str, specs.Fact[ev.PaymentObserved]]:
        return tables.payments()

    def enabled(self, options: mp.Options) -> bool:
        return options.payments

    def map(self, fact: ev.PaymentObserved, options: mp.Options
            ) -> mp.Mapped[pay.PaymentFields]:
        del options
        return pay.map_payment(fact)

    def content_of(self, row: specs.Fact[ev.PaymentObserved],
                   mapped: mp.Mapped[pay.PaymentFields]) -> str:
        return pay.content(mapped.value) if mapped.value is not None else ""

    def number(self, desired: pay.PaymentFields) -> int:
        return desired.invoice_number

    def item(self, tables: pj.Tables, options: mp.Options, key: str) -> Item | None:
        if not options.payments or tables.invoices().get(key) is None:
            return None
        invoice = tables.invoices()[key]
        return None if invoice.gone else super().item(tables, options, key)

    def each_item(self, tables: pj.Tables, options: mp.Options) -> Iterator[Item]:
        if not options.payments:
            return
        invoices = tables.invoices()
        for key, row in tables.payments().items():
            invoice = invoices.get(key)
            if invoice is not None and not invoice.gone:
                yield self.make_item(key, row, tables, options)

    def decide(self, item: Item, live: None, options: mp.Options) -> plans.Action:
        del live, options
        desired = item.desired
        assert desired is not None
        if item.in_sync:
            return plans.NOTHING
        return plans.Action(name="update", fields=("paidAmount", "fullyPaid"),
                            detail=describe(desired))


SPEC: Final[PaymentSpec] = PaymentSpec()


def describe(desired: pay.PaymentFields) -> str:
    """The status in words, for ``plan`` and the log."""
    if desired.fully_paid:
        return f"paid in full ({desired.paid_amount}) on {desired.paid_date}"
    if desired.paid_amount != "0.00":
        return f"partially paid ({desired.paid_amount}) on {desired.paid_date}"
    return "not paid"


def body(desired: pay.PaymentFields) -> shapes.PaymentStatus:
    """What ``PUT /invoices/{id}/paymentStatus`` is sent."""
    return shapes.PaymentStatus(
        paid_amount=desired.paid_amount, fully_paid=desired.fully_paid,
        paid_date=None if desired.paid_date is None else dt.date.fromisoformat(
            desired.paid_date),
        external_id=desired.external_id)


class Payments(moment_writes.MomentWrites[ev.PaymentObserved, pay.PaymentFields]):
    """Sets queued payments' status in Moment; see the module docstring."""

    kind = KIND
    action = ACTION
    spec = SPEC

    async def apply(self, item: Item) -> None:
        ctx, key = self.ctx, item.key
        client = ctx.moment
        assert client is not None
        desired = item.desired
        assert desired is not None
        state = ctx.log.tables.state(KIND, key)
        if state.parked or (state.applied_hash == item.content and not state.intents):
            return
        try:
            now = await client.get_payment_status(desired.moment_id)
        except moment_errors.MomentError as err:
            await self.refused(item, LOOKUP, err)
            return
        if pay.same_status(desired, now.paid_amount, now.fully_paid):
            # Moment shows it (an earlier send, or a person)
            await self.applied(item, desired.moment_id)
            return
        ikey = await ctx.outcomes.intent(KIND, key, ACTION, item.content)
        crash_point("payment.after_intent")
        try:
            await client.set_payment_status(desired.moment_id, body(desired),
                                            idempotency_key=ikey)
        except moment_errors.MomentError as err:
            await self.refused(item, ACTION, err)
            return
        crash_point("payment.after_send")
        await self.applied(item, desired.moment_id)

    def explain(self, item: Item, action: str, err: moment_errors.MomentError) -> str:
        assert item.desired is not None
        return reasons.explain_payment(item.key, item.desired.moment_id, action, err)
