"""The agreement's books as an invoice entry needs them, and the checks made against them.

:class:`Books` holds what the daemon reads once from e-conomic and caches (the VAT code each
account books with, each VAT code's rate, the base currency); the functions here are pure and
decide, per DESIGN.md "Details of the mapping", an invoice's ``contraVatCode``, whether
Moment's VAT agrees with that code's rate, whether the sign agrees with ``isCreditNote``, the
exchange rate sent, and the entry's text.

Guarantees: an invoice whose VAT, sign or VAT code cannot be right yields a ``problem``
sentence naming the invoice, the account, the code, the rate and both amounts, so it is parked
and never booked with the wrong VAT. Money is Decimal throughout. Never reads e-conomic or
settings itself.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Final, Literal

import msgspec

NO_VAT: Final = "none"  # ``invoice_vat_code`` meaning: book without a VAT code
TOLERANCE: Final = Decimal("1.00")  # in the invoice's currency
TOLERANCE_SHARE: Final = Decimal("0.01")  # of the expected VAT
TEXT_MAX: Final = 250

Language = Literal["da", "en"]
_WORDS: Final = {"da": ("Faktura", "Kreditnota"), "en": ("Invoice", "Credit note")}


class Books(msgspec.Struct, frozen=True, kw_only=True):
    """What the daemon caches of e-conomic's chart: ``account_vat_codes`` maps every account
    number to the VAT code it books with ("" for none), ``vat_rates`` every VAT code to its
    ``ratePercentage``; ``base_currency`` is the agreement's (``GET /self`` settings);
    ``vat_ledger`` the accounts VAT is posted on (each VAT code's account and contra
    account)."""

    account_vat_codes: dict[int, str]
    vat_rates: dict[str, Decimal]
    base_currency: str = "DKK"
    vat_ledger: frozenset[int] = frozenset()


class Vat(msgspec.Struct, frozen=True, kw_only=True):
    """The VAT an invoice is booked with: ``code`` ("" for none), or the ``problem``."""

    code: str = ""
    problem: str = ""


def vat_code(*, invoice: int, account: int, setting: str, books: Books) -> Vat:
    """The ``contraVatCode`` for an invoice on ``account``: ``setting`` (``invoice_vat_code``)
    when it names a code, none when it is ``"none"``, else the code the account books with."""
    chosen = setting.strip()
    if chosen.lower() == NO_VAT:
        return Vat()
    if chosen:
        if chosen not in books.vat_rates:
            return Vat(problem=f"invoice {invoice}: invoice_vat_code {chosen!r} is not a VAT "
                               "code in e-conomic; set one of e-conomic's VAT codes (or "
                               "\"none\", or leave it empty to use the account's)")
        return Vat(code=chosen)
    if account not in books.account_vat_codes:
        return Vat(problem=f"invoice {invoice}: account {account} is not in e-conomic's chart "
                           "of accounts; create it in e-conomic or give the invoice another "
                           "financial account in Moment")
    code = books.account_vat_codes[account]
    if code and code not in books.vat_rates:
        return Vat(problem=f"invoice {invoice}: account {account} books with VAT code {code}, "
                           "which e-conomic does not list under VAT accounts; fix the account "
                           "in e-conomic")
    return Vat(code=code)


def expected_vat(total: Decimal, rate: Decimal) -> Decimal:
    """The VAT inside ``total`` (including VAT) at ``rate`` percent."""
    return total * rate / (Decimal(100) + rate)


def vat_agrees(given: Decimal, expected: Decimal) -> bool:
    """``given`` VAT is ``expected`` within max(1.00, 1 % of ``expected``)."""
    return abs(given - expected) <= max(TOLERANCE, abs(expected) * TOLERANCE_SHARE)


def check_vat(*, invoice: int, account: int, code: str, books: Books, total: Decimal,
              moment_vat: str, currency: str) -> str:
    """A problem sentence when Moment's VAT is off the code's rate by more than
    max(1.00, 1 % of the expected VAT); "" when it agrees."""
    rate = books.vat_rates.get(code, Decimal(0)) if code else Decimal(0)
    try:
        given = Decimal(moment_vat or "0")
    except InvalidOperation:
        return f"invoice {invoice} has a VAT amount that is not a number ({moment_vat!r})"
    if not given.is_finite():
        return f"invoice {invoice} has a VAT amount that is not a number ({moment_vat!r})"
    expected = expected_vat(total, rate)
    if vat_agrees(given, expected):
        return ""
    how = f"VAT code {code} at {rate.normalize():f} %" if code else "no VAT code (0 %)"
    return (f"invoice {invoice}: Moment's VAT is {given:.2f} {currency}, but account {account} "
            f"books with {how}, which makes {expected:.2f} {currency} of VAT in a total of "
            f"{total:.2f}; the invoice is not booked. Give the invoice the financial account "
            "whose VAT it carries in Moment (one VAT rate per invoice), or set the account's "
            "VAT code in e-conomic, or set invoice_vat_code")


def check_sign(*, invoice: int, is_credit_note: bool, total: Decimal) -> str:
    """A problem sentence when the total's sign contradicts ``is_credit_note``."""
    if is_credit_note and total > 0:
        return (f"invoice {invoice} is a credit note in Moment but its total {total:.2f} is "
                "positive; a credit note's total must be negative. Correct it in Moment")
    if not is_credit_note and total < 0:
        return (f"invoice {invoice} is an invoice in Moment but its total {total:.2f} is "
                "negative; make it a credit note in Moment, or correct the total")
    return ""


def exchange_rate(*, currency: str, books: Books, moment_rate: str
                  ) -> tuple[Decimal | None, str]:
    """The ``exchangeRate`` to send (DKK per 100 units) and a warning, or ``(None, "")`` for an
    invoice in the base currency."""
    if currency == books.base_currency:
        return None, ""
    try:
        rate = Decimal(moment_rate) if moment_rate.strip() else None
    except InvalidOperation:
        rate = None
    if rate is None or not rate.is_finite() or rate <= 0:
        return None, (f"Moment gave no usable exchange rate for this {currency} invoice, so "
                      "e-conomic's own rate of the day was used")
    if books.base_currency != "DKK":
        return None, (f"Moment's exchange rate {rate} is DKK per 100 {currency}, but the "
                      f"agreement's base currency is {books.base_currency}, so e-conomic's own "
                      "rate of the day was used")
    return rate, ""


def words(language: str, *, is_credit_note: bool) -> str:
    """``Faktura``/``Kreditnota`` (or ``Invoice``/``Credit note`` in English)."""
    invoice, credit = _WORDS.get(language, _WORDS["da"])
    return credit if is_credit_note else invoice


def entry_text(*, description: str, number: int | str, is_credit_note: bool,
               language: str) -> tuple[str, bool]:
    """The entry's ``text`` and whether the description was cut to 250 characters."""
    if description.strip():
        return description[:TEXT_MAX], len(description) > TEXT_MAX
    return f"{words(language, is_credit_note=is_credit_note)} {number}"[:TEXT_MAX], False
