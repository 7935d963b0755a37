"""Validation of journalsapi draft entries in the fake e-conomic, as e-conomic refuses them.

REFERENCE.md section 10 item 18: required fields, entry type, journal, currency, a date in an
open accounting year, a voucher number within the journal's bounds, an existing customer or
supplier (or an account), existing accounts and VAT codes, text of at most 250 characters, a
numeric ``customerInvoiceNumber``, and a project the module allows, that exists, is open and is
not a main project. Answers the record to store or the errors as ``(property, errorCode,
message)``; never changes the agreement. Imports no client code.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from daemon.sandbox.economic_state import Agreement, Record

Err = tuple[str, str, str]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _day(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    try:
        dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return v[:10]


def validate(a: Agreement, e: Any, at: str = "") -> tuple[Record | None, list[Err]]:
    """One draft entry to store (without entry/voucher number when absent), or its errors."""
    errs: list[Err] = []

    def err(prop: str, code: str, msg: str) -> None:
        errs.append((at + prop, code, msg))

    if not isinstance(e, dict):
        err("", "InvalidRequestBody", "An entry must be a JSON object.")
        return None, errs
    for prop in ("amount", "currency", "date", "entryTypeNumber", "journalNumber"):
        if e.get(prop) is None:
            err(prop, "InvalidValue", f"The {prop} field is required.")
    if errs:
        return None, errs
    if not _is_num(e["amount"]):
        err("amount", "InvalidValue", "The amount field must be a number.")
    if e["entryTypeNumber"] not in (2, 3, 4, 5, 10):
        err("entryTypeNumber", "JournalEntryTypeNotCorrect",
            "Entry type must be 2, 3, 4, 5 or 10.")
    journal = a.journals.get(e["journalNumber"]) if isinstance(e["journalNumber"], int) else None
    if journal is None:
        err("journalNumber", "JournalDoesNotExist", "The journal does not exist.")
    if not isinstance(e["currency"], str) or e["currency"].upper() not in a.currencies:
        err("currency", "JournalEntryCurrencyNotFound", "The currency does not exist.")
    day = _day(e["date"])
    year = a.year_for(day) if day else None
    if day is None:
        err("date", "InvalidValue", "The date field is not a valid date-time.")
    elif year is None:
        err("date", "JournalEntryDateAccountingYearDoesNotExist",
            "No accounting year covers the entry's date.")
    elif year.get("closed"):
        err("date", "JournalEntryDateAccountingYearClosed", "The accounting year is closed.")
    if e.get("dueDate") is not None and _day(e["dueDate"]) is None:
        err("dueDate", "InvalidValue", "The dueDate field is not a valid date-time.")
    v = e.get("voucherNumber")
    if v is not None and journal is not None:
        b = journal["settings"]["voucherNumbers"]
        lo, hi = b["minimumVoucherNumber"], b["maximumVoucherNumber"]
        if not isinstance(v, int) or not lo <= v <= hi:
            err("voucherNumber", "JournalEntryVoucherNumberNotWithinBoundaries",
                "The voucher number is not within the journal's voucher number range.")
    cust = e.get("customerNumber")
    if cust is not None and cust not in a.customers:
        err("customerNumber", "JournalEntryCustomerNotFound", "The customer does not exist.")
    if e["entryTypeNumber"] == 10 and cust is None and e.get("accountNumber") is None:
        err("customerNumber", "JournalEntryCustomerAndAccountNotSet",
            "A customer or an account is required.")
    supp = e.get("supplierNumber")
    if supp is not None and supp not in a.suppliers:
        err("supplierNumber", "JournalEntrySupplierNotFound", "The supplier does not exist.")
    if e["entryTypeNumber"] == 3 and supp is None and e.get("accountNumber") is None:
        err("supplierNumber", "JournalEntrySupplierAndAccountNotSet",
            "A supplier or an account is required.")
    sinv = e.get("supplierInvoiceNumber")
    if sinv is not None and (not isinstance(sinv, str) or len(sinv) > 30):
        err("supplierInvoiceNumber", "JournalEntrySupplierInvoiceTooBig",
            "The supplier invoice number can be at most 30 characters.")
    for prop, code in (("accountNumber", "JournalEntryAccountNotFound"),
                       ("contraAccountNumber", "JournalEntryContraAccountNotFound")):
        if e.get(prop) is not None and e[prop] not in a.accounts:
            err(prop, code, f"Account {e[prop]} does not exist.")
    for prop in ("vatCode", "contraVatCode"):
        if e.get(prop) is not None and e[prop] not in a.vat_accounts:
            err(prop, "JournalEntryVatCodeNotFound", f"VAT code {e[prop]} does not exist.")
    text = e.get("text")
    if text is not None and (not isinstance(text, str) or len(text) > 250):
        err("text", "JournalEntryTextTooLong", "The text can be at most 250 characters.")
    inv = e.get("customerInvoiceNumber")
    if inv is not None:
        if not isinstance(inv, str) or not inv.isdigit():
            err("customerInvoiceNumber", "Customer_Invoice_Is_Not_Numeric",
                "The customer invoice number must be numeric.")
        elif int(inv) > 999_999_999:
            err("customerInvoiceNumber", "Customer_invoice_too_big",
                "The customer invoice number is too big.")
    proj = e.get("projectNumber")
    if proj is not None:
        p = a.projects.get(proj)
        if not a.project_module:
            err("projectNumber", "JournalEntryProjectIdSetWithoutModuleAccess",
                "Projects need the project module.")
        elif p is None:
            err("projectNumber", "JournalEntryProjectNotFound", "The project does not exist.")
        elif p.get("isClosed"):
            err("projectNumber", "JournalEntryProjectSetIsClosed", "The project is closed.")
        elif p.get("isMainProject"):
            err("projectNumber", "JournalEntryProjectSetIsMainProject",
                "Entries cannot be made on a main project.")
    if errs:
        return None, errs
    keep = {k: v for k, v in e.items() if k not in ("entryNumber", "objectVersion")
            and v is not None}
    keep["_year"] = year["year"] if year else None
    return keep, errs
