"""Moment snapshots -> facts: the one place that maps Moment's Structs to events.

What it does: turns a :class:`~daemon.moment.shapes.Customer`, ``Project`` or ``Invoice`` into
the fact the log records (:class:`~daemon.core.events.CustomerUpserted`, ``ProjectUpserted``,
``InvoiceFinalized``), into a :class:`Refusal` when the object cannot be a fact (a number that
is not a whole number in e-conomic's range), or into nothing (a draft invoice), and names each
fact's idempotency key.

Guarantees:

* Nothing Moment sends makes this raise (DESIGN.md, "Bad data from Moment is one entity's
  problem"): a value the daemon cannot use is recorded in the fact's ``problem`` (a sentence
  naming the object, what is wrong and what to change in Moment), and reconcile parks the
  entity with it. Such values are: any text over :data:`MAX_VALUE_BYTES` (kept in the fact cut
  to :data:`KEPT_CHARS` characters, so the log does not carry it), a reference to a customer or
  project, or a financial account, that is not a whole number in e-conomic's range, and an
  amount with more digits than e-conomic keeps.
* Customer and project numbers are taken only in canonical form, ``1``..``999999999`` with no
  sign, spaces or leading zeros: anything else is refused with a sentence saying what to fix in
  Moment, never guessed (``"007"`` would silently become customer 7 in e-conomic).
* Only ``FINALIZED`` and ``CREDITED`` invoices are facts; a credit note is an invoice of its own
  under its own number.
* Keys (DESIGN.md, Ingest): a customer or project fact is ``kind:moment-id:version:content-hash``
  so two deliveries of one snapshot collapse; an invoice fact is ``invoice:<number>`` (recorded
  once, whatever its status then); the one later change an invoice can show, FINALIZED ->
  CREDITED, is ``invoice:<number>:credited``, also recorded once, carrying the PDF recorded
  with the first fact (that is the PDF e-conomic gets; a credit is its own credit note).
* Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final, Literal, TypeAlias

import msgspec

from daemon.core import clocks
from daemon.core import events as ev
from daemon.moment import shapes

MAX_NUMBER: Final = 999_999_999
_CANONICAL: Final = re.compile(r"[1-9][0-9]{0,8}")
_ASCII_DIGITS: Final = re.compile(r"[0-9]+")  # str.isdigit() also takes other scripts' digits

#: A text value longer than this (in UTF-8) is a problem, not content (DESIGN.md).
MAX_VALUE_BYTES: Final = 64 * 1024
#: How much of such a value the fact keeps, to show what it was.
KEPT_CHARS: Final = 200
_AMOUNT: Final = re.compile(r"-?[0-9]{1,13}(\.[0-9]{1,10})?")

Snapshot: TypeAlias = shapes.Customer | shapes.Project | shapes.Invoice
Fact: TypeAlias = ev.CustomerUpserted | ev.ProjectUpserted | ev.InvoiceFinalized
Kind: TypeAlias = Literal["customer", "project", "invoice"]


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """A Moment object that cannot become a fact; ``reason`` is a sentence a person can act on.

    ``key`` is the entity key to park it under: its number as Moment gives it, or
    ``id:<moment id>`` when that is empty.
    """

    kind: Kind
    key: str
    moment_id: int
    version: int
    reason: str


def kind_of(snapshot: Snapshot) -> Kind:
    if isinstance(snapshot, shapes.Customer):
        return "customer"
    if isinstance(snapshot, shapes.Project):
        return "project"
    return "invoice"


def number_problem(kind: str, number: str) -> str | None:
    """Why ``number`` cannot be an e-conomic number, or None when it can."""
    if _CANONICAL.fullmatch(number) is not None:
        return None
    shown = repr(number) if len(number) <= 40 else repr(number[:40] + "...")
    stripped = number.strip()
    if _ASCII_DIGITS.fullmatch(stripped) is not None and stripped.lstrip("0"):
        if number != number.strip():
            detail = "it has spaces around it"
        elif number.startswith("0"):
            detail = "it has leading zeros, so e-conomic would show it as another number"
        else:
            detail = f"it is above e-conomic's largest number {MAX_NUMBER}"
    else:
        detail = f"e-conomic needs a whole number from 1 to {MAX_NUMBER}"
    return (f"Moment {kind} number {shown} cannot be used: {detail}; change the {kind} "
            f"number in Moment, then resync it")


class _Problems:
    """Collects what is wrong with one Moment object's values, as one sentence."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.found: list[str] = []

    def text(self, value: str | None, field: str) -> str:
        """``value`` ("" for none), cut to :data:`KEPT_CHARS` with a problem when it is over
        :data:`MAX_VALUE_BYTES`."""
        if value is None:
            return ""
        if len(value) * 4 <= MAX_VALUE_BYTES or len(value.encode("utf-8", "surrogatepass")) \
                <= MAX_VALUE_BYTES:
            return value
        self.found.append(f"its {field} is over {MAX_VALUE_BYTES // 1024} KiB long")
        return value[:KEPT_CHARS] + "..."

    def reference(self, value: str | None, field: str) -> str:
        """A number Moment points at (empty when none), a problem when it is not canonical."""
        text = self.text(value, field)
        if text and _CANONICAL.fullmatch(text) is None:
            shown = text if len(text) <= 40 else text[:40] + "..."
            self.found.append(f"its {field} {shown!r} is not a whole number from 1 to "
                              f"{MAX_NUMBER}")
        return text

    def amount(self, value: str, field: str) -> str:
        if _AMOUNT.fullmatch(value) is None:
            shown = value if len(value) <= 40 else value[:40] + "..."
            self.found.append(f"its {field} {shown!r} has more digits than e-conomic keeps "
                              "(at most 13 before the decimal point and 10 after)")
            return shown
        return value

    def sentence(self) -> str:
        if not self.found:
            return ""
        return (f"Moment {self.what} cannot be sent to e-conomic: {'; '.join(self.found)}; "
                f"correct it in Moment, then resync it")


def _key(kind: Kind, number: str | None, moment_id: int) -> str:
    return number if number else f"id:{moment_id}"


def customer_fact(customer: shapes.Customer) -> ev.CustomerUpserted | Refusal:
    problem = number_problem("customer", customer.customer_number)
    if problem is not None:
        return Refusal(kind="customer", key=_key("customer", customer.customer_number,
                                                 customer.id),
                       moment_id=customer.id, version=customer.version, reason=problem)
    address = customer.address or shapes.Address()
    bad = _Problems(f"customer {customer.customer_number}")
    return ev.CustomerUpserted(
        moment_id=customer.id, number=customer.customer_number,
        name=bad.text(customer.name, "name"), email=bad.text(customer.email, "e-mail"),
        organization_number=bad.text(customer.organization_number, "organization number"),
        street=bad.text(address.street, "street"),
        postal_code=bad.text(address.postal_code, "postal code"),
        city=bad.text(address.city, "city"),
        country_code=bad.text(address.country_code, "country code"),
        vat_code=bad.text(customer.vat_code, "VAT code"), version=customer.version,
        last_modified=_timestamp(customer.last_modified_date), problem=bad.sentence())


def project_fact(project: shapes.Project) -> ev.ProjectUpserted | Refusal:
    problem = number_problem("project", project.project_number)
    if problem is not None:
        return Refusal(kind="project", key=_key("project", project.project_number, project.id),
                       moment_id=project.id, version=project.version, reason=problem)
    customer = project.customer
    bad = _Problems(f"project {project.project_number}")
    return ev.ProjectUpserted(
        moment_id=project.id, number=project.project_number,
        name=bad.text(project.name, "name"),
        customer_number=bad.reference(customer.customer_number if customer else None,
                                      "customer number"),
        customer_moment_id=customer.id if customer is not None else None,
        version=project.version, last_modified=_timestamp(project.last_modified_date),
        problem=bad.sentence())


def invoice_fact(invoice: shapes.Invoice, *, pdf_sha256: str, pdf_size: int,
                 ) -> ev.InvoiceFinalized | Refusal | None:
    """The invoice's fact with its stored PDF, a refusal, or None for a draft (never a fact)."""
    if not invoice.is_fact:
        return None
    number = invoice.invoice_number
    if number is None or not 1 <= number <= MAX_NUMBER:
        return Refusal(kind="invoice", key=_key("invoice", "" if number is None else str(number),
                                                invoice.id),
                       moment_id=invoice.id, version=invoice.version,
                       reason=f"Moment shows invoice id {invoice.id} as {invoice.status} with "
                              f"invoice number {number!r}; a finalized invoice needs a number "
                              f"from 1 to {MAX_NUMBER}: correct it in Moment, then resync it")
    project = invoice.project
    bad = _Problems(f"invoice {number}")
    return ev.InvoiceFinalized(
        moment_id=invoice.id, number=number, status=invoice.status,
        is_credit_note=invoice.is_credit_note,
        credited_invoice_number=invoice.credited_invoice_number,
        description=bad.text(invoice.description, "description"),
        invoice_date=invoice.invoice_date.isoformat() if invoice.invoice_date else "",
        due_date=invoice.due_date.isoformat() if invoice.due_date else "",
        currency=bad.text(invoice.currency, "currency"),
        exchange_rate=bad.amount(invoice.exchange_rate, "exchange rate")
        if invoice.exchange_rate else "",
        total_excluding_vat=bad.amount(invoice.total_excluding_vat, "total excluding VAT"),
        total_vat=bad.amount(invoice.total_vat, "VAT"),
        total_including_vat=bad.amount(invoice.total_including_vat, "total including VAT"),
        financial_account=bad.reference(invoice.financial_account_number, "financial account"),
        customer_number=bad.reference(invoice.customer.customer_number, "customer number"),
        project_number=bad.reference(project.project_number if project else None,
                                     "project number"),
        pdf_sha256=pdf_sha256, pdf_size=pdf_size,
        finalized_date=_timestamp(invoice.finalized_date) if invoice.finalized_date else "",
        version=invoice.version, problem=bad.sentence())


def invoice_number_of(invoice: shapes.Invoice) -> int | None:
    """The number an invoice fact would be keyed by, or None when it is not (yet) a fact."""
    if not invoice.is_fact or invoice.invoice_number is None:
        return None
    if not 1 <= invoice.invoice_number <= MAX_NUMBER:
        return None
    return invoice.invoice_number


def credited(fact: ev.InvoiceFinalized, invoice: shapes.Invoice) -> ev.InvoiceFinalized:
    """The recorded fact moved to ``CREDITED``: same PDF (the one e-conomic gets attached)."""
    return msgspec.structs.replace(fact, status="CREDITED", version=invoice.version)


def fact_key(fact: Fact) -> str:
    """The idempotency key of a first fact (see the module docstring): an invoice's first fact
    is ``invoice:<number>`` whatever its status, so two Moment invoices racing for one number
    collide on it."""
    if isinstance(fact, ev.InvoiceFinalized):
        return f"invoice:{fact.number}"
    kind = "customer" if isinstance(fact, ev.CustomerUpserted) else "project"
    return f"{kind}:{fact.moment_id}:{fact.version}:{ev.content_hash(fact)}"


def credited_key(number: int) -> str:
    """The key of the FINALIZED -> CREDITED change of a recorded invoice (recorded once)."""
    return f"invoice:{number}:credited"


def number_of(snapshot: Snapshot) -> str:
    """The Moment number as a string (the entity key it would have), "" when it has none."""
    if isinstance(snapshot, shapes.Customer):
        return snapshot.customer_number
    if isinstance(snapshot, shapes.Project):
        return snapshot.project_number
    return "" if snapshot.invoice_number is None else str(snapshot.invoice_number)


def _timestamp(moment: dt.datetime) -> str:
    try:
        return clocks.iso(moment)
    except OverflowError:  # 9999-12-31T23:00:00-05:00 has no UTC time: keep Moment's text
        return moment.isoformat()
