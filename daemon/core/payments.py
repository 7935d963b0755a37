"""Paid status, e-conomic -> Moment: what the customer row of a booked invoice says, as Moment's
payment status (DESIGN.md, "Mapping e-conomic -> Moment").

The facts are :class:`daemon.core.events.PaymentObserved`: the ``amount`` and ``remainder`` of
the customer row on the voucher the daemon booked an invoice (or credit note) on, in the
invoice's currency, recorded when they differ from the last fact of that invoice. From a fact:

* ``paidAmount`` = \\|amount - remainder\\| (never negative: for a credit note, the amount
  settled), two decimals;
* ``fullyPaid`` = the remainder is 0, or of the opposite sign to the amount (overpaid); so a
  credit note that settles an invoice shows both as fully paid: the invoice's remainder and the
  note's went to 0;
* ``paidDate`` = the UTC date on which the daemon first saw this paid amount (the fact's
  ``seen_on``); none while nothing is paid;
* ``externalId`` = ``economic:{YEAR}:invoice:{number}``, YEAR the calendar year of the row's date.

Pure: functions of data; no I/O. Money is Decimal from the decimal strings e-conomic gave.
"""

from __future__ import annotations

import decimal
import hashlib
from decimal import Decimal
from typing import Final

import msgspec

from daemon.core import events as ev
from daemon.core import mapping as mp

KIND: Final = "payment"
CENT: Final = Decimal("0.01")
NEVER_PAID: Final = ("0.00", False)


class PaymentFields(msgspec.Struct, frozen=True, kw_only=True):
    """Moment's payment status of one invoice, as the daemon wants it."""

    moment_id: int
    invoice_number: int
    paid_amount: str  # decimal string, two places, never negative
    fully_paid: bool
    paid_date: str | None  # YYYY-MM-DD, None while nothing is paid
    external_id: str


def _money(text: str) -> Decimal:
    return Decimal(text).quantize(CENT, rounding=decimal.ROUND_HALF_UP)


def paid(amount: Decimal, remainder: Decimal) -> tuple[str, bool]:
    """``(paidAmount, fullyPaid)`` of a customer row."""
    paid_amount = abs(amount - remainder).quantize(CENT, rounding=decimal.ROUND_HALF_UP)
    fully = remainder == 0 or (amount != 0 and (remainder > 0) != (amount > 0))
    return f"{paid_amount:.2f}", fully


def status_of(fact: ev.PaymentObserved) -> tuple[str, bool]:
    """``(paidAmount, fullyPaid)`` of a fact."""
    return paid(_money(fact.amount), _money(fact.remainder))


def external_id(fact: ev.PaymentObserved) -> str:
    return f"economic:{fact.year}:invoice:{fact.invoice_number}"


def map_payment(fact: ev.PaymentObserved) -> mp.Mapped[PaymentFields]:
    """The payment status Moment should show for the invoice of ``fact``."""
    try:
        amount, fully = status_of(fact)
    except decimal.InvalidOperation:
        return mp.Mapped(problem=(
            f"payment of invoice {fact.invoice_number}: e-conomic's customer entry "
            f"{fact.entry_number} has an amount {fact.amount!r} or remainder "
            f"{fact.remainder!r} that is not a number; check the entry in e-conomic, then "
            "retry"))
    some = Decimal(amount) != 0
    return mp.Mapped(value=PaymentFields(
        moment_id=fact.moment_id, invoice_number=fact.invoice_number, paid_amount=amount,
        fully_paid=fully, paid_date=fact.seen_on if some or fully else None,
        external_id=external_id(fact)))


def content(fields: PaymentFields) -> str:
    """What ``Applied`` records: the hash of what Moment is told (the date included)."""
    return mp.fields_hash(fields)


def same_status(fields: PaymentFields, paid_amount: str, fully_paid: bool) -> bool:
    """Whether Moment's status already says what ``fields`` says (amount and fully paid: the
    two DESIGN.md compares; a different date alone is no reason to write)."""
    try:
        return _money(paid_amount) == Decimal(fields.paid_amount) and \
            fully_paid == fields.fully_paid
    except decimal.InvalidOperation:
        return False


def changed(latest: ev.PaymentObserved | None, amount: str, remainder: str) -> bool:
    """Whether a row read now is a new fact: it differs from the latest fact's amount or
    remainder; with no fact yet, only when something is paid (an invoice never paid is what
    Moment shows without being told)."""
    try:
        now = (_money(amount), _money(remainder))
    except decimal.InvalidOperation:
        return latest is None or (latest.amount, latest.remainder) != (amount, remainder)
    if latest is None:
        return paid(*now) != NEVER_PAID
    try:
        return (_money(latest.amount), _money(latest.remainder)) != now
    except decimal.InvalidOperation:
        return True


def fact_key(invoice_number: int, amount: str, remainder: str, after_seq: int) -> str:
    """The idempotency key of a fact: the same reading after the same latest fact is one fact,
    so two readers collapse; A, then B, then A again is three."""
    digest = hashlib.sha256(f"{amount}|{remainder}".encode()).hexdigest()[:16]
    return f"payment:{invoice_number}:{digest}:after:{after_seq}"
