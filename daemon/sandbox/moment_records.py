"""The Moment sandbox's records and field rules: what one customer, project or invoice holds.

Plain mutable dataclasses owned by :class:`daemon.sandbox.moment_data.MomentData`, and the
checks that every value set through the Python API or the admin surface passes: text is text,
money is a decimal (a float is refused: Moment's money is a decimal string), dates are dates,
ids are positive integers. A check raises :class:`SandboxError` naming the field. No I/O.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Callable, Mapping
from typing import Final, Literal, TypeAlias

Json: TypeAlias = dict[str, object]
Kind: TypeAlias = Literal["customer", "project", "invoice"]
KINDS: Final[tuple[Kind, ...]] = ("customer", "project", "invoice")
CENT: Final = decimal.Decimal("0.01")
DEFAULT_VAT_RATE: Final = decimal.Decimal("0.25")


class SandboxError(ValueError):
    """An operation the sandbox refuses; the message says why (answered as 400 or 404)."""


class UnknownObject(SandboxError):
    """No object of that kind with that id."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def render_timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- field validation (shared by the Python API and the admin surface) ----------------------

def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SandboxError(f"{name} must be a non-empty string")
    return value


def _optional_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SandboxError(f"{name} must be a string or null")
    return value


def _money(name: str, value: object) -> decimal.Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise SandboxError(f"{name} must be a decimal string, not a float")
    if isinstance(value, (int, decimal.Decimal)):
        amount = decimal.Decimal(value)
    elif isinstance(value, str):
        try:
            amount = decimal.Decimal(value)
        except decimal.InvalidOperation:
            raise SandboxError(f"{name} must be a decimal string, got {value!r}") from None
    else:
        raise SandboxError(f"{name} must be a decimal string")
    if not amount.is_finite():
        raise SandboxError(f"{name} must be finite")
    return amount.quantize(CENT, rounding=decimal.ROUND_HALF_UP)


def _optional_money(name: str, value: object) -> decimal.Decimal | None:
    return None if value is None else _money(name, value)


def _date(name: str, value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        raise SandboxError(f"{name} must be a date, not a datetime")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise SandboxError(f"{name} must be a date YYYY-MM-DD, got {value!r}") from None
    raise SandboxError(f"{name} must be a date YYYY-MM-DD")


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SandboxError(f"{name} must be a positive integer")
    return value


def _optional_positive_int(name: str, value: object) -> int | None:
    return None if value is None else positive_int(name, value)


Check: TypeAlias = Callable[[str, object], object]

CUSTOMER_FIELDS: Final[Mapping[str, Check]] = {
    "customer_number": _text, "name": _text, "organization_number": _optional_text,
    "email": _optional_text, "street": _optional_text, "postal_code": _optional_text,
    "city": _optional_text, "country_code": _optional_text, "vat_code": _optional_text,
}
PROJECT_FIELDS: Final[Mapping[str, Check]] = {
    "project_number": _text, "name": _text, "customer_id": positive_int,
}
INVOICE_FIELDS: Final[Mapping[str, Check]] = {
    "customer_id": positive_int, "project_id": _optional_positive_int,
    "description": _optional_text, "invoice_date": _date, "due_date": _date,
    "currency": _text, "exchange_rate": _optional_money, "total_excluding_vat": _money,
    "total_vat": _money,
    "financial_account_number": _optional_text,
}


def checked(kind: str, fields: Mapping[str, Check], changes: Mapping[str, object]) -> Json:
    out: Json = {}
    for name, value in changes.items():
        check = fields.get(name)
        if check is None:
            raise SandboxError(f"{kind} has no field {name!r} that can be set; "
                               f"settable: {', '.join(sorted(fields))}")
        out[name] = check(name, value)
    return out


# --- records ---------------------------------------------------------------------------------

@dataclasses.dataclass
class CustomerRecord:
    id: int
    customer_number: str
    name: str
    organization_number: str | None
    email: str | None
    street: str | None
    postal_code: str | None
    city: str | None
    country_code: str | None
    vat_code: str | None
    last_modified: dt.datetime
    version: int = 1

    def ref(self) -> Json:
        return {"id": self.id, "customerNumber": self.customer_number}

    def to_json(self) -> Json:
        return {
            "id": self.id, "customerNumber": self.customer_number, "name": self.name,
            "organizationNumber": self.organization_number, "email": self.email,
            "address": {"street": self.street, "postalCode": self.postal_code,
                        "city": self.city, "countryCode": self.country_code},
            "vatCode": self.vat_code, "lastModifiedDate": render_timestamp(self.last_modified),
            "version": self.version,
        }


@dataclasses.dataclass
class ProjectRecord:
    id: int
    project_number: str
    name: str
    customer_id: int
    customer_number: str
    last_modified: dt.datetime
    version: int = 1

    def ref(self) -> Json:
        return {"id": self.id, "projectNumber": self.project_number}


@dataclasses.dataclass
class PaymentStatus:
    """An invoice's payment status as ``moment/API.md`` shows it; the default is never paid."""

    paid_amount: decimal.Decimal = decimal.Decimal("0.00")
    fully_paid: bool = False
    paid_date: dt.date | None = None
    external_id: str | None = None

    def to_json(self) -> Json:
        return {"paidAmount": str(self.paid_amount), "fullyPaid": self.fully_paid,
                "paidDate": None if self.paid_date is None else self.paid_date.isoformat(),
                "externalId": self.external_id}


def payment_status(body: object) -> PaymentStatus:
    """A ``PUT .../paymentStatus`` body as a :class:`PaymentStatus`; :class:`SandboxError`
    naming the field when it is not one (``paidAmount`` a decimal string, never negative)."""
    if not isinstance(body, dict):
        raise SandboxError("body must be a JSON object")
    unknown = set(body) - {"paidAmount", "fullyPaid", "paidDate", "externalId"}
    if unknown:
        raise SandboxError(f"paymentStatus has no field {sorted(unknown)[0]!r}")
    if not isinstance(body.get("paidAmount"), str):
        raise SandboxError("paidAmount must be a decimal string")
    paid = _money("paidAmount", body["paidAmount"])
    if paid < 0:
        raise SandboxError(f"paidAmount must not be negative, got {body['paidAmount']!r}")
    fully = body.get("fullyPaid")
    if not isinstance(fully, bool):
        raise SandboxError("fullyPaid must be true or false")
    day = body.get("paidDate")
    return PaymentStatus(paid_amount=paid, fully_paid=fully,
                         paid_date=None if day is None else _date("paidDate", day),
                         external_id=_optional_text("externalId", body.get("externalId")))


@dataclasses.dataclass
class InvoiceRecord:
    id: int
    status: Literal["DRAFT", "FINALIZED", "CREDITED"]
    invoice_number: int | None
    is_credit_note: bool
    credited_invoice_number: int | None
    description: str | None
    invoice_date: dt.date
    due_date: dt.date
    currency: str
    total_excluding_vat: decimal.Decimal
    total_vat: decimal.Decimal
    financial_account_number: str | None
    customer_id: int
    customer_number: str
    project_id: int | None
    project_number: str | None
    finalized: dt.datetime | None
    last_modified: dt.datetime
    version: int = 1
    #: DKK per 100 units of ``currency`` (Moment sets it when the currency is not DKK).
    exchange_rate: decimal.Decimal | None = None
    #: Set through ``PUT .../paymentStatus`` (by the daemon, from e-conomic).
    payment: PaymentStatus = dataclasses.field(default_factory=PaymentStatus)

    @property
    def total_including_vat(self) -> decimal.Decimal:
        return self.total_excluding_vat + self.total_vat


@dataclasses.dataclass
class ExpenseRecord:
    id: int
    body: Json
