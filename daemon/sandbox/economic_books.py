"""The fake e-conomic's books: the booked entries that booking posts, and a person's bookings.

Booking a draft entry posts rows on one voucher, as e-conomic does (debit positive, credit
negative; the entry's ``amount`` is the debit of its account side and the credit of its contra
side):

- The account side: a customer entry posts one customer row on the customer group's account
  (or the entry's ``accountNumber``) carrying ``customerNumber``, ``remainder`` = its amount and,
  for a manual customer invoice (type 10), ``customerInvoiceNumber``; a supplier entry posts one
  creditor row on the supplier group's account carrying ``supplierNumber``,
  ``supplierInvoiceNumber`` and ``remainder``; otherwise a row on ``accountNumber``.
- Each plain side with a VAT code is split: a row of the net amount on the account, carrying
  ``vatAccountNumber``, and a VAT row on the VAT code's account (no VAT code of its own; none
  when the VAT is 0, as with a 0 % code). For a reverse-charge code (VAT type 3) the supplier
  charged no VAT: the account row keeps the whole amount and the VAT is posted twice, on the
  VAT account and, opposite, on its contra account.
- ``projectNumber`` goes on the rows of profit-and-loss accounts (the cost or revenue row), and
  on a manual customer invoice's customer row too; never on a VAT, bank or creditor row.
- Every row has ``entryNumber`` (increasing), ``type``, ``accountNumber``, ``amount``,
  ``amountInBaseCurrency`` (at the entry's ``exchangeRate``, else the currency's own rate),
  ``currencyCode``, ``date``, ``voucherNumber`` and ``text`` when given.

A person's bookings (the admin surface's): a supplier invoice or a finance voucher of a cost,
a customer payment that lowers an invoice's remainder, a credit note that settles an invoice.
Each is validated first and raises :class:`BookingError` with a sentence, changing nothing.
Money is ``Decimal`` with two places (served as JSON numbers). Imports no client code.
"""

from __future__ import annotations

import datetime as dt
import decimal
from decimal import Decimal
from typing import Any

from daemon.sandbox import economic_entries
from daemon.sandbox.economic_state import BANK, Agreement, Record

CENT = Decimal("0.01")
COST_KINDS = {"supplierInvoice": 3, "financeVoucher": 5}
DEFAULT_COST_ACCOUNT = 2750


class BookingError(ValueError):
    """A booking the sandbox refuses; the message says what is wrong."""


def money(value: Any) -> Decimal:
    """A JSON number or decimal string as money, rounded half up to two places."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise decimal.InvalidOperation(repr(value))
    amount = Decimal(str(value))
    if not amount.is_finite():
        raise decimal.InvalidOperation(repr(value))
    return amount.quantize(CENT, rounding=decimal.ROUND_HALF_UP)


def _reverse_charge(vat: Record) -> bool:
    return int(vat.get("vatType", {}).get("vatTypeNumber", 0)) == 3


def split(vat: Record, amount: Decimal) -> tuple[Decimal, Decimal]:
    """``amount`` booked with VAT code ``vat`` as (the account's part, the VAT): the VAT is
    inside the amount, except for a reverse-charge code, where it comes on top."""
    rate = Decimal(str(vat["ratePercentage"]))
    if _reverse_charge(vat):
        return amount, (amount * rate / 100).quantize(CENT, rounding=decimal.ROUND_HALF_UP)
    net = (amount * 100 / (100 + rate)).quantize(CENT, rounding=decimal.ROUND_HALF_UP)
    return net, amount - net


def _base_rate(a: Agreement, d: Record) -> Decimal:
    if d.get("exchangeRate") is not None:
        return Decimal(str(d["exchangeRate"]))
    cur = a.currencies.get(str(d["currency"]).upper(), {})
    return Decimal(str(cur.get("_rate", 100)))


def book(a: Agreement, d: Record) -> list[Record]:
    """Post the rows of validated draft entry ``d`` (see the module docstring)."""
    amount = money(d["amount"])
    rate = _base_rate(a, d)
    kind = int(d["entryTypeNumber"])
    common: Record = {"currencyCode": str(d["currency"]).upper(), "date": d["date"],
                      "voucherNumber": d["voucherNumber"], "type": kind,
                      "_year": d["_year"], "_journal": d["journalNumber"]}
    if d.get("text"):
        common["text"] = d["text"]
    project = d.get("projectNumber")
    rows: list[Record] = []

    def row(account: int, value: Decimal, **extra: Any) -> Record:
        r = {**common, "_rate": rate, "accountNumber": account, "amount": value,
             "amountInBaseCurrency": (value * rate / 100).quantize(
                 CENT, rounding=decimal.ROUND_HALF_UP), **extra}
        if project is not None and a.accounts.get(account, {}).get(
                "accountType") == "profitAndLoss":
            r["projectNumber"] = project
        rows.append(r)
        return r

    def plain(account: int, value: Decimal, code: str | None) -> None:
        vat = a.vat_accounts.get(code) if code else None
        if vat is None:
            row(account, value)
            return
        part, tax = split(vat, value)
        row(account, part, vatAccountNumber=code)
        if tax == 0:  # a 0 % code (EU sales) posts no VAT row
            return
        row(int(vat["account"]["accountNumber"]), tax)
        if _reverse_charge(vat):
            contra: Record = vat.get("contraAccount") or vat["account"]
            row(int(contra["accountNumber"]), -tax)

    cust, supp = d.get("customerNumber"), d.get("supplierNumber")
    if cust is not None:
        extra: Record = {"customerNumber": cust, "remainder": amount}
        if kind == 10 and d.get("customerInvoiceNumber"):
            extra["customerInvoiceNumber"] = int(d["customerInvoiceNumber"])
        if d.get("dueDate"):
            extra["dueDate"] = d["dueDate"]
        r = row(d.get("accountNumber") or _group_account(a, cust), amount, **extra)
        if kind == 10 and project is not None:
            r["projectNumber"] = project
    elif supp is not None:
        extra = {"supplierNumber": supp, "remainder": amount}
        if d.get("supplierInvoiceNumber"):
            extra["supplierInvoiceNumber"] = str(d["supplierInvoiceNumber"])
        if d.get("dueDate"):
            extra["dueDate"] = d["dueDate"]
        row(d.get("accountNumber") or _supplier_account(a, supp), amount, **extra)
    elif d.get("accountNumber") is not None:
        plain(int(d["accountNumber"]), amount, d.get("vatCode"))
    if d.get("contraAccountNumber") is not None:
        plain(int(d["contraAccountNumber"]), -amount, d.get("contraVatCode"))
    for r in rows:
        a.put_booked(r)
    return rows


def _group_account(a: Agreement, customer: int) -> int:
    group = a.customers.get(customer, {}).get("customerGroup", {}).get("customerGroupNumber", 1)
    return int(a.customer_groups.get(group, {}).get("account", {}).get("accountNumber", 5600))


def _supplier_account(a: Agreement, supplier: int) -> int:
    group = a.suppliers.get(supplier, {}).get("supplierGroup", {}).get("supplierGroupNumber", 1)
    return int(a.supplier_groups.get(group, {}).get("account", {}).get("accountNumber", 6800))


# ---------------------------------------------------------------- a person's bookings -------
def _day(body: Record) -> str:
    raw = body.get("date")
    try:
        return dt.date.fromisoformat(str(raw)).isoformat()
    except ValueError:
        raise BookingError(f"date must be a date YYYY-MM-DD, got {raw!r}") from None


def _amount(body: Record, name: str = "amount") -> Decimal:
    try:
        value = money(body.get(name))
    except decimal.InvalidOperation:
        raise BookingError(f"{name} must be a number or a decimal string, "
                           f"got {body.get(name)!r}") from None
    if value == 0:
        raise BookingError(f"{name} must not be 0")
    return value


def _book_new(a: Agreement, entry: Record) -> list[Record]:
    """Validate ``entry`` as the journal would, give it the next voucher, and book it."""
    rec, errs = economic_entries.validate(a, entry)
    if rec is None:
        raise BookingError("; ".join(f"{p}: {m}" for p, _code, m in errs))
    voucher = a.next_voucher(rec["journalNumber"], rec["_year"])
    if voucher is None:
        raise BookingError(f"journal {rec['journalNumber']} has no voucher number left")
    rec["voucherNumber"] = voucher
    rows = book(a, rec)
    a.daybook_booked(rec["journalNumber"], rows)
    return rows


def book_cost(a: Agreement, kind: str, body: Record) -> list[Record]:
    """Book a cost as a person would: ``kind`` ``supplierInvoice`` (cost, VAT, creditor rows)
    or ``financeVoucher`` (cost, VAT, bank rows). ``amount`` is the total including VAT."""
    if kind not in COST_KINDS:
        raise BookingError(f"kind must be one of {', '.join(COST_KINDS)}")
    gross = _amount(body)
    account = body.get("accountNumber", DEFAULT_COST_ACCOUNT)
    acc = a.accounts.get(account) if isinstance(account, int) else None
    if acc is None or acc.get("accountType") != "profitAndLoss":
        raise BookingError(f"accountNumber {account!r} is not a profit-and-loss account "
                           "of the chart")
    code = body.get("vatCode", acc.get("vatAccount", {}).get("vatCode"))
    if code is not None and code not in a.vat_accounts:
        raise BookingError(f"vatCode {code!r} is not a VAT code of the agreement")
    entry: Record = {"entryTypeNumber": COST_KINDS[kind], "journalNumber": 1,
                     "date": f"{_day(body)}T00:00:00Z", "currency": body.get("currency", "DKK"),
                     "contraAccountNumber": account, "contraVatCode": code,
                     "text": body.get("text"), "projectNumber": body.get("projectNumber"),
                     "costTypeNumber": body.get("costTypeNumber")}
    if kind == "supplierInvoice":
        supplier = body.get("supplierNumber", 1)
        if supplier not in a.suppliers:
            raise BookingError(f"supplierNumber {supplier!r} is not a supplier")
        invoice = body.get("supplierInvoiceNumber")
        if invoice is not None and (not isinstance(invoice, str) or len(invoice) > 30):
            raise BookingError("supplierInvoiceNumber must be a string of at most 30 "
                               "characters")
        entry.update(supplierNumber=supplier, supplierInvoiceNumber=invoice)
    else:
        entry["accountNumber"] = body.get("contraAccountNumber", BANK)
    # The cost is the debit of the contra side: the creditor (or bank) side is credited.
    entry["amount"] = -gross
    return _book_new(a, {k: v for k, v in entry.items() if v is not None})


def invoice_row(a: Agreement, customer: Any, invoice: Any) -> Record:
    """The customer row of booked invoice ``invoice`` of ``customer``."""
    for r in a.booked_entries.values():
        if r.get("customerNumber") == customer and r.get("customerInvoiceNumber") == invoice:
            return r
    raise BookingError(f"customer {customer!r} has no booked invoice {invoice!r}")


def pay(a: Agreement, body: Record) -> list[Record]:
    """Book a customer payment of an invoice: a bank row and a customer row; the invoice's
    ``remainder`` goes toward 0 by the amount (never past it: an overpayment stays on the
    payment's own remainder)."""
    inv = invoice_row(a, body.get("customerNumber"), body.get("customerInvoiceNumber"))
    paid = _amount(body)
    left = Decimal(str(inv["remainder"]))
    if left == 0:
        raise BookingError(f"invoice {inv['customerInvoiceNumber']} of customer "
                           f"{inv['customerNumber']} is settled: its remainder is 0.00")
    if (paid > 0) != (left > 0):
        raise BookingError(f"amount {paid} has the wrong sign for invoice "
                           f"{inv['customerInvoiceNumber']}, whose remainder is {left}")
    applied = paid if abs(paid) <= abs(left) else left
    rows = _book_new(a, {
        "entryTypeNumber": 2, "journalNumber": 1, "date": f"{_day(body)}T00:00:00Z",
        "currency": inv["currencyCode"], "exchangeRate": inv["_rate"],
        "customerNumber": inv["customerNumber"], "amount": -paid,
        "contraAccountNumber": body.get("accountNumber", BANK),
        "text": body.get("text") or f"Betaling faktura {inv['customerInvoiceNumber']}"})
    rows[0]["remainder"] = applied - paid
    _lower(a, inv, applied)
    return rows


def settle(a: Agreement, body: Record) -> list[Record]:
    """Settle an invoice with a credit note of the same customer: both remainders go toward
    0 by the smaller of the two. Posts nothing; answers the two customer rows."""
    customer = body.get("customerNumber")
    inv = invoice_row(a, customer, body.get("customerInvoiceNumber"))
    note = invoice_row(a, customer, body.get("creditNoteNumber"))
    left, credit = Decimal(str(inv["remainder"])), Decimal(str(note["remainder"]))
    if not left > 0:
        raise BookingError(f"invoice {inv['customerInvoiceNumber']} has nothing to settle "
                           f"(remainder {left})")
    if not credit < 0:
        raise BookingError(f"credit note {note['customerInvoiceNumber']} has nothing left to "
                           f"settle with (remainder {credit})")
    applied = min(left, -credit)
    _lower(a, inv, applied)
    _lower(a, note, -applied)
    return [inv, note]


def _lower(a: Agreement, r: Record, by: Decimal) -> None:
    r["remainder"] = Decimal(str(r["remainder"])) - by
    r["objectVersion"] = a.version()


def tamper(a: Agreement, entry: int, body: Record) -> list[Record]:
    """Change booked row ``entry``'s ``amount``, ``date``, ``customerNumber`` or
    ``vatAccountNumber`` (a VAT code of the agreement, or None for none) in place.

    A fault, not a booking: the real e-conomic lets no one edit a booked entry (corrections
    are new entries). Tests use it to produce a booked entry that differs from what was sent.
    """
    r = a.booked_entries.get(entry)
    if r is None:
        raise BookingError(f"no booked entry {entry}")
    unknown = set(body) - {"amount", "date", "customerNumber", "vatAccountNumber"}
    if unknown:
        raise BookingError(f"only amount, date, customerNumber and vatAccountNumber can be "
                           f"changed, not {', '.join(sorted(unknown))}")
    if "customerNumber" in body and body["customerNumber"] not in a.customers:
        raise BookingError(f"customerNumber {body['customerNumber']!r} is not a customer")
    code = body.get("vatAccountNumber")
    if code is not None and code not in a.vat_accounts:
        raise BookingError(f"vatAccountNumber {code!r} is not a VAT code of the agreement")
    change: Record = {k: body[k] for k in ("customerNumber",) if k in body}
    if "amount" in body:
        change["amount"] = _amount(body)
    if "date" in body:
        change["date"] = f"{_day(body)}T00:00:00Z" if "T" in str(r.get("date", "")) \
            else _day(body)
    r.update(change)  # validated whole: a refused request changes nothing
    if "vatAccountNumber" in body:
        if code is None:
            r.pop("vatAccountNumber", None)
        else:
            r["vatAccountNumber"] = code
    r["objectVersion"] = a.version()
    return [r]
