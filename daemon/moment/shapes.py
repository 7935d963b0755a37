"""Every Moment JSON shape the daemon reads or writes, and nothing else.

This is the one module that knows Moment's field names (see ``../shared/moment/API.md``), so
adapting to Moment's own Swagger later is a change here only. It holds:

* the API resources as frozen msgspec Structs (:class:`Customer`, :class:`Project`,
  :class:`Invoice`, :class:`ProjectExpense`, :class:`PaymentStatus`) and the paged list
  envelope (:class:`Page`);
* the thin webhook hints (:class:`CustomerHint`, :class:`ProjectHint`, :class:`InvoiceHint`)
  and :func:`decode_hint`, the strict decoder the webhook receiver answers 400 with.

Guarantees: API resources ignore unknown fields (Moment may add some at any time) but refuse a
wrong type for a field they know; money is a decimal *string* matching :data:`MONEY_PATTERN`,
never a float (a JSON number where money belongs is a decode error); Moment's numbers
(``customerNumber``, ``projectNumber``) stay strings, as Moment sends them. Hints are decoded
strictly: exactly one object kind, ids positive integers, numbers of the right JSON type.
This module does no I/O.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Annotated, ClassVar, Final, Generic, Literal, TypeAlias, TypeVar

import msgspec

from daemon.core import events as ev
from daemon.core import strictjson

MONEY_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?$"
Money: TypeAlias = Annotated[str, msgspec.Meta(pattern=MONEY_PATTERN)]
"""A decimal amount as Moment sends it: a JSON string such as ``"12500.00"``."""

MomentId: TypeAlias = Annotated[int, msgspec.Meta(ge=1)]

Timestamp: TypeAlias = Annotated[dt.datetime, msgspec.Meta(tz=True)]
"""A moment in time with its UTC offset (``"2026-11-20T09:14:00Z"``); a naive one is refused."""

InvoiceStatus: TypeAlias = Literal["DRAFT", "FINALIZED", "CREDITED"]

#: The invoice statuses that are facts for the daemon (a draft never is).
FACT_STATUSES: Final[frozenset[str]] = frozenset({"FINALIZED", "CREDITED"})


def money(value: str) -> decimal.Decimal:
    """The exact :class:`~decimal.Decimal` of a :data:`Money` string."""
    return decimal.Decimal(value)


class _Resource(msgspec.Struct, frozen=True, rename="camel", kw_only=True):
    """Base of Moment's API resources: camelCase on the wire, unknown fields ignored."""


class Address(_Resource, frozen=True, kw_only=True):
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country_code: str | None = None


class CustomerRef(_Resource, frozen=True, kw_only=True):
    """A customer as other resources point at it."""

    id: MomentId
    customer_number: str | None = None


class ProjectRef(_Resource, frozen=True, kw_only=True):
    """A project as an invoice points at it."""

    id: MomentId
    project_number: str | None = None


class Customer(_Resource, frozen=True, kw_only=True):
    id: MomentId
    customer_number: str
    name: str
    organization_number: str | None = None
    email: str | None = None
    address: Address | None = None
    vat_code: str | None = None
    last_modified_date: Timestamp
    version: int


class Project(_Resource, frozen=True, kw_only=True):
    id: MomentId
    project_number: str
    name: str
    customer: CustomerRef | None = None
    last_modified_date: Timestamp
    version: int


class Invoice(_Resource, frozen=True, kw_only=True):
    """An invoice of any status; a credit note is an invoice of its own (negative totals).

    Invariant kept by Moment, not checked here: a ``DRAFT`` has no ``invoice_number``.
    """

    id: MomentId
    invoice_number: int | None = None
    status: InvoiceStatus
    is_credit_note: bool = False
    credited_invoice_number: int | None = None
    description: str | None = None
    invoice_date: dt.date | None = None
    due_date: dt.date | None = None
    currency: str
    #: DKK per 100 units of ``currency``; set by Moment when the currency is not DKK.
    exchange_rate: Money | None = None
    total_excluding_vat: Money
    total_vat: Money
    total_including_vat: Money
    financial_account_number: str | None = None
    customer: CustomerRef
    project: ProjectRef | None = None
    finalized_date: Timestamp | None = None
    last_modified_date: Timestamp
    version: int

    @property
    def is_fact(self) -> bool:
        """True when the daemon records this invoice (finalized or credited, never a draft)."""
        return self.status in FACT_STATUSES


class ExpenseProjectRef(_Resource, frozen=True, kw_only=True):
    project_number: str


class ProjectExpense(_Resource, frozen=True, kw_only=True, omit_defaults=True):
    """A project expense, created by the daemon for an incoming expense.

    ``id`` is Moment's, absent when the daemon creates one; unset fields are not sent.
    """

    external_id: str
    project: ExpenseProjectRef
    description: str
    amount_including_vat: Money
    currency: str
    date: dt.date
    cost_type: str | None = None
    id: MomentId | None = None


NonNegativeMoney: TypeAlias = Annotated[str, msgspec.Meta(pattern=r"^[0-9]+(\.[0-9]+)?$")]


class PaymentStatus(_Resource, frozen=True, kw_only=True):
    """An invoice's payment status (``GET``/``PUT /invoices/{id}/paymentStatus``): set by the
    daemon from e-conomic. Moment shows the invoice as paid when ``fully_paid``;
    ``paid_amount`` is never negative (for a credit note it is the amount settled). An invoice
    never paid answers ``"0.00"``, false, and nulls."""

    paid_amount: NonNegativeMoney
    fully_paid: bool
    paid_date: dt.date | None = None
    external_id: str | None = None


class Unreadable(msgspec.Struct, frozen=True, kw_only=True):
    """An object of a list answer that does not decode as its shape: one object's problem,
    never the whole listing's. ``moment_id`` is its ``id`` when that is a usable id."""

    kind: Literal["customer", "project", "invoice"]
    moment_id: int | None
    error: str


class ListedId(msgspec.Struct, frozen=True):
    """Only the ``id`` of a listed object, to name one that does not decode."""

    id: object = None


class PageInfo(_Resource, frozen=True, kw_only=True):
    total_elements: Annotated[int, msgspec.Meta(ge=0)]


T = TypeVar("T")


class Page(_Resource, Generic[T], frozen=True, kw_only=True):
    """One page of a list answer: ``{"content": [...], "page": {"totalElements": N}}``."""

    content: list[T]
    page: PageInfo


# --- webhook hints --------------------------------------------------------------------------


class _Hint(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    event: str


class CustomerHint(_Hint, frozen=True, kw_only=True):
    """``{"event": "...", "customer": {"id": 1, "customerNumber": "10001"}}``."""

    customer: CustomerRef
    kind: ClassVar[Literal["customer"]] = "customer"

    @property
    def moment_id(self) -> int:
        return self.customer.id


class ProjectHintBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: int
    project_number: str | None = None
    customer: CustomerRef | None = None


class ProjectHint(_Hint, frozen=True, kw_only=True):
    """``{"event": "...", "project": {"id": 2, "projectNumber": "1", "customer": {...}}}``."""

    project: ProjectHintBody
    kind: ClassVar[Literal["project"]] = "project"

    @property
    def moment_id(self) -> int:
        return self.project.id


class InvoiceHintBody(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: int
    invoice_number: int | None = None
    customer: CustomerRef | None = None
    project: ProjectRef | None = None


class InvoiceHint(_Hint, frozen=True, kw_only=True):
    """``{"event": "CREATE_NEW", "invoice": {"id": 3, "invoiceNumber": 1, ...}}``.

    A draft invoice's hint may carry no ``invoiceNumber``; it is still a valid hint.
    """

    invoice: InvoiceHintBody
    kind: ClassVar[Literal["invoice"]] = "invoice"

    @property
    def moment_id(self) -> int:
        return self.invoice.id


Hint: TypeAlias = CustomerHint | ProjectHint | InvoiceHint
HINT_EVENT_MAX: Final = 100


class HintError(strictjson.BodyError):
    """A body that is not a Moment webhook hint; ``str()`` says what is wrong, for a 400."""


_describe = strictjson.describe


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise HintError(f"{where} must be an object, got {_describe(value)}")
    return value


def _id(obj: dict[str, object], where: str) -> int:
    if "id" not in obj:
        raise HintError(f"{where}.id is missing")
    value = obj["id"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise HintError(f"{where}.id must be a positive integer, got {_describe(value)}")
    if value < 1:
        raise HintError(f"{where}.id must be a positive integer, got {value}")
    return value


def _number_string(obj: dict[str, object], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise HintError(f"{where}.{key} must be a string, got {_describe(value)}")
    if not value.strip():
        raise HintError(f"{where}.{key} must not be empty")
    return value


def _customer_ref(value: object, where: str) -> CustomerRef | None:
    if value is None:
        return None
    obj = _object(value, where)
    return CustomerRef(id=_id(obj, where),
                       customer_number=_number_string(obj, "customerNumber", where))


def _project_ref(value: object, where: str) -> ProjectRef | None:
    if value is None:
        return None
    obj = _object(value, where)
    return ProjectRef(id=_id(obj, where),
                      project_number=_number_string(obj, "projectNumber", where))


def _invoice_number(obj: dict[str, object]) -> int | None:
    value = obj.get("invoiceNumber")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise HintError(f"invoice.invoiceNumber must be a positive integer, got {_describe(value)}")
    if value < 1:
        raise HintError(f"invoice.invoiceNumber must be a positive integer, got {value}")
    return value


def decode_hint(body: bytes) -> Hint:
    """Decode one Moment webhook hint strictly, or raise :class:`HintError` saying why.

    Accepted: a JSON object with a non-empty string ``event`` and exactly one of ``customer``,
    ``project`` or ``invoice``, itself an object with a positive integer ``id``; nested
    ``customer``/``project`` references are objects with a positive integer ``id`` or null;
    ``customerNumber``/``projectNumber`` are non-empty strings when present and
    ``invoiceNumber`` a positive integer when present. Unknown fields inside the object are
    ignored (Moment may add some); unknown top-level keys are unknown object kinds and refused.
    """
    try:
        data = strictjson.loads(body, what="a hint")
    except strictjson.BodyError as exc:
        raise HintError(str(exc)) from None
    top = _object(data, "body")
    if "event" not in top:
        raise HintError("event is missing")
    event = top["event"]
    if not isinstance(event, str):
        raise HintError(f"event must be a string, got {_describe(event)}")
    if not event.strip() or len(event) > HINT_EVENT_MAX:
        raise HintError(f"event must be a non-empty string of at most {HINT_EVENT_MAX} characters")
    kinds = [key for key in top if key != "event"]
    unknown = [key for key in kinds if key not in ev.KINDS]
    if unknown:
        raise HintError(f"unknown object kind {unknown[0]!r}; expected one of "
                        f"{', '.join(ev.KINDS)}")
    if not kinds:
        raise HintError("no object in the hint; expected one of customer, project, invoice")
    if len(kinds) > 1:
        raise HintError(f"more than one object kind in one hint: {', '.join(kinds)}")
    kind = kinds[0]
    obj = _object(top[kind], kind)
    if kind == "customer":
        ref = _customer_ref(obj, "customer")
        assert ref is not None
        return CustomerHint(event=event, customer=ref)
    if kind == "project":
        return ProjectHint(event=event, project=ProjectHintBody(
            id=_id(obj, "project"),
            project_number=_number_string(obj, "projectNumber", "project"),
            customer=_customer_ref(obj.get("customer"), "project.customer")))
    return InvoiceHint(event=event, invoice=InvoiceHintBody(
        id=_id(obj, "invoice"),
        invoice_number=_invoice_number(obj),
        customer=_customer_ref(obj.get("customer"), "invoice.customer"),
        project=_project_ref(obj.get("project"), "invoice.project")))
