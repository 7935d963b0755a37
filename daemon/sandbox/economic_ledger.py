"""Legacy ``GET /rest/accounting-years/{year}/entries``: the booked entries of a year in the
legacy shape, so a person (or a check) can see what booking posted. Read-only; the entries are
the same records bookedEntriesapi serves, so both views always agree."""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from aiohttp import web

from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_filters import Field
from daemon.sandbox.economic_legacy import base_url, page
from daemon.sandbox.economic_state import Agreement, Record

CENT = Decimal("0.01")
# e-conomic's legacy names for the journalsapi entry types the sandbox books.
ENTRY_TYPES = {2: "customerPayment", 3: "supplierInvoice", 4: "supplierPayment",
               5: "financeVoucher", 10: "manualDebtorInvoice"}
FILTERABLE = {"account.accountNumber": Field("int"), "amount": Field("float"),
              "amountInBaseCurrency": Field("float"), "currency": Field("str"),
              "date": Field("date"), "dueDate": Field("date"), "entryNumber": Field("int"),
              "text": Field("str"), "entryType": Field("str"),
              "customer.customerNumber": Field("int"), "project.projectNumber": Field("int"),
              "supplier.supplierNumber": Field("int"), "vatAccount.vatCode": Field("str"),
              "voucherNumber": Field("int"), "remainder": Field("float")}


def legacy_entry(e: Record, base: str, year: str) -> Record:
    out: Record = {
        "account": {"accountNumber": e["accountNumber"],
                    "self": f"{base}/accounts/{e['accountNumber']}"},
        "amount": e["amount"], "amountInBaseCurrency": e["amountInBaseCurrency"],
        "currency": e["currencyCode"], "date": e["date"][:10], "entryNumber": e["entryNumber"],
        "entryType": ENTRY_TYPES.get(e["type"], "financeVoucher"),
        "voucherNumber": e["voucherNumber"],
        "self": f"{base}/accounting-years/{year}/entries/{e['entryNumber']}"}
    if e.get("dueDate"):
        out["dueDate"] = e["dueDate"][:10]
    if e.get("text"):
        out["text"] = e["text"]
    if e.get("customerNumber") is not None:
        out["customer"] = {"customerNumber": e["customerNumber"],
                           "self": f"{base}/customers/{e['customerNumber']}"}
    if e.get("customerInvoiceNumber") is not None:
        out["invoiceNumber"] = str(e["customerInvoiceNumber"])
    if e.get("projectNumber") is not None:
        out["project"] = {"projectNumber": e["projectNumber"],
                          "self": f"{base}/projects/{e['projectNumber']}"}
    if e.get("vatAccountNumber"):
        out["vatAccount"] = {"vatCode": e["vatAccountNumber"],
                             "self": f"{base}/vat-accounts/{e['vatAccountNumber']}"}
    if e.get("supplierNumber") is not None:
        out["supplier"] = {"supplierNumber": e["supplierNumber"],
                           "self": f"{base}/suppliers/{e['supplierNumber']}"}
    if e.get("supplierInvoiceNumber") is not None:
        out["supplierInvoiceNumber"] = e["supplierInvoiceNumber"]
    if e.get("remainder") is not None:
        out["remainder"] = e["remainder"]
        out["remainderInBaseCurrency"] = (e["remainder"] * e["_rate"] / 100).quantize(
            CENT, rounding=ROUND_HALF_UP)
    return out


def routes(ctx: Callable[[web.Request], Agreement]) -> list[web.RouteDef]:
    async def entries(request: web.Request) -> web.Response:
        a = ctx(request)
        year = request.match_info["year"]
        if year not in a.accounting_years:
            return replies.legacy_error(404, "Accounting year not found.", code="E06000")
        base = base_url(request)
        recs = [legacy_entry(e, base, year) for k, e in sorted(a.booked_entries.items())
                if e.get("_year") == year]
        return page(request, f"accounting-years/{year}/entries", recs, render=lambda r: r,
                    filterable=FILTERABLE, sortable=FILTERABLE)

    return [web.get("/rest/accounting-years/{year}/entries", entries)]
