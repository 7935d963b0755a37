"""e-conomic's booked entries → Moment project expenses (DESIGN.md, "Mapping e-conomic →
Moment"): which booked entries are expenses, and what Moment's expense holds.

Pure functions of a :class:`~daemon.core.events.BookedEntryRecorded` fact, the mapping
:class:`~daemon.core.mapping.Options` and what the log knows (Moment's projects, the vouchers of
the daemon's own invoices); no I/O.

Invariants: an entry is an expense only when it parsed (no ``problem``), is a supplier invoice
(type 3) or finance voucher (type 5), carries no customer, lies on one of ``[expenses]
accounts`` (when empty: on a profit-and-loss account), is not on a voucher of one of the daemon's
own invoices, and names a project Moment has. ``amountIncludingVat`` is the entry's ``amount``
plus its VAT code's rate, rounded half up to 2 decimals, as ``Decimal`` (never a float); the
``amount`` itself when the entry has no VAT code or a reverse-charge one (the supplier charged
no VAT). A correction is an entry of its own, negative where it credits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Container
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

import msgspec

from daemon.core import events as ev
from daemon.core import mapping as mp

#: bookedEntriesapi ``type``: 3 supplier invoice, 5 finance voucher.
EXPENSE_TYPES: Final = frozenset({3, 5})
PROFIT_AND_LOSS: Final = "profitAndLoss"
DESCRIPTION_MAX: Final = 250
NO_YEAR: Final = "0000"


class ExpenseFields(msgspec.Struct, frozen=True, kw_only=True):
    """What Moment's project expense holds (``moment/API.md``, "Project expense")."""

    entry_number: int  # e-conomic's; not sent
    external_id: str
    project_number: str
    description: str
    amount_including_vat: str  # a decimal string with two places
    currency: str
    date: str  # YYYY-MM-DD
    cost_type: str


def external_id(year: str, entry_number: int) -> str:
    """The ``externalId`` Moment keeps with the expense of entry ``entry_number``."""
    return f"economic:{year}:entry:{entry_number}"


def key(year: str, entry_number: int) -> str:
    """The entity key of the expense (``YEAR:ENTRY``)."""
    return f"{year}:{entry_number}"


def parse_key(text: str) -> tuple[str, int] | None:
    """``"2026:4711"`` as ``("2026", 4711)``; None for anything else."""
    year, sep, entry = text.partition(":")
    if not sep or len(year) != 4 or not year.isascii() or not year.isdigit() \
            or not entry.isascii() or not entry.isdigit() or len(entry) > 10:
        return None
    return year, int(entry)


def _day(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if len(value) >= 10 else None
    except ValueError:
        return None


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        return None
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def recorded(*, entry_number: int, entry_type: int | None, account_number: int | None,
             account_type: str, project_number: object, amount: object, currency: str,
             date: object, text: str, vat_code: str, vat_rate: Decimal | None,
             reverse_charge: bool, voucher_number: int | None, customer_number: int | None,
             customer_invoice_number: int | None, unreadable: str = "",
             ) -> ev.BookedEntryRecorded:
    """The fact of one booked entry as read. Whatever the entry holds, this returns a fact:
    one whose amount, date or project does not parse carries a ``problem`` sentence naming
    the entry, the value and what to do, and never becomes an expense."""
    problems: list[str] = []
    day = _day(date) if isinstance(date, str) else None
    if day is None:
        problems.append(f"its date {date!r} is not a date")
    money = _decimal(amount)
    if money is None:
        problems.append(f"its amount {amount!r} is not an amount")
    project = ""
    if project_number is not None:
        if isinstance(project_number, int) and not isinstance(project_number, bool) \
                and 1 <= project_number <= mp.MAX_NUMBER:
            project = str(project_number)
        else:
            problems.append(f"its project number {project_number!r} is not a project number")
    if unreadable and not problems:
        problems.append(f"it does not read as e-conomic specifies ({unreadable})")
    year = f"{day.year:04d}" if day is not None else NO_YEAR
    problem = ""
    if problems:
        problem = (f"booked entry {entry_number} cannot become an expense: "
                   f"{'; '.join(problems)}; check the entry in e-conomic (a correction is "
                   "booked as an entry of its own)")
    return ev.BookedEntryRecorded(
        year=year, entry_number=entry_number, entry_type=entry_type,
        account_number=account_number, account_type=account_type, project_number=project,
        amount=str(money) if money is not None else (str(amount) if amount is not None else ""),
        currency=currency, date=day.isoformat() if day is not None else str(date or ""),
        text=text, vat_code=vat_code, vat_rate=str(vat_rate) if vat_rate is not None else "",
        reverse_charge=reverse_charge, voucher_number=voucher_number,
        customer_number=customer_number, customer_invoice_number=customer_invoice_number,
        problem=problem)


def not_an_expense(fact: ev.BookedEntryRecorded, opts: mp.Options, *,
                   own_vouchers: Callable[[str, int], bool],
                   projects: Container[str]) -> str:
    """Why the entry is not an expense (empty: it is one). ``own_vouchers(year, voucher)``
    says whether a voucher is one of the daemon's own invoices; ``projects`` are the Moment
    project numbers the daemon knows (not gone)."""
    if fact.problem:
        return fact.problem
    if fact.entry_type not in EXPENSE_TYPES:
        return "neither a supplier invoice nor a finance voucher"
    if fact.customer_number is not None or fact.customer_invoice_number is not None:
        return "a customer entry"
    if opts.expense_accounts:
        if fact.account_number not in opts.expense_accounts:
            return f"account {fact.account_number} is not one of [expenses] accounts"
    elif fact.account_type != PROFIT_AND_LOSS:
        return f"account {fact.account_number} is not a profit-and-loss account"
    if fact.voucher_number is not None and own_vouchers(fact.year, fact.voucher_number):
        return f"voucher {fact.voucher_number} is one of the daemon's own invoices"
    if not fact.project_number:
        return "on no project"
    if fact.project_number not in projects:
        return f"project {fact.project_number} is not in Moment"
    return ""


def amount_including_vat(fact: ev.BookedEntryRecorded) -> Decimal:
    """The entry's amount plus its VAT code's rate, rounded half up to 2 decimals."""
    amount = Decimal(fact.amount)
    rate = _decimal(fact.vat_rate) if fact.vat_code and not fact.reverse_charge else None
    gross = amount * (1 + rate / 100) if rate is not None else amount
    return gross.quantize(mp.CENT, rounding=ROUND_HALF_UP)


def map_expense(fact: ev.BookedEntryRecorded, opts: mp.Options) -> mp.Mapped[ExpenseFields]:
    """The expense Moment should hold for an entry that is one (see :func:`not_an_expense`)."""
    warnings: list[str] = []
    words = "Bilag" if opts.language == "da" else "Voucher"
    text = fact.text.strip() or f"{words} {fact.voucher_number or fact.entry_number}"
    fields = ExpenseFields(
        entry_number=fact.entry_number, external_id=external_id(fact.year, fact.entry_number),
        project_number=fact.project_number,
        description=mp.cut(text, DESCRIPTION_MAX, "description", warnings),
        amount_including_vat=str(amount_including_vat(fact)),
        currency=(fact.currency or opts.currency).upper(),
        date=fact.date,
        cost_type=opts.cost_types.get(fact.account_number or 0, opts.cost_type))
    return mp.Mapped(value=fields, warnings=tuple(warnings))


CONTENT_PREFIX: Final = "e:"


def content(fact: ev.BookedEntryRecorded) -> str:
    """What ``Applied`` records for an expense: a digest of the booked entry (never of the
    mapping, so a changed cost type re-creates nothing: an expense is written once)."""
    return CONTENT_PREFIX + ev.content_hash(fact)
