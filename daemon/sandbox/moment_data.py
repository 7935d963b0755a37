"""The Moment sandbox's company data: customers, projects, invoices, project expenses and
invoices' payment status.

An in-memory model of one Moment company, with the operations a person performs in Moment
(create, edit, finalize, credit, delete) and the reads the API serves. Its tables, and how they
render objects in exactly the JSON shapes of ``../shared/moment/API.md`` and build the thin
webhook hint for each change, are :mod:`daemon.sandbox.moment_tables`. It knows nothing about
HTTP.

Invariants:

* ids are positive, unique across all kinds, and never reused; numbers (customer, project,
  invoice) are unique within their kind (only :meth:`MomentData.force_invoice_number` breaks
  this, on purpose); numbers handed out automatically are not reused after a deletion.
* every create or change sets ``lastModifiedDate`` to the injected clock's now (whole seconds,
  UTC) and increments ``version`` (a new object has version 1); a no-op change still counts as
  a save, as in Moment.
* a draft has no invoice number; finalizing assigns the next number (or the one given); only
  drafts can be edited; crediting a finalized invoice marks it ``CREDITED`` and creates a
  finalized credit note of its own with negated totals and ``creditedInvoiceNumber`` set.
* money is held as :class:`~decimal.Decimal` with two places and rendered as a string.
* an invoice's payment status is its own resource: setting it changes neither the invoice's
  version nor its ``lastModifiedDate`` and sends no hint.
* a failed operation raises :class:`SandboxError` and leaves the data as it was.
* after each successful mutation every listener gets the webhook hint for it (event
  ``CREATE_NEW`` for a new object and for a finalized invoice, as Moment documents; ``UPDATE``
  for a change and ``DELETE`` for a deletion, which Moment does not document).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Mapping

from daemon.sandbox import moment_tables
from daemon.sandbox.moment_records import (
    CENT,
    CUSTOMER_FIELDS,
    DEFAULT_VAT_RATE,
    INVOICE_FIELDS,
    PROJECT_FIELDS,
    CustomerRecord,
    ExpenseRecord,
    InvoiceRecord,
    Json,
    PaymentStatus,
    ProjectRecord,
    SandboxError,
    checked,
    payment_status,
    positive_int,
)

# --- the company ----------------------------------------------------------------------------


class MomentData(moment_tables.Tables):
    """One Moment company's objects and what a person does with them; see the module
    docstring for the invariants (the tables and their reading are in
    :mod:`daemon.sandbox.moment_tables`)."""

    # customers ---------------------------------------------------------------------------

    def add_customer(self, *, name: str, customer_number: str | None = None,
                     organization_number: str | None = None, email: str | None = None,
                     street: str | None = None, postal_code: str | None = None,
                     city: str | None = None, country_code: str | None = "DK",
                     vat_code: str | None = "DK") -> CustomerRecord:
        return self.create_customer({
            "name": name, "customer_number": customer_number or self._free_customer_number(),
            "organization_number": organization_number, "email": email, "street": street,
            "postal_code": postal_code, "city": city, "country_code": country_code,
            "vat_code": vat_code})

    def create_customer(self, fields: Mapping[str, object]) -> CustomerRecord:
        """A new customer from snake_case ``fields`` (all of :data:`CUSTOMER_FIELDS` but
        ``customer_number`` and ``name`` optional; a missing number is the next free one)."""
        values: Json = dict.fromkeys(CUSTOMER_FIELDS)
        values.update(checked("customer", CUSTOMER_FIELDS, fields))
        if values["customer_number"] is None:
            values["customer_number"] = self._free_customer_number()
        if values["name"] is None:
            raise SandboxError("name is required")
        self._unique_customer_number(str(values["customer_number"]), None)
        record = CustomerRecord(
            id=self._take_id(), customer_number=str(values["customer_number"]),
            name=str(values["name"]),
            organization_number=_opt_str(values["organization_number"]),
            email=_opt_str(values["email"]), street=_opt_str(values["street"]),
            postal_code=_opt_str(values["postal_code"]), city=_opt_str(values["city"]),
            country_code=_opt_str(values["country_code"]),
            vat_code=_opt_str(values["vat_code"]), last_modified=self._stamp())
        self.customers[record.id] = record
        self._customer_numbers[record.customer_number] = record.id
        self._notify("customer", record.id, "CREATE_NEW")
        return record

    def change_customer(self, customer_id: int, **changes: object) -> CustomerRecord:
        record = self._customer(customer_id)
        values = checked("customer", CUSTOMER_FIELDS, changes)
        if "customer_number" in values:
            self._unique_customer_number(str(values["customer_number"]), customer_id)
        del self._customer_numbers[record.customer_number]
        for name, value in values.items():
            setattr(record, name, value)
        self._customer_numbers[record.customer_number] = record.id
        self._saved(record)
        for project in self.projects.values():
            if project.customer_id == customer_id:
                project.customer_number = record.customer_number
        self._notify("customer", customer_id, "UPDATE")
        return record

    def delete_customer(self, customer_id: int) -> None:
        record = self._customer(customer_id)
        self._notify("customer", customer_id, "DELETE")
        del self.customers[customer_id]
        del self._customer_numbers[record.customer_number]

    # projects ----------------------------------------------------------------------------

    def add_project(self, *, name: str, customer_id: int,
                    project_number: str | None = None) -> ProjectRecord:
        fields: Json = {"name": name, "customer_id": customer_id}
        if project_number is not None:
            fields["project_number"] = project_number
        return self.create_project(fields)

    def create_project(self, fields: Mapping[str, object]) -> ProjectRecord:
        values = checked("project", PROJECT_FIELDS, fields)
        if "name" not in values or "customer_id" not in values:
            raise SandboxError("a project needs name and customer_id")
        customer = self._customer(int(str(values["customer_id"])))
        number = str(values.get("project_number") or self._free_project_number())
        self._unique_project_number(number, None)
        record = ProjectRecord(id=self._take_id(), project_number=number,
                               name=str(values["name"]), customer_id=customer.id,
                               customer_number=customer.customer_number,
                               last_modified=self._stamp())
        self.projects[record.id] = record
        self._project_numbers[record.project_number] = record.id
        self._notify("project", record.id, "CREATE_NEW")
        return record

    def change_project(self, project_id: int, **changes: object) -> ProjectRecord:
        record = self._project(project_id)
        values = checked("project", PROJECT_FIELDS, changes)
        if "project_number" in values:
            self._unique_project_number(str(values["project_number"]), project_id)
        if "customer_id" in values:
            customer = self._customer(int(str(values["customer_id"])))
            record.customer_number = customer.customer_number
        del self._project_numbers[record.project_number]
        for name, value in values.items():
            setattr(record, name, value)
        self._project_numbers[record.project_number] = record.id
        self._saved(record)
        self._notify("project", project_id, "UPDATE")
        return record

    def delete_project(self, project_id: int) -> None:
        record = self._project(project_id)
        self._notify("project", project_id, "DELETE")
        del self.projects[project_id]
        del self._project_numbers[record.project_number]

    # invoices ----------------------------------------------------------------------------

    def add_invoice(self, *, customer_id: int, total_excluding_vat: decimal.Decimal | str,
                    total_vat: decimal.Decimal | str | None = None,
                    project_id: int | None = None, description: str | None = None,
                    invoice_date: dt.date | None = None, due_date: dt.date | None = None,
                    currency: str = "DKK", financial_account_number: str | None = "1010",
                    exchange_rate: decimal.Decimal | str | None = None,
                    finalize: bool = False) -> InvoiceRecord:
        """A new draft (finalized at once when ``finalize``); VAT defaults to 25 %."""
        fields: Json = {"customer_id": customer_id, "project_id": project_id,
                        "description": description, "currency": currency,
                        "total_excluding_vat": total_excluding_vat,
                        "financial_account_number": financial_account_number}
        if total_vat is not None:
            fields["total_vat"] = total_vat
        if exchange_rate is not None:
            fields["exchange_rate"] = exchange_rate
        if invoice_date is not None:
            fields["invoice_date"] = invoice_date
        if due_date is not None:
            fields["due_date"] = due_date
        record = self.create_invoice(fields)
        if finalize:
            return self.finalize_invoice(record.id)
        return record

    def create_invoice(self, fields: Mapping[str, object]) -> InvoiceRecord:
        values = checked("invoice", INVOICE_FIELDS, fields)
        if "customer_id" not in values or "total_excluding_vat" not in values:
            raise SandboxError("an invoice needs customer_id and total_excluding_vat")
        customer = self._customer(int(str(values["customer_id"])))
        project = self._optional_project(values.get("project_id"))
        excl = values["total_excluding_vat"]
        assert isinstance(excl, decimal.Decimal)
        vat = values.get("total_vat")
        if vat is None:
            vat = (excl * DEFAULT_VAT_RATE).quantize(CENT, rounding=decimal.ROUND_HALF_UP)
        assert isinstance(vat, decimal.Decimal)
        stamp = self._stamp()
        invoice_date = values.get("invoice_date") or stamp.date()
        assert isinstance(invoice_date, dt.date)
        due_date = values.get("due_date") or invoice_date + dt.timedelta(days=14)
        assert isinstance(due_date, dt.date)
        record = InvoiceRecord(
            id=self._take_id(), status="DRAFT", invoice_number=None, is_credit_note=False,
            credited_invoice_number=None, description=_opt_str(values.get("description")),
            invoice_date=invoice_date, due_date=due_date,
            currency=str(values.get("currency") or "DKK"), total_excluding_vat=excl,
            total_vat=vat, financial_account_number=_opt_str(
                values.get("financial_account_number")),
            customer_id=customer.id, customer_number=customer.customer_number,
            project_id=None if project is None else project.id,
            project_number=None if project is None else project.project_number,
            finalized=None, last_modified=stamp,
            exchange_rate=_opt_decimal(values.get("exchange_rate")))
        self.invoices[record.id] = record
        self._notify("invoice", record.id, "CREATE_NEW")
        return record

    def change_invoice(self, invoice_id: int, **changes: object) -> InvoiceRecord:
        """Edit a draft; a finalized or credited invoice cannot be edited, as in Moment."""
        record = self._invoice(invoice_id)
        if record.status != "DRAFT":
            raise SandboxError(f"invoice {invoice_id} is {record.status}; only drafts change")
        values = checked("invoice", INVOICE_FIELDS, changes)
        customer = (self._customer(int(str(values["customer_id"])))
                    if "customer_id" in values else None)
        project = self._optional_project(values.get("project_id"))
        if customer is not None:
            record.customer_number = customer.customer_number
        if "project_id" in values:
            record.project_number = None if project is None else project.project_number
        for name, value in values.items():
            setattr(record, name, value)
        self._saved(record)
        self._notify("invoice", invoice_id, "UPDATE")
        return record

    def finalize_invoice(self, invoice_id: int, *,
                         invoice_number: int | None = None) -> InvoiceRecord:
        """Finalize a draft under the next number, or ``invoice_number`` when given (a number
        already used is refused unless it is forced through :meth:`force_invoice_number`)."""
        record = self._invoice(invoice_id)
        if record.status != "DRAFT":
            raise SandboxError(f"invoice {invoice_id} is {record.status}, not a draft")
        number = self._next_invoice_number if invoice_number is None else positive_int(
            "invoice_number", invoice_number)
        if self._invoice_numbers[number] > 0:
            raise SandboxError(f"invoice number {number} is already used")
        self._finalize(record, number)
        return record

    def force_invoice_number(self, invoice_id: int, invoice_number: int) -> InvoiceRecord:
        """Finalize a draft under a number even if another invoice has it: a fault Moment
        should never show, for testing that the daemon refuses to overwrite an invoice."""
        record = self._invoice(invoice_id)
        if record.status != "DRAFT":
            raise SandboxError(f"invoice {invoice_id} is {record.status}, not a draft")
        self._finalize(record, positive_int("invoice_number", invoice_number))
        return record

    def credit_invoice(self, invoice_id: int) -> InvoiceRecord:
        """Credit a finalized invoice: it becomes ``CREDITED`` and a finalized credit note
        with negated totals is created and returned."""
        original = self._invoice(invoice_id)
        if original.status != "FINALIZED" or original.is_credit_note:
            raise SandboxError(f"invoice {invoice_id} cannot be credited: it is "
                               f"{'a credit note' if original.is_credit_note else original.status}")
        stamp = self._stamp()
        note = dataclasses.replace(
            original, id=self._take_id(), status="DRAFT", invoice_number=None,
            is_credit_note=True, credited_invoice_number=original.invoice_number,
            description=f"Credit note for invoice {original.invoice_number}",
            invoice_date=stamp.date(), due_date=stamp.date(),
            total_excluding_vat=decimal.Decimal(0) - original.total_excluding_vat,
            total_vat=decimal.Decimal(0) - original.total_vat,
            finalized=None, last_modified=stamp, version=1, payment=PaymentStatus())
        self.invoices[note.id] = note
        self._finalize(note, self._next_invoice_number, event_for_new=True)
        original.status = "CREDITED"
        self._saved(original)
        self._notify("invoice", original.id, "UPDATE")
        return note

    def delete_invoice(self, invoice_id: int) -> None:
        record = self._invoice(invoice_id)
        self._notify("invoice", invoice_id, "DELETE")
        del self.invoices[invoice_id]
        if record.invoice_number is not None:
            self._invoice_numbers[record.invoice_number] -= 1

    # expenses ----------------------------------------------------------------------------

    def add_expense(self, body: Json) -> ExpenseRecord:
        """Store a project expense posted to the API (its shape checked by the caller) on an
        existing project. A repeated ``externalId`` is stored again, as Moment does: only a
        lookup by ``externalId`` before writing keeps an expense single."""
        project = body.get("project")
        number = project.get("projectNumber") if isinstance(project, dict) else None
        if not isinstance(number, str) or number not in self._project_numbers:
            raise SandboxError(f"no project with projectNumber {number!r}")
        record = ExpenseRecord(id=self._take_id(), body={**body})
        record.body["id"] = record.id
        self.expenses[record.id] = record
        return record

    def find_expenses(self, *, external_id: str | None = None,
                      project_number: str | None = None) -> list[int]:
        """Ids of the expenses with that ``externalId`` and project number (None: any)."""
        return [i for i, e in sorted(self.expenses.items())
                if (external_id is None or e.body.get("externalId") == external_id)
                and (project_number is None or _project_number(e.body) == project_number)]

    # payment status ----------------------------------------------------------------------

    def payment_status(self, invoice_id: int) -> Json:
        """The invoice's payment status as the API shows it (never paid by default)."""
        return self._invoice(invoice_id).payment.to_json()

    def set_payment_status(self, invoice_id: int, body: object) -> Json:
        """Set it from a ``PUT`` body; the same body twice is one state. A draft has no
        payment status (:class:`SandboxError`); a bad body changes nothing."""
        record = self._invoice(invoice_id)
        if record.status == "DRAFT":
            raise SandboxError(f"invoice {invoice_id} is a draft: it cannot be paid")
        record.payment = payment_status(body)
        return record.payment.to_json()

    # internals ---------------------------------------------------------------------------

    def _finalize(self, record: InvoiceRecord, number: int, *, event_for_new: bool = False) -> None:
        record.status = "FINALIZED"
        record.invoice_number = number
        self._invoice_numbers[number] += 1
        self._next_invoice_number = max(self._next_invoice_number, number + 1)
        if event_for_new:
            record.finalized = record.last_modified
        else:
            self._saved(record)
            record.finalized = record.last_modified
        self._notify("invoice", record.id, "CREATE_NEW")

def _project_number(body: Json) -> object:
    project = body.get("project")
    return project.get("projectNumber") if isinstance(project, dict) else None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_decimal(value: object) -> decimal.Decimal | None:
    assert value is None or isinstance(value, decimal.Decimal)
    return value
