"""The sandbox's books over raw HTTP: the chart of accounts and VAT codes, the rows booking an
entry posts, and the bookings a person makes through the admin surface (costs on projects,
customer payments, credit notes settling invoices). Every answer is validated against the
official schemas by the ``sandbox`` fixture."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import aiohttp
import pytest

from daemon.sandbox.economic import EconomicSandbox

pytestmark = pytest.mark.anyio
YEAR = dt.datetime.now(dt.UTC).year
J = "/apis/journalsapi/v15.0.0"
B = "/apis/bookedEntriesapi/v4.0.0/booked-entries"


@pytest.fixture(autouse=True)
def _seeded(sandbox: EconomicSandbox) -> None:
    sandbox.agreement.add_customers(2)
    sandbox.agreement.add_project(1, "Havnebadet", customerNumber=1)


async def call(http: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               **kw: Any) -> tuple[int, Any]:
    async with http.request(method, path, json=body, **kw) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else None


async def raw_get(http: aiohttp.ClientSession, path: str, **kw: Any) -> str:
    async with http.get(path, **kw) as r:
        assert r.status == 200
        return await r.text()


def invoice(number: int, amount: float, **kw: Any) -> dict[str, Any]:
    return {"entryTypeNumber": 10, "journalNumber": 1, "date": f"{YEAR}-03-01T00:00:00Z",
            "amount": amount, "currency": "DKK", "customerNumber": 1,
            "customerInvoiceNumber": str(number), "contraAccountNumber": 1010,
            "text": f"Faktura {number}", **kw}


async def book(http: aiohttp.ClientSession, *entries: dict[str, Any]) -> list[int]:
    st, doc = await call(http, "POST", f"{J}/draft-entries/bulk", {"entries": list(entries)})
    assert st == 201, doc
    st, _ = await call(http, "POST", f"{J}/journals/1/bookdraftentries",
                       {"entryNumbers": doc["entryNumbers"]})
    assert st == 204
    return list(doc["entryNumbers"])


async def rows(http: aiohttp.ClientSession, flt: str) -> list[dict[str, Any]]:
    st, doc = await call(http, "GET", B, params={"filter": flt})
    assert st == 200, doc
    return list(doc["items"])


def shape(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["accountNumber"], r["amount"], r.get("vatAccountNumber"), r.get("projectNumber"))


async def test_chart_of_accounts_and_vat_codes(sandbox: EconomicSandbox,
                                               http: aiohttp.ClientSession) -> None:
    st, acc = await call(http, "GET", "/rest/accounts/1010")
    assert st == 200 and acc["vatAccount"]["vatCode"] == "U25"
    assert acc["vatAccount"]["self"].endswith("/rest/vat-accounts/U25")
    assert acc["self"].endswith("/rest/accounts/1010")
    st, acc = await call(http, "GET", "/rest/accounts/1020")
    assert st == 200 and "vatAccount" not in acc and acc["accountType"] == "profitAndLoss"
    costs = {a["accountNumber"]: a.get("vatAccount", {}).get("vatCode")
             for a in (await call(http, "GET", "/rest/accounts"))[1]["collection"]
             if a["accountType"] == "profitAndLoss" and a["debitCredit"] == "debit"}
    assert costs[2750] == costs[2800] == "I25"
    st, vat = await call(http, "GET", "/rest/vat-accounts/U25")
    assert (st, vat["ratePercentage"], vat["vatCode"]) == (200, 25.0, "U25")
    assert vat["self"].endswith("/rest/vat-accounts/U25")
    assert vat["vatType"]["name"] == "Outgoing Sales Domestic"
    st, doc = await call(http, "GET", "/rest/vat-accounts")
    rates = {v["vatCode"]: v["ratePercentage"] for v in doc["collection"]}
    assert rates == {"U25": 25.0, "UEUV": 0.0, "UEUY": 0.0, "I25": 25.0, "IEUV": 25.0,
                     "IEUY": 25.0}
    assert doc["pagination"]["results"] == 6 and doc["self"].endswith("/rest/vat-accounts")
    st, vat = await call(http, "GET", "/rest/vat-accounts/IEUY")
    assert vat["vatType"]["vatTypeNumber"] == 3 and vat["contraAccount"]["accountNumber"] == 7270
    st, doc = await call(http, "GET", "/rest/vat-accounts/X99")
    assert st == 404 and doc["errorCode"] == "E06000"
    st, doc = await call(http, "GET", "/rest/currencies/EUR")
    assert st == 200 and not any(k.startswith("_") for k in doc)


async def test_booking_an_invoice_posts_customer_revenue_and_vat_rows(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession) -> None:
    await book(http, invoice(17, 12500.0, contraVatCode="U25", projectNumber=1,
                             dueDate=f"{YEAR}-03-15T00:00:00Z"),
               invoice(18, 800.0, contraAccountNumber=1020, customerNumber=2))
    seventeen = await rows(http, "voucherNumber$eq:1")
    assert [shape(r) for r in seventeen] == [(5600, 12500.0, None, 1), (1010, -10000.0, "U25", 1),
                                             (7250, -2500.0, None, None)]
    customer, revenue, vat = seventeen
    assert (customer["customerNumber"], customer["customerInvoiceNumber"],
            customer["remainder"], customer["type"]) == (1, 17, 12500.0, 10)
    assert customer["dueDate"].startswith(f"{YEAR}-03-15")
    for r in (revenue, vat):
        assert not {"customerNumber", "customerInvoiceNumber", "remainder"} & set(r)
        assert r["type"] == 10 and r["text"] == "Faktura 17" and r["currencyCode"] == "DKK"
    numbers = [r["entryNumber"] for r in seventeen]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    # No VAT code on the contra account's side: customer and revenue rows, no VAT row.
    eighteen = await rows(http, "voucherNumber$eq:2")
    assert [shape(r) for r in eighteen] == [(5600, 800.0, None, None), (1020, -800.0, None, None)]
    # A 0 % code (EU sales of services) marks the revenue row and posts no VAT row.
    await book(http, invoice(19, 900.0, contraAccountNumber=1030, contraVatCode="UEUY"))
    assert [shape(r) for r in await rows(http, "voucherNumber$eq:3")] == [
        (5600, 900.0, None, None), (1030, -900.0, "UEUY", None)]
    # Money is a JSON number written with its two decimals, as e-conomic writes it.
    text = await raw_get(http, B, params={"filter": "voucherNumber$eq:1"})
    assert '"amount":12500.00' in text and '"amount":-2500.00' in text
    # Invoice lookups by booked entries find one row per invoice: its customer row.
    found = await rows(http, "customerInvoiceNumber$in:[17,18,20]")
    assert [(r["customerInvoiceNumber"], r["accountNumber"]) for r in found] == [
        (17, 5600), (18, 5600)]
    found = await rows(http, "customerInvoiceNumber$eq:17$and:customerNumber$eq:1")
    assert [r["entryNumber"] for r in found] == [customer["entryNumber"]]
    st, doc = await call(http, "GET", f"/rest/accounting-years/{YEAR}/entries",
                         params={"filter": "voucherNumber$eq:1"})
    legacy = doc["collection"]
    assert st == 200
    assert [(e["account"]["accountNumber"], e.get("vatAccount", {}).get("vatCode"))
            for e in legacy] == [(5600, None), (1010, "U25"), (7250, None)]
    assert legacy[0]["remainderInBaseCurrency"] == 12500.0 and legacy[0]["invoiceNumber"] == "17"


async def test_foreign_currency_rows_carry_the_base_amount(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession) -> None:
    await book(http, invoice(30, 125.0, currency="EUR", exchangeRate=745.60,
                             contraVatCode="U25"),
               invoice(31, 100.0, currency="EUR"))
    thirty = await rows(http, "voucherNumber$eq:1")
    assert [(r["currencyCode"], r["amount"], r["amountInBaseCurrency"]) for r in thirty] == [
        ("EUR", 125.0, 932.0), ("EUR", -100.0, -745.6), ("EUR", -25.0, -186.4)]
    # Without an exchange rate e-conomic uses its own (the sandbox's EUR is 746.00).
    thirty_one = await rows(http, "voucherNumber$eq:2")
    assert [r["amountInBaseCurrency"] for r in thirty_one] == [746.0, -746.0]
    st, doc = await call(http, "GET", f"/rest/accounting-years/{YEAR}/entries",
                         params={"filter": "voucherNumber$eq:1$and:customer.customerNumber$eq:1"})
    assert st == 200
    assert [e["remainderInBaseCurrency"] for e in doc["collection"]] == [932.0]


async def test_a_person_books_costs_on_projects(sandbox: EconomicSandbox,
                                                http: aiohttp.ClientSession) -> None:
    st, doc = await call(http, "POST", "/admin/supplier-invoices", {
        "amount": "1450.00", "date": f"{YEAR}-11-18", "projectNumber": 1,
        "text": "Rejse Aarhus-København", "supplierInvoiceNumber": "F-4711"})
    assert st == 201 and doc["voucherNumber"] == 1
    bill = await rows(http, "voucherNumber$eq:1")
    assert [(r["type"], *shape(r)) for r in bill] == [
        (3, 6800, -1450.0, None, None), (3, 2750, 1160.0, "I25", 1), (3, 7260, 290.0, None, None)]
    creditor = bill[0]
    assert (creditor["supplierNumber"], creditor["supplierInvoiceNumber"]) == (1, "F-4711")
    assert all(r["text"] == "Rejse Aarhus-København" for r in bill)
    assert [r["entryNumber"] for r in doc["entries"]] == [r["entryNumber"] for r in bill]
    st, doc = await call(http, "POST", "/admin/finance-vouchers", {
        "amount": 250, "date": f"{YEAR}-11-19", "accountNumber": 2800, "projectNumber": 1,
        "text": "Kontorartikler"})
    assert st == 201
    assert [(r["type"], *shape(r)) for r in await rows(http, "voucherNumber$eq:2")] == [
        (5, 5820, -250.0, None, None), (5, 2800, 200.0, "I25", 1), (5, 7260, 50.0, None, None)]
    # Reverse charge: the supplier charged no VAT; e-conomic posts it both ways.
    st, _ = await call(http, "POST", "/admin/supplier-invoices", {
        "amount": 1000, "date": f"{YEAR}-11-20", "accountNumber": 2850, "projectNumber": 1})
    assert [shape(r) for r in await rows(http, "voucherNumber$eq:3")] == [
        (6800, -1000.0, None, None), (2850, 1000.0, "IEUY", 1), (7260, 250.0, None, None),
        (7270, -250.0, None, None)]
    on_project = await rows(http, "projectNumber$eq:1")
    assert [r["accountNumber"] for r in on_project] == [2750, 2800, 2850]
    costs = await rows(http, "type$eq:3")
    assert {r["voucherNumber"] for r in costs} == {1, 3}


@pytest.mark.parametrize(("body", "says"), [
    ({"projectNumber": 9}, "The project does not exist."),
    ({"amount": "12,50"}, "amount must be a number or a decimal string"),
    ({"amount": 0}, "amount must not be 0"),
    ({"accountNumber": 5820}, "accountNumber 5820 is not a profit-and-loss account"),
    ({"vatCode": "X1"}, "vatCode 'X1' is not a VAT code"),
    ({"supplierNumber": 7}, "supplierNumber 7 is not a supplier"),
    ({"date": "18-11-2026"}, "date must be a date YYYY-MM-DD"),
    ({"date": f"{YEAR + 7}-01-01"}, "No accounting year covers the entry's date."),
])
async def test_a_refused_cost_changes_nothing(sandbox: EconomicSandbox,
                                              http: aiohttp.ClientSession,
                                              body: dict[str, Any], says: str) -> None:
    good = {"amount": "100.00", "date": f"{YEAR}-11-18", "projectNumber": 1}
    st, doc = await call(http, "POST", "/admin/supplier-invoices", {**good, **body})
    assert st == 400 and says in doc["error"]
    assert sandbox.agreement.booked_entries == {} and sandbox.agreement.draft_entries == {}


async def test_a_closed_project_takes_no_cost(sandbox: EconomicSandbox,
                                              http: aiohttp.ClientSession) -> None:
    sandbox.agreement.edit_project(1, {"isClosed": True})
    st, doc = await call(http, "POST", "/admin/finance-vouchers", {
        "amount": "100.00", "date": f"{YEAR}-11-18", "projectNumber": 1})
    assert st == 400 and "The project is closed." in doc["error"]
    assert sandbox.agreement.booked_entries == {}


async def test_payments_lower_an_invoices_remainder(sandbox: EconomicSandbox,
                                                    http: aiohttp.ClientSession) -> None:
    await book(http, invoice(17, 12500.0, contraVatCode="U25"), invoice(18, 1000.0))

    async def remainder(number: int) -> float:
        found = await rows(http, f"customerInvoiceNumber$eq:{number}")
        assert len(found) == 1
        return float(found[0]["remainder"])

    pay = {"customerNumber": 1, "customerInvoiceNumber": 17, "date": f"{YEAR}-03-20"}
    st, doc = await call(http, "POST", "/admin/customer-payments", {**pay, "amount": 5000})
    assert st == 201 and await remainder(17) == 7500.0
    payment = await rows(http, f"voucherNumber$eq:{doc['voucherNumber']}")
    assert [(r["type"], r["accountNumber"], r["amount"], r.get("remainder"))
            for r in payment] == [(2, 5600, -5000.0, 0.0), (2, 5820, 5000.0, None)]
    assert "customerInvoiceNumber" not in payment[0] and payment[0]["customerNumber"] == 1
    st, _ = await call(http, "POST", "/admin/customer-payments", {**pay, "amount": "7500.00"})
    assert st == 201 and await remainder(17) == 0.0
    before = dict(sandbox.agreement.booked_entries)
    st, doc = await call(http, "POST", "/admin/customer-payments", {**pay, "amount": 1})
    assert st == 400 and "is settled: its remainder is 0.00" in doc["error"]
    st, doc = await call(http, "POST", "/admin/customer-payments",
                         {**pay, "customerInvoiceNumber": 18, "amount": -10})
    assert st == 400 and "wrong sign" in doc["error"]
    st, doc = await call(http, "POST", "/admin/customer-payments",
                         {**pay, "customerNumber": 2, "amount": 10})
    assert st == 400 and doc["error"] == "customer 2 has no booked invoice 17"
    assert sandbox.agreement.booked_entries == before and await remainder(18) == 1000.0
    # An overpayment settles the invoice; the excess stays on the payment's own row.
    st, doc = await call(http, "POST", "/admin/customer-payments",
                         {**pay, "customerInvoiceNumber": 18, "amount": 1200})
    assert st == 201 and await remainder(18) == 0.0
    assert doc["entries"][0]["remainder"] == -200.0


async def test_a_credit_note_settles_an_invoice(sandbox: EconomicSandbox,
                                                http: aiohttp.ClientSession) -> None:
    await book(http, invoice(19, 1250.0, contraVatCode="U25"),
               invoice(20, -500.0, contraVatCode="U25"),
               invoice(21, -1000.0, contraVatCode="U25"))
    note = await rows(http, "customerInvoiceNumber$eq:20")
    assert [shape(r) for r in await rows(http, f"voucherNumber$eq:{note[0]['voucherNumber']}")
            ] == [(5600, -500.0, None, None), (1010, 400.0, "U25", None),
                  (7250, 100.0, None, None)]
    settle = {"customerNumber": 1, "customerInvoiceNumber": 19}
    st, doc = await call(http, "POST", "/admin/settlements", {**settle, "creditNoteNumber": 20})
    assert st == 200 and [r["remainder"] for r in doc["entries"]] == [750.0, 0.0]
    st, doc = await call(http, "POST", "/admin/settlements", {**settle, "creditNoteNumber": 20})
    assert st == 400 and "credit note 20 has nothing left" in doc["error"]
    st, doc = await call(http, "POST", "/admin/settlements", {**settle, "creditNoteNumber": 21})
    assert st == 200 and [r["remainder"] for r in doc["entries"]] == [0.0, -250.0]
    remainders = {r["customerInvoiceNumber"]: r["remainder"]
                  for r in await rows(http, "customerInvoiceNumber$in:[19,20,21]")}
    assert remainders == {19: 0.0, 20: 0.0, 21: -250.0}


async def test_voucher_numbers_follow_drafts_that_come_and_go(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession) -> None:
    a = sandbox.agreement

    async def post(**kw: Any) -> tuple[int, int]:
        st, doc = await call(http, "POST", f"{J}/draft-entries", invoice(1, 10.0, **kw))
        assert st == 201, doc
        n = doc["entryNumber"]
        return n, a.draft_entries[n]["voucherNumber"]

    drafts = [await post() for _ in range(3)]
    assert [v for _, v in drafts] == [1, 2, 3]
    assert (await call(http, "DELETE", f"{J}/draft-entries/{drafts[2][0]}"))[0] == 204
    assert (await post())[1] == 3  # the highest was freed: it is handed out again
    assert (await call(http, "DELETE", f"{J}/draft-entries/{drafts[1][0]}"))[0] == 204
    assert (await post())[1] == 4  # a gap below the highest is not filled
    assert (await post(voucherNumber=2))[1] == 2
    await call(http, "POST", f"{J}/journals/1/bookdraftentries",
               {"entryNumbers": sorted(a.draft_entries)})
    assert a.draft_entries == {} and a.vouchers_in(str(YEAR)) == {1, 2, 3, 4}
    st, doc = await call(http, "POST", "/admin/finance-vouchers", {
        "amount": 100, "date": f"{YEAR}-03-02", "projectNumber": 1})
    assert (st, doc["voucherNumber"]) == (201, 5)
    assert a.voucher_exists(str(YEAR), 5) and not a.voucher_exists(str(YEAR - 1), 5)


async def test_admin_edits_a_booked_entry_as_no_one_can_in_economic(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession) -> None:
    await book(http, invoice(17, 1000.0))
    [row] = await rows(http, "customerInvoiceNumber$eq:17")
    n = row["entryNumber"]
    st, doc = await call(http, "PATCH", f"/admin/booked-entries/{n}",
                         {"amount": "1250.00", "date": f"{YEAR}-03-02", "customerNumber": 2})
    assert st == 200, doc
    [row] = await rows(http, "customerInvoiceNumber$eq:17")
    assert (row["amount"], row["date"][:10], row["customerNumber"]) == (
        1250.0, f"{YEAR}-03-02", 2)
    before = dict(sandbox.agreement.booked_entries[n])
    st, doc = await call(http, "PATCH", f"/admin/booked-entries/{n}", {"text": "other"})
    assert st == 400 and "not text" in doc["error"]
    st, doc = await call(http, "PATCH", f"/admin/booked-entries/{n}",
                         {"amount": 5, "customerNumber": 99})
    assert st == 400 and "not a customer" in doc["error"]
    st, doc = await call(http, "PATCH", f"/admin/booked-entries/{n}",
                         {"amount": 5, "vatAccountNumber": "X99"})
    assert st == 400 and "not a VAT code" in doc["error"]
    st, doc = await call(http, "PATCH", "/admin/booked-entries/9999", {"amount": 1})
    assert st == 400 and doc["error"] == "no booked entry 9999"
    assert sandbox.agreement.booked_entries[n] == before
