"""Invoices in a pass and their shapes on the wire: what the invoice transfer's modules share.

An :class:`Item` is one invoice's mapped draft entry, in the journal recorded with the invoice
(its entry's, or that of a transfer still in doubt), else the configured one: so changing
``journal_number`` neither moves nor re-reports an invoice already sent. The conversions
here are pure: the live entries a lookup reads become :class:`plans.LiveEntry`, amounts rounded
to cents exactly (never through a float).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

from daemon.core import mapping as mp
from daemon.core import plans
from daemon.core import rows as rw
from daemon.economic import payloads

KIND: Final = "invoice"


class Item:
    """One invoice in a pass: its key, mapped entry and warnings. ``hash`` digests the entry
    as sent (batches, intents); ``content`` Moment's own invoice (:func:`mp.invoice_content`),
    recorded with ``Applied`` and compared for "changed in Moment after it was booked"."""

    __slots__ = ("content", "entry", "hash", "key", "warnings")

    def __init__(self, key: str, entry: mp.InvoiceEntry, warnings: tuple[str, ...], *,
                 content: str) -> None:
        self.key = key
        self.entry = entry
        self.warnings = warnings
        self.hash = mp.fields_hash(entry)
        self.content = content


def ordered(items: Iterable[Item]) -> list[Item]:
    """The one order a batch is sent in, so a retried batch sends the same body."""
    return sorted(items, key=lambda i: (i.entry.invoice_number, i.key))


def batch_digest(items: Sequence[Item]) -> str:
    """A digest of which invoices a batch holds and what each says (journal included)."""
    text = "|".join(f"{i.key}={i.hash}" for i in ordered(items))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def batch_key_digest(idempotency_key: str) -> str:
    """The batch digest inside a key made for a batch (``invoice:KEY:ACTION:DIGEST:NONCE``)."""
    parts = idempotency_key.split(":")
    return parts[3] if len(parts) == 5 else ""


def journal_of(state: rw.EntityState, options: mp.Options) -> int:
    """The journal an invoice's entry lives in (or was sent to), else the configured one."""
    return state.journal_number if state.journal_number is not None else options.journal_number


def draft_write(e: mp.InvoiceEntry) -> payloads.DraftEntryWrite:
    return payloads.DraftEntryWrite(
        entryTypeNumber=10, journalNumber=e.journal_number, date=f"{e.date}T00:00:00Z",
        amount=e.amount, currency=e.currency, contraAccountNumber=e.contra_account,
        contraVatCode=e.contra_vat_code or None, text=e.text, projectNumber=e.project_number,
        customerNumber=e.customer_number, customerInvoiceNumber=str(e.invoice_number),
        dueDate=f"{e.due_date}T00:00:00Z" if e.due_date else None, exchangeRate=e.exchange_rate)


def live_draft(d: payloads.DraftEntry) -> plans.LiveEntry:
    return plans.LiveEntry(entry_number=d.entryNumber, voucher_number=d.voucherNumber or 0,
                           invoice_number=(d.customerInvoiceNumber or "").strip(),
                           customer_number=d.customerNumber, amount=mp.cents(d.amount),
                           date=d.date[:10], journal_number=d.journalNumber)


def live_booked(b: payloads.BookedEntry) -> plans.LiveEntry:
    return plans.LiveEntry(entry_number=b.entryNumber, voucher_number=b.voucherNumber or 0,
                           invoice_number=str(b.customerInvoiceNumber or ""),
                           customer_number=b.customerNumber, amount=mp.cents(b.amount),
                           date=(b.date or "")[:10], booked=True)
