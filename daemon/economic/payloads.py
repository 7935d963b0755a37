"""Typed payloads of the e-conomic endpoints the daemon uses, as msgspec Structs.

Names and shapes come from e-conomic's own specs (legacy JSON schemas, OpenAPI components).
Decoding ignores unknown fields, so a new field in an answer never breaks the daemon; encoding
omits ``None``/default values, because e-conomic refuses ``null`` and omits false booleans.
Structs ending in ``Write`` hold only writable fields: e-conomic's PUT replaces the whole record,
so a read record is converted to its ``Write`` form (see :func:`writable`) and written back whole.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import msgspec


class Payload(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The base of every e-conomic payload (these and the webhooks API's): unknown fields
    ignored on decode, defaults omitted on encode (so no null is sent)."""


# ---------------------------------------------------------------- legacy references ----------
class CustomerGroupRef(Payload, kw_only=True):
    customerGroupNumber: int | None = None
    self: str | None = None


class PaymentTermsRef(Payload, kw_only=True):
    paymentTermsNumber: int | None = None
    self: str | None = None


class VatZoneRef(Payload, kw_only=True):
    vatZoneNumber: int | None = None
    self: str | None = None


class LayoutRef(Payload, kw_only=True):
    layoutNumber: int | None = None
    self: str | None = None


class EmployeeRef(Payload, kw_only=True):
    employeeNumber: int | None = None
    self: str | None = None


class ContactRef(Payload, kw_only=True):
    customerContactNumber: int | None = None
    self: str | None = None


class PriceGroupRef(Payload, kw_only=True):
    priceGroupNumber: int | None = None
    self: str | None = None


class DeliveryLocationRef(Payload, kw_only=True):
    deliveryLocationNumber: int | None = None
    self: str | None = None


class AccountRef(Payload, kw_only=True):
    accountNumber: int | None = None
    self: str | None = None


class VatAccountRef(Payload, kw_only=True):
    vatCode: str | None = None
    self: str | None = None


# ---------------------------------------------------------------- legacy customers -----------
class CustomerWrite(Payload, kw_only=True):
    """Body of ``PUT /customers/{n}`` (legacy ``customers.customerNo.put.schema.json``): every
    writable property of that schema, so a read-merge-write keeps what people set (a test
    derives the list from the schema)."""

    customerNumber: int | None = None
    name: str
    currency: str
    customerGroup: CustomerGroupRef
    paymentTerms: PaymentTermsRef
    vatZone: VatZoneRef
    address: str | None = None
    city: str | None = None
    zip: str | None = None
    country: str | None = None
    email: str | None = None
    corporateIdentificationNumber: str | None = None
    pNumber: str | None = None
    ean: str | None = None
    vatNumber: str | None = None
    website: str | None = None
    telephoneAndFaxNumber: str | None = None
    mobilePhone: str | None = None
    publicEntryNumber: str | None = None
    #: money: decoded exactly from the JSON number's text, written back from its decimal string
    creditLimit: Decimal | None = None
    barred: bool = False
    eInvoicingDisabledByDefault: bool = False
    layout: LayoutRef | None = None
    salesPerson: EmployeeRef | None = None
    attention: ContactRef | None = None
    customerContact: ContactRef | None = None
    defaultDeliveryLocation: DeliveryLocationRef | None = None
    priceGroup: PriceGroupRef | None = None


class Customer(CustomerWrite, kw_only=True):
    """A customer as ``GET /customers[/n]`` answers it; ``lastUpdated`` is ``...THH:MM:SSZ``."""

    customerNumber: int
    balance: Decimal | None = None
    dueAmount: Decimal | None = None
    lastUpdated: str | None = None
    self: str | None = None


class Pagination(Payload, kw_only=True):
    skipPages: int = 0
    pageSize: int = 20
    maxPageSizeAllowed: int = 1000
    results: int = 0
    resultsWithoutFilter: int = 0
    firstPage: str | None = None
    nextPage: str | None = None
    previousPage: str | None = None
    lastPage: str | None = None


# ---------------------------------------------------------------- legacy lookups -------------
class CustomerGroup(Payload, kw_only=True):
    customerGroupNumber: int
    name: str | None = None
    account: AccountRef | None = None


class PaymentTerms(Payload, kw_only=True):
    paymentTermsNumber: int
    name: str | None = None
    paymentTermsType: str | None = None
    daysOfCredit: int | None = None


class Currency(Payload, kw_only=True):
    code: str
    name: str | None = None
    isoNumber: str | None = None


class VatZone(Payload, kw_only=True):
    vatZoneNumber: int
    name: str | None = None
    enabledForCustomer: bool = False
    enabledForSupplier: bool = False


class VatType(Payload, kw_only=True):
    vatTypeNumber: int | None = None
    name: str | None = None


class VatAccount(Payload, kw_only=True):
    vatCode: str
    name: str | None = None
    ratePercentage: float | None = None
    barred: bool = False
    vatType: VatType | None = None
    account: AccountRef | None = None
    contraAccount: AccountRef | None = None


class Account(Payload, kw_only=True):
    accountNumber: int
    name: str | None = None
    accountType: str | None = None
    barred: bool = False
    blockDirectEntries: bool = False
    debitCredit: str | None = None
    vatAccount: VatAccountRef | None = None


class AccountingYear(Payload, kw_only=True):
    year: str
    fromDate: str
    toDate: str
    closed: bool = False


class VoucherNumbers(Payload, kw_only=True):
    minimumVoucherNumber: int | None = None
    maximumVoucherNumber: int | None = None


class JournalSettings(Payload, kw_only=True):
    voucherNumbers: VoucherNumbers | None = None
    entryTypeRestrictedTo: str | None = None


class Journal(Payload, kw_only=True):
    journalNumber: int
    name: str | None = None
    settings: JournalSettings | None = None


class Module(Payload, kw_only=True):
    moduleNumber: int | None = None
    name: str | None = None


class Company(Payload, kw_only=True):
    name: str | None = None
    companyIdentificationNumber: str | None = None
    country: str | None = None


class SelfSettings(Payload, kw_only=True):
    baseCurrency: str | None = None


class Agreement(Payload, kw_only=True):
    """``GET /self``."""

    agreementNumber: int
    companyAffiliation: str | None = None
    userName: str | None = None
    company: Company | None = None
    settings: SelfSettings | None = None
    modules: list[Module] = msgspec.field(default_factory=list)


# ---------------------------------------------------------------- projectsapi v1.1.0 ---------
class ProjectWrite(Payload, kw_only=True):
    """Body of ``POST``/``PUT /Projects`` (OpenAPI ``Project`` without read-only fields)."""

    number: int | None = None
    name: str
    projectGroupNumber: int
    customerNumber: int | None = None
    isBarred: bool = False
    isMainProject: bool = False
    mainProjectNumber: int | None = None
    status: int | None = None
    description: str | None = None
    otherReference: str | None = None
    responsibleEmployeeNumber: int | None = None
    otherResponsibleEmployeeNumber: int | None = None
    departmentNumber: int | None = None
    contactPersonId: int | None = None
    deliveryLocationNumber: int | None = None
    deliveryDate: str | None = None
    closedDate: str | None = None
    fixedPrice: float | None = None
    mileage: float | None = None
    isMileageInvoiced: bool = False
    objectVersion: str | None = None


class Project(ProjectWrite, kw_only=True):
    """A project as ``GET /Projects[/n]`` answers it."""

    number: int
    isClosed: bool = False
    lastUpdated: str | None = None
    costPrice: float | None = None
    salesPrice: float | None = None
    invoicedTotal: float | None = None


class ProjectGroup(Payload, kw_only=True):
    number: int
    name: str | None = None
    type: int | None = None  # 1 internal, 2 external invoiceable, 3 external non-invoiceable
    objectVersion: str | None = None


class NumberCreated(Payload, kw_only=True):
    """``CreatedResult`` of projectsapi and documentsapi."""

    number: int


# ---------------------------------------------------------------- journalsapi v15.0.0 --------
class DraftEntryWrite(Payload, kw_only=True):
    """Body of ``POST /draft-entries`` (OpenAPI ``DraftEntry`` without read-only fields).
    ``date``/``dueDate`` are ``YYYY-MM-DDT00:00:00Z`` (the spec's ``date-time``; read-backs
    compare the date part only); ``customerInvoiceNumber`` is digits. ``amount`` is a Decimal,
    written as a JSON number from its decimal string (never a float)."""

    entryTypeNumber: int
    journalNumber: int
    date: str
    amount: Decimal
    currency: str
    voucherNumber: int | None = None
    accountNumber: int | None = None
    contraAccountNumber: int | None = None
    vatCode: str | None = None
    contraVatCode: str | None = None
    text: str | None = None
    projectNumber: int | None = None
    costTypeNumber: int | None = None
    customerNumber: int | None = None
    customerInvoiceNumber: str | None = None
    supplierNumber: int | None = None
    supplierInvoiceNumber: str | None = None
    dueDate: str | None = None
    exchangeRate: Decimal | None = None


class DraftEntry(DraftEntryWrite, kw_only=True):
    entryNumber: int
    objectVersion: str | None = None


class DraftEntries(Payload, kw_only=True):
    entries: list[DraftEntryWrite]


class DraftEntryCreated(Payload, kw_only=True):
    entryNumber: int


class DraftEntriesCreated(Payload, kw_only=True):
    entryNumbers: list[int]


class BookEntries(Payload, kw_only=True):
    entryNumbers: list[int]


# ---------------------------------------------------------------- bookedEntriesapi v4.0.0 ----
class BookedEntry(Payload, kw_only=True):
    """Amounts decode exactly from the JSON number's text into Decimal."""

    entryNumber: int
    accountNumber: int
    amount: Decimal = Decimal(0)
    amountInBaseCurrency: Decimal = Decimal(0)
    currencyCode: str | None = None
    date: str | None = None
    dueDate: str | None = None
    text: str | None = None
    type: int | None = None
    vatAccountNumber: str | None = None
    voucherNumber: int | None = None
    projectNumber: int | None = None
    customerNumber: int | None = None
    customerInvoiceNumber: int | None = None
    supplierNumber: int | None = None
    supplierInvoiceNumber: str | None = None
    remainder: Decimal | None = None


class UnreadableBookedEntry(Payload, kw_only=True):
    """A booked entry of a listing that does not decode as :class:`BookedEntry` (an amount
    that is not a number, say): its fields as they came, for the reader to name the problem.
    ``error`` is the decoder's reason."""

    entryNumber: int
    accountNumber: object = None
    amount: object = None
    currencyCode: object = None
    date: object = None
    text: object = None
    type: object = None
    vatAccountNumber: object = None
    voucherNumber: object = None
    projectNumber: object = None
    customerNumber: object = None
    customerInvoiceNumber: object = None
    error: str = ""


# ---------------------------------------------------------------- errors ---------------------
class ProblemError(Payload, kw_only=True):
    message: str | None = None
    errorCode: str | None = None
    property: str | None = None


class Problem(Payload, kw_only=True):
    """``application/problem+json`` of the OpenAPI services."""

    title: str | None = None
    status: int | None = None
    detail: str | None = None
    errorCode: str | None = None
    errors: list[ProblemError] | None = None
    traceId: str | None = None


W = TypeVar("W", bound=Payload)


def writable(record: Payload, kind: type[W]) -> W:
    """``record`` as its write form: read-only and unknown fields dropped, the rest kept."""
    return msgspec.convert(msgspec.to_builtins(record), kind)
