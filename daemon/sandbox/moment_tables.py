"""The Moment sandbox's tables: one company's customers, projects, invoices and expenses, the
indexes kept in step with them, and how they are read: rendered in exactly the JSON shapes of
``../shared/moment/API.md``, selected by ``lastModifiedDate``, and told as thin webhook hints.

:class:`Tables` holds the state and the bookkeeping every operation shares (ids, numbers, the
save stamp, the hint to the listeners); the operations a person performs in Moment are in
:mod:`daemon.sandbox.moment_data`, which keeps the invariants its docstring lists. Nothing here
changes an object's fields or knows about HTTP.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Callable, Mapping
from typing import TypeAlias

from daemon.sandbox.moment_records import (
    CustomerRecord,
    ExpenseRecord,
    InvoiceRecord,
    Json,
    Kind,
    ProjectRecord,
    SandboxError,
    UnknownObject,
    render_timestamp,
    utc_now,
)

# --- the company's tables ------------------------------------------------------------------

Listener: TypeAlias = Callable[[Json], None]


class Tables:
    """One Moment company's objects and their indexes, as the API reads them."""

    def __init__(self, *, now: Callable[[], dt.datetime] = utc_now, first_id: int = 1001,
                 first_invoice_number: int = 1) -> None:
        self._now = now
        self._next_id = first_id
        self._next_invoice_number = first_invoice_number
        self.customers: dict[int, CustomerRecord] = {}
        self.projects: dict[int, ProjectRecord] = {}
        self.invoices: dict[int, InvoiceRecord] = {}
        self.expenses: dict[int, ExpenseRecord] = {}
        self.listeners: list[Listener] = []
        # Indexes kept in step with the tables, so that sample data of thousands stays fast.
        self._customer_numbers: dict[str, int] = {}
        self._project_numbers: dict[str, int] = {}
        self._invoice_numbers: collections.Counter[int] = collections.Counter()
        self._number_hints = {"customer": 10001, "project": 1}

    # reading -----------------------------------------------------------------------------

    def render(self, kind: Kind, moment_id: int) -> Json:
        """The object as the API serves it; :class:`UnknownObject` when there is none."""
        if kind == "customer":
            return self._customer(moment_id).to_json()
        if kind == "project":
            return self._project_json(self._project(moment_id))
        return self._invoice_json(self._invoice(moment_id))

    def select(self, kind: Kind, *, modified_from: dt.datetime | None = None,
               modified_to: dt.datetime | None = None, descending: bool = False) -> list[int]:
        """Ids of the objects with ``from <= lastModifiedDate < to``, sorted by id."""
        table: Mapping[int, CustomerRecord | ProjectRecord | InvoiceRecord]
        if kind == "customer":
            table = self.customers
        elif kind == "project":
            table = self.projects
        else:
            table = self.invoices
        ids = sorted(table, reverse=descending)
        return [i for i in ids
                if (modified_from is None or table[i].last_modified >= modified_from)
                and (modified_to is None or table[i].last_modified < modified_to)]

    def hint(self, kind: Kind, moment_id: int, event: str) -> Json:
        """The thin webhook hint Moment sends for this object (ids and numbers only)."""
        if kind == "customer":
            return {"event": event, "customer": self._customer(moment_id).ref()}
        if kind == "project":
            project = self._project(moment_id)
            return {"event": event, "project": {**project.ref(),
                                                "customer": self._customer_ref(project)}}
        invoice = self._invoice(moment_id)
        body: Json = {"id": invoice.id}
        if invoice.invoice_number is not None:
            body["invoiceNumber"] = invoice.invoice_number
        body["customer"] = self._customer_ref(invoice)
        body["project"] = self._project_ref(invoice)
        return {"event": event, "invoice": body}

    # internals ---------------------------------------------------------------------------

    def _project_json(self, record: ProjectRecord) -> Json:
        return {"id": record.id, "projectNumber": record.project_number, "name": record.name,
                "customer": self._customer_ref(record),
                "lastModifiedDate": render_timestamp(record.last_modified),
                "version": record.version}

    def _invoice_json(self, record: InvoiceRecord) -> Json:
        return {
            "id": record.id, "invoiceNumber": record.invoice_number, "status": record.status,
            "isCreditNote": record.is_credit_note,
            "creditedInvoiceNumber": record.credited_invoice_number,
            "description": record.description, "invoiceDate": record.invoice_date.isoformat(),
            "dueDate": record.due_date.isoformat(), "currency": record.currency,
            "exchangeRate": None if record.exchange_rate is None else str(record.exchange_rate),
            "totalExcludingVat": str(record.total_excluding_vat),
            "totalVat": str(record.total_vat),
            "totalIncludingVat": str(record.total_including_vat),
            "financialAccountNumber": record.financial_account_number,
            "customer": self._customer_ref(record), "project": self._project_ref(record),
            "finalizedDate": None if record.finalized is None else render_timestamp(
                record.finalized),
            "lastModifiedDate": render_timestamp(record.last_modified), "version": record.version,
        }

    def _customer_ref(self, record: ProjectRecord | InvoiceRecord) -> Json:
        customer = self.customers.get(record.customer_id)
        number = record.customer_number if customer is None else customer.customer_number
        return {"id": record.customer_id, "customerNumber": number}

    def _project_ref(self, record: InvoiceRecord) -> Json | None:
        if record.project_id is None:
            return None
        project = self.projects.get(record.project_id)
        number = record.project_number if project is None else project.project_number
        return {"id": record.project_id, "projectNumber": number}

    def _customer(self, moment_id: int) -> CustomerRecord:
        try:
            return self.customers[moment_id]
        except KeyError:
            raise UnknownObject(f"no customer with id {moment_id}") from None

    def _project(self, moment_id: int) -> ProjectRecord:
        try:
            return self.projects[moment_id]
        except KeyError:
            raise UnknownObject(f"no project with id {moment_id}") from None

    def _invoice(self, moment_id: int) -> InvoiceRecord:
        try:
            return self.invoices[moment_id]
        except KeyError:
            raise UnknownObject(f"no invoice with id {moment_id}") from None

    def _optional_project(self, value: object) -> ProjectRecord | None:
        return None if value is None else self._project(int(str(value)))

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _stamp(self) -> dt.datetime:
        return self._now().astimezone(dt.UTC).replace(microsecond=0)

    def _saved(self, record: CustomerRecord | ProjectRecord | InvoiceRecord) -> None:
        record.version += 1
        record.last_modified = self._stamp()

    def _free_customer_number(self) -> str:
        return self._free_number("customer", self._customer_numbers)

    def _free_project_number(self) -> str:
        return self._free_number("project", self._project_numbers)

    def _free_number(self, kind: str, taken: Mapping[str, int]) -> str:
        """The lowest unused number from the last one handed out (numbers are not reused)."""
        number = self._number_hints[kind]
        while str(number) in taken:
            number += 1
        self._number_hints[kind] = number + 1
        return str(number)

    def _unique_customer_number(self, number: str, own_id: int | None) -> None:
        if self._customer_numbers.get(number, own_id) != own_id:
            raise SandboxError(f"customer number {number} is already used")

    def _unique_project_number(self, number: str, own_id: int | None) -> None:
        if self._project_numbers.get(number, own_id) != own_id:
            raise SandboxError(f"project number {number} is already used")

    def _notify(self, kind: Kind, moment_id: int, event: str) -> None:
        hint = self.hint(kind, moment_id, event)
        for listener in list(self.listeners):
            listener(hint)
