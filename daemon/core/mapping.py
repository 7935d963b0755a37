"""Moment facts → the e-conomic fields the daemon keeps, per DESIGN.md's mapping table.

Pure functions of a fact and :class:`Options` (plain values the shell builds from settings, so
the core never imports them). Each returns a :class:`Mapped`: the desired fields, the warnings
of values cut to e-conomic's maximum lengths, or a ``problem`` sentence when the fact cannot be
mapped at all (an unknown VAT code, a number e-conomic refuses): such an entity is parked with
that sentence as its reason and nothing is sent.

Invariants: fields Moment owns mirror Moment exactly; a customer field Moment leaves empty and
never filled is not owned (e-conomic's value stays), one it emptied is emptied; a country is
its name in ``language`` (:mod:`daemon.core.countries`); a value longer than
e-conomic allows is cut, and the cut value is the desired one, so a cut never shows as drift;
numbers lie in 1..999999999; the invoice amount is Moment's total including VAT as a
``Decimal`` (a credit note's is negative, an invoice's positive: a sign that contradicts
``is_credit_note`` is a problem), never a float, rounded half up to 2 decimals with a warning
when Moment gave more; the text is Moment's description, else ``Faktura <n>`` /
``Kreditnota <n>`` in ``language``; ``contra_vat_code`` is empty unless configured.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final, Generic, TypeVar

import msgspec

from daemon.core import books, countries
from daemon.core import events as ev

MAX_NUMBER: Final = 999_999_999

# e-conomic's maximum lengths (legacy customers.post schema, projectsapi Project, DraftEntry).
CUSTOMER_LIMITS: Final = {"name": 255, "email": 255, "address": 510, "zip": 30, "city": 50,
                          "country": 50, "corporate_id": 40}
PROJECT_NAME_MAX: Final = 100
TEXT_MAX: Final = 250
CENT: Final = Decimal("0.01")


class Options(msgspec.Struct, frozen=True, kw_only=True):
    """The settings the mapping needs, as plain values (built by the shell from settings)."""

    customer_group: int = 1
    project_group: int = 1
    payment_terms: int = 1
    currency: str = "DKK"
    vat_zone: str = ""
    vat_zones: dict[str, int] = msgspec.field(default_factory=lambda: {"DK": 1, "EU": 2,
                                                                       "ABROAD": 3})
    journal_number: int = 1
    invoice_vat_code: str = ""
    default_account: int = 1010
    internal_project_group: int = 0
    invoice_without_project: str = "book"
    language: str = "da"
    include_pdf: bool = True
    auto_book: bool = True
    payments: bool = False  # [payments] enabled: the paid status goes into Moment
    # [expenses] (e-conomic -> Moment): whether booked costs become Moment expenses, the
    # accounts they are taken from (empty: every profit-and-loss account), the Moment cost type
    expenses: bool = False
    expense_accounts: tuple[int, ...] = ()
    cost_type: str = "Udlæg"
    cost_types: dict[int, str] = {}


class CustomerFields(msgspec.Struct, frozen=True, kw_only=True):
    """What e-conomic's customer should hold. The first group Moment owns, except the fields
    named in ``unowned`` (Moment leaves them empty and never filled them: e-conomic's value
    stays). ``country`` is the name in ``language``, compared by ``country_code``. ``vat_zone``
    is owned while Moment states a VAT code (``zone_owned``); otherwise it is written when the
    customer is created or its country is written. The references (group, terms, currency) are
    set when the daemon creates the customer and left to people afterwards."""

    number: int
    name: str
    email: str = ""
    corporate_id: str = ""
    address: str = ""
    zip: str = ""
    city: str = ""
    country: str = ""
    country_code: str = ""
    vat_zone: int = 1
    zone_owned: bool = True
    unowned: tuple[str, ...] = ()
    currency: str = "DKK"
    customer_group: int = 1
    payment_terms: int = 1


OWNED_CUSTOMER_FIELDS: Final = ("name", "email", "corporate_id", "address", "zip", "city",
                                "country", "vat_zone")
#: the desired field of each optional fact field (:data:`events.CUSTOMER_OPTIONAL_FIELDS`)
OPTIONAL_CUSTOMER_FIELDS: Final = {"email": "email", "organization_number": "corporate_id",
                                   "street": "address", "postal_code": "zip", "city": "city",
                                   "country_code": "country"}


class ProjectFields(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    name: str
    customer_number: int | None = None
    project_group: int = 1


OWNED_PROJECT_FIELDS: Final = ("name", "customer_number", "barred")


class InvoiceEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A manual customer-invoice draft entry (type 10) in ``journal_number``."""

    invoice_number: int
    text: str
    customer_number: int
    project_number: int | None = None
    date: str  # YYYY-MM-DD
    due_date: str = ""
    amount: Decimal
    contra_account: int
    currency: str
    contra_vat_code: str = ""
    journal_number: int = 1
    pdf_sha256: str = ""
    exchange_rate: Decimal | None = None  # DKK per 100 units; None: e-conomic's own rate


T = TypeVar("T")


class Mapped(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    value: T | None = None
    warnings: tuple[str, ...] = ()
    problem: str = ""


_DIGITS: Final = re.compile(r"0*[0-9]{1,9}")  # ASCII only: str.isdigit() takes "²" and "٣"


def number(text: str | int, what: str) -> tuple[int | None, str]:
    """A Moment number as e-conomic's integer, or None and a problem sentence. Never raises,
    whatever ``text`` holds (other scripts' digits, superscripts, thousands of digits)."""
    if isinstance(text, int):
        value = text if 1 <= text <= MAX_NUMBER else None
        raw = str(text) if value is not None or abs(text) < 10 ** 40 else "(a huge number)"
    else:
        raw = text.strip()
        value = int(raw) if _DIGITS.fullmatch(raw) is not None else None
    if value is None or not 1 <= value <= MAX_NUMBER:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        return None, (f"{what} {shown!r} cannot be used in e-conomic, which takes whole numbers "
                      f"from 1 to {MAX_NUMBER}; change the number in Moment")
    return value, ""


def cents(amount: Decimal) -> Decimal:
    """``amount`` rounded half up to 2 decimals, as e-conomic keeps it."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def money(amount: Decimal, what: str, warnings: list[str]) -> Decimal:
    """``amount`` as e-conomic can hold it: unchanged when it has at most 2 decimals, else
    rounded half up to 2 with a warning naming ``what`` and both values."""
    rounded = cents(amount)
    if rounded == amount:
        return amount  # the same value kept as given: its digest does not change
    warnings.append(f"{what} {amount} has more than 2 decimals, which e-conomic does not keep; "
                    f"it was sent rounded half up to {rounded} (correct it in Moment if that "
                    "is wrong)")
    return rounded


def cut(value: str, limit: int, what: str, warnings: list[str]) -> str:
    """``value`` cut to ``limit`` characters; a cut adds a warning naming the field."""
    if len(value) <= limit:
        return value
    warnings.append(f"{what} is longer than e-conomic allows ({len(value)} > {limit} "
                    "characters) and was cut")
    return value[:limit]


def map_customer(fact: ev.CustomerUpserted, opts: Options, *,
                 filled: Collection[str] = ()) -> Mapped[CustomerFields]:
    """``filled``: the optional fact fields some fact of this customer had a value in (the
    projection's ``DesiredCustomer.filled``); an empty field outside it is left to e-conomic."""
    if fact.problem:
        return Mapped(problem=fact.problem)
    num, problem = number(fact.number, "Customer number")
    if num is None:
        return Mapped(problem=problem)
    code = ""
    if fact.country_code.strip():
        found = countries.iso_code(fact.country_code)
        if found is None:
            return Mapped(problem=f"customer {fact.number} has the country code "
                                  f"{fact.country_code.strip()!r} in Moment, which is no ISO "
                                  "3166 country code; correct the customer's country in Moment")
        code = found
    vat_code = fact.vat_code.strip()
    key = vat_code or opts.vat_zone.strip() or countries.zone_key(code)
    zone = opts.vat_zones.get(key)
    if zone is None:
        known = ", ".join(sorted(opts.vat_zones)) or "none"
        what = f"VAT code {key!r}" if vat_code or opts.vat_zone.strip() else \
            f"the VAT zone {key!r} of its country"
        return Mapped(problem=f"{what} of customer {fact.number} has no e-conomic VAT "
                              f"zone in vat_zones (known: {known}); add it to the configuration "
                              "or fix the customer in Moment")
    if not fact.name.strip():
        return Mapped(problem=f"customer {fact.number} has no name in Moment, and e-conomic "
                              "requires one; give the customer a name in Moment")
    w: list[str] = []
    lim = CUSTOMER_LIMITS
    country = countries.name(code, opts.language) or "" if code else ""
    unowned = tuple(sorted(OPTIONAL_CUSTOMER_FIELDS[f] for f in OPTIONAL_CUSTOMER_FIELDS
                           if not getattr(fact, f).strip() and f not in filled))
    fields = CustomerFields(
        number=num, name=cut(fact.name, lim["name"], "name", w),
        email=cut(fact.email, lim["email"], "e-mail", w),
        corporate_id=cut(fact.organization_number, lim["corporate_id"],
                         "organization number", w),
        address=cut(fact.street, lim["address"], "address", w),
        zip=cut(fact.postal_code, lim["zip"], "postal code", w),
        city=cut(fact.city, lim["city"], "city", w),
        country=cut(country, lim["country"], "country", w), country_code=code,
        vat_zone=zone, zone_owned=bool(vat_code), unowned=unowned, currency=opts.currency,
        customer_group=opts.customer_group, payment_terms=opts.payment_terms)
    return Mapped(value=fields, warnings=tuple(w))


def map_project(fact: ev.ProjectUpserted, opts: Options) -> Mapped[ProjectFields]:
    if fact.problem:
        return Mapped(problem=fact.problem)
    num, problem = number(fact.number, "Project number")
    if num is None:
        return Mapped(problem=problem)
    cust: int | None = None
    group = opts.project_group
    if fact.customer_number:
        cust, problem = number(fact.customer_number, "Customer number")
        if cust is None:
            return Mapped(problem=problem)
    elif opts.internal_project_group:
        group = opts.internal_project_group
    else:
        return Mapped(problem=f"project {fact.number} has no customer in Moment, and e-conomic "
                              "takes a project without a customer only in an internal project "
                              "group, while [economic] internal_project_group is 0; set it to "
                              "an internal project group, or give the project a customer in "
                              "Moment")
    if not fact.name.strip():
        return Mapped(problem=f"project {fact.number} has no name in Moment, and e-conomic "
                              "requires one; give the project a name in Moment")
    w: list[str] = []
    return Mapped(value=ProjectFields(number=num,
                                      name=cut(fact.name, PROJECT_NAME_MAX, "name", w),
                                      customer_number=cust, project_group=group),
                  warnings=tuple(w))


def map_invoice(fact: ev.InvoiceFinalized, opts: Options, *, journal: int | None = None
                ) -> Mapped[InvoiceEntry]:
    """``journal``: the journal recorded with the invoice (its entry's, or that of a transfer in
    doubt); the configured one only for an invoice not yet sent, so changing ``journal_number``
    neither moves nor re-reports an invoice already in e-conomic."""
    if fact.problem:
        return Mapped(problem=fact.problem)
    num, problem = number(fact.number, "Invoice number")
    if num is None:
        return Mapped(problem=problem)
    cust, problem = number(fact.customer_number or "", "Customer number")
    if cust is None:
        return Mapped(problem=f"invoice {fact.number}: {problem}")
    proj: int | None = None
    if fact.project_number:
        proj, problem = number(fact.project_number, "Project number")
        if proj is None:
            return Mapped(problem=f"invoice {fact.number}: {problem}")
    try:
        amount = Decimal(fact.total_including_vat)
        if amount.is_finite():
            cents(amount)  # a total too large to round is no amount e-conomic can hold
    except InvalidOperation:
        return Mapped(problem=f"invoice {fact.number} has a total that is not a number "
                              f"({fact.total_including_vat!r})")
    if not amount.is_finite():
        return Mapped(problem=f"invoice {fact.number} has a total that is not a number")
    day = fact.invoice_date[:10]
    if len(day) != 10:
        return Mapped(problem=f"invoice {fact.number} has no invoice date")
    account = opts.default_account
    if fact.financial_account.strip():
        acc, problem = number(fact.financial_account, "Financial account")
        if acc is None:
            return Mapped(problem=f"invoice {fact.number}: {problem}")
        account = acc
    problem = books.check_sign(invoice=num, is_credit_note=fact.is_credit_note, total=amount)
    if problem:
        return Mapped(problem=problem)
    w: list[str] = []
    amount = money(amount, "the total", w)
    text = cut(fact.description, TEXT_MAX, "text", w) if fact.description.strip() \
        else books.entry_text(description="", number=num, is_credit_note=fact.is_credit_note,
                              language=opts.language)[0]
    return Mapped(value=InvoiceEntry(
        invoice_number=num, text=text, customer_number=cust, project_number=proj, date=day,
        due_date=fact.due_date[:10], amount=amount, contra_account=account,
        currency=(fact.currency or opts.currency).upper(),
        contra_vat_code=opts.invoice_vat_code,
        journal_number=opts.journal_number if journal is None else journal,
        pdf_sha256=fact.pdf_sha256), warnings=tuple(w))


_enc = msgspec.json.Encoder(order="deterministic")


def fields_hash(value: msgspec.Struct) -> str:
    """A digest of the desired fields: recorded with ``Applied``, compared for status."""
    return hashlib.sha256(_enc.encode(value)).hexdigest()[:32]


#: What an invoice's content hash leaves out: bookkeeping, and the status (crediting an
#: invoice in Moment makes a credit note of its own; the booked invoice is unchanged).
_NOT_CONTENT: Final = ("version", "finalized_date", "status")
CONTENT_PREFIX: Final = "m:"


def invoice_content(fact: ev.InvoiceFinalized) -> str:
    """A digest of Moment's own invoice (never of the daemon's mapping of it), recorded when
    the entry is sent and compared for "changed in Moment after it was booked": a new mapping
    option or daemon version never changes it. Prefixed, so a digest recorded by an older
    daemon (of the mapped entry) is told apart and never reported."""
    fields = {f: getattr(fact, f) for f in fact.__struct_fields__ if f not in _NOT_CONTENT}
    return CONTENT_PREFIX + hashlib.sha256(_enc.encode(fields)).hexdigest()[:32]


def with_books(entry: InvoiceEntry, fact: ev.InvoiceFinalized, opts: Options,
               chart: books.Books) -> Mapped[InvoiceEntry]:
    """``entry`` with the VAT code and exchange rate the agreement's books give it, or the
    problem that parks the invoice: a VAT code that cannot be known, or Moment's VAT off that
    code's rate by more than max(1.00, 1 %) (DESIGN.md "VAT on an invoice")."""
    n = entry.invoice_number
    vat = books.vat_code(invoice=n, account=entry.contra_account, setting=opts.invoice_vat_code,
                         books=chart)
    if vat.problem:
        return Mapped(problem=vat.problem)
    problem = books.check_vat(invoice=n, account=entry.contra_account, code=vat.code,
                              books=chart, total=entry.amount, moment_vat=fact.total_vat,
                              currency=entry.currency)
    if problem:
        return Mapped(problem=problem)
    rate, warning = books.exchange_rate(currency=entry.currency, books=chart,
                                        moment_rate=fact.exchange_rate)
    return Mapped(value=msgspec.structs.replace(entry, contra_vat_code=vat.code,
                                                exchange_rate=rate),
                  warnings=(warning,) if warning else ())
