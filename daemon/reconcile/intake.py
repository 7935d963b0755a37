"""What the reconciler takes from the log: which keys each committed event queues, releases or
un-parks, and whether it was progress (the watchdog's beat).

Keys are queued, never events: a changed Moment object (customer, project, finalized invoice),
a payment seen, a booked entry recorded (and the expenses waiting on a project that has just
arrived), an operator's retry or resync. e-conomic's webhook hints go to
:class:`~daemon.reconcile.hearing.Hints`; an outcome a controller recorded releases its key.
Idempotent: a batch seen twice queues the same keys. The reconciler
(:mod:`daemon.reconcile.running`) runs this as its log consumer's handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from daemon.core import events as ev
from daemon.reconcile import expenses, hearing, payments, unparking
from daemon.reconcile.controls import Controls
from daemon.store import records

#: Outcomes the controllers record: each is progress, so it beats the watchdog pulse (a pass
#: over thousands of writes outlasts any freshness window; a wedged pass records none).
PROGRESS: Final = (ev.WriteIntended, ev.Applied, ev.Failed, ev.Parked, ev.DriftRepaired,
                   ev.InvoiceEntryCreated, ev.InvoicePdfAttached, ev.InvoicePdfSkipped,
                   ev.InvoiceBooked, ev.InvoiceEntryGone)


def take(batch: Sequence[records.Committed], controls: Controls, *,
         unparker: unparking.Unparker, hints: hearing.Hints) -> bool:
    """Queue the keys ``batch`` asks for (when desired state changes or an operator asks);
    returns True when a controller recorded progress in it."""
    q = controls.queue
    tables = controls.log.tables
    projects: set[str] = set()
    for _seq, e in batch:
        match e:
            case ev.BookedEntryRecorded():
                q.add(expenses.KIND, e.entity_key)
            case ev.ProjectUpserted(number=number):
                q.add("project", number)
                projects.add(number)  # the expenses recorded on it, once it is in Moment
                if tables.state("project", number).parked:
                    unparker.changed("project", number)  # fixed in Moment, perhaps
            case ev.CustomerUpserted() | ev.InvoiceFinalized():
                kind, key = ev.entity_of(e)
                q.add(kind, key)
                if tables.state(kind, key).parked:
                    unparker.changed(kind, key)  # fixed in Moment, perhaps
            case ev.PaymentObserved():
                q.add(payments.KIND, e.entity_key)
            case ev.EntityGone(kind=kind, key=key):
                q.discard(kind, key)
            case ev.EconomicHintReceived():
                hints.hear(e)
            case ev.ResyncRequested(kind=kind, key=key):
                q.add(kind, key, force=True)
            case ev.RetryRequested(kind=kind, key=key) | ev.Unparked(kind=kind, key=key):
                q.add(kind, key, force=True)
                unparker.retried(kind, key)
            case ev.Parked(kind=kind, key=key, source=source) if source:
                # ingest parked a Moment object (a conflicting invoice number, a value the
                # daemon cannot use): a person must hear of it as of reconcile's parkings
                q.release(kind, key)
                controls.observer.parked(kind, key, e.reason)
            case ev.Applied(kind=kind, key=key) | ev.Parked(kind=kind, key=key):
                q.release(kind, key)
            case _:
                pass
    q.add_many(expenses.KIND, expenses.SPEC.on_project(tables, controls.options, projects))
    return any(isinstance(e, PROGRESS) for _seq, e in batch)
