"""The Moment sandbox's project expenses and invoice payment status over raw HTTP, as
``moment/API.md`` describes them, faults included."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from daemon.sandbox import moment as moment_sandbox
from tests.moment.conftest import API_KEY

pytestmark = pytest.mark.anyio
AUTH = {"Authorization": "Basic " + base64.b64encode(f"apikey:{API_KEY}".encode()).decode()}


@pytest.fixture
async def http(sandbox: moment_sandbox.MomentSandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"{sandbox.api_url}/companies/acme/", headers=AUTH) as s:
        yield s


async def call(http: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               **kw: Any) -> tuple[int, Any, dict[str, str]]:
    async with http.request(method, path, json=body, **kw) as r:
        return r.status, await r.json(content_type=None), dict(r.headers)


def expense(external_id: str, project: str = "1", **kw: Any) -> dict[str, Any]:
    return {"externalId": external_id, "project": {"projectNumber": project},
            "description": "Rejse Aarhus-København", "amountIncludingVat": "1450.00",
            "currency": "DKK", "date": "2026-11-18", "costType": "Rejser", **kw}


async def test_project_expenses(sandbox: moment_sandbox.MomentSandbox,
                                http: aiohttp.ClientSession) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    for number in ("1", "2"):
        sandbox.add_project(name=f"P{number}", customer_id=customer.id, project_number=number)
    st, first, _ = await call(http, "POST", "projectExpenses", expense("economic:2026:entry:1"))
    assert st == 201 and first == {**expense("economic:2026:entry:1"), "id": first["id"]}
    # Moment does not refuse a repeated externalId: a second expense is stored.
    st, again, _ = await call(http, "POST", "projectExpenses", expense("economic:2026:entry:1"))
    assert st == 201 and again["id"] != first["id"]
    for n in range(2, 5):
        await call(http, "POST", "projectExpenses", expense(f"economic:2026:entry:{n}", "2"))
    st, page, _ = await call(http, "GET", "projectExpenses",
                             params={"externalId": "economic:2026:entry:1"})
    assert page == {"content": [first, again], "page": {"totalElements": 2}}
    st, page, _ = await call(http, "GET", "projectExpenses",
                             params={"externalId": "economic:2026:entry:99"})
    assert (st, page) == (200, {"content": [], "page": {"totalElements": 0}})
    st, page, _ = await call(http, "GET", "projectExpenses",
                             params={"project.projectNumber": "2", "size": "2", "page": "2"})
    assert [e["externalId"] for e in page["content"]] == ["economic:2026:entry:4"]
    assert page["page"] == {"totalElements": 3}
    st, page, _ = await call(http, "GET", "projectExpenses", params={
        "project.projectNumber": "2", "externalId": "economic:2026:entry:1"})
    assert page["page"] == {"totalElements": 0}
    st, page, _ = await call(http, "GET", "projectExpenses", params={"size": "101"})
    assert st == 400 and "size must be 1..100" in page["message"]
    assert len(sandbox.expenses) == 5


@pytest.mark.parametrize(("body", "says"), [
    (expense("x", project="9"), "no project with projectNumber '9'"),
    (expense("x", amountIncludingVat="14,50"), "amountIncludingVat must be a decimal string"),
    (expense("x", amountIncludingVat=1450.0), "amountIncludingVat must be a decimal string"),
    (expense("x", date="18-11-2026"), "date must be a date YYYY-MM-DD"),
    ({"externalId": "x"}, "description must be a non-empty string"),
])
async def test_a_refused_expense_is_400_with_a_message_and_stores_nothing(
        sandbox: moment_sandbox.MomentSandbox, http: aiohttp.ClientSession,
        body: dict[str, Any], says: str) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    sandbox.add_project(name="P1", customer_id=customer.id, project_number="1")
    st, doc, _ = await call(http, "POST", "projectExpenses", body)
    assert st == 400 and says in doc["message"] and sandbox.expenses == {}


async def test_payment_status(sandbox: moment_sandbox.MomentSandbox,
                              http: aiohttp.ClientSession) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    invoice = sandbox.add_invoice(customer_id=customer.id, total_excluding_vat="10000.00",
                                  finalize=True)
    draft = sandbox.add_invoice(customer_id=customer.id, total_excluding_vat="10.00")
    version = invoice.version
    path = f"invoices/{invoice.id}/paymentStatus"
    st, doc, _ = await call(http, "GET", path)
    assert (st, doc) == (200, {"paidAmount": "0.00", "fullyPaid": False, "paidDate": None,
                               "externalId": None})
    partial = {"paidAmount": "5000.00", "fullyPaid": False, "paidDate": "2026-11-28",
               "externalId": "economic:2026:invoice:1"}
    for _ in range(2):  # idempotent: the same body twice is one state
        st, doc, _ = await call(http, "PUT", path, partial)
        assert (st, doc) == (200, partial)
    assert (await call(http, "GET", path))[1] == partial
    paid = {**partial, "paidAmount": "12500.00", "fullyPaid": True, "paidDate": "2026-12-01"}
    assert (await call(http, "PUT", path, paid))[1] == paid
    # Not a change of the invoice itself: same version, no hint.
    assert sandbox.invoices[invoice.id].version == version
    for bad, says in (({**paid, "paidAmount": "-1.00"}, "must not be negative"),
                      ({**paid, "paidAmount": 12500.0}, "paidAmount must be a decimal string"),
                      ({**paid, "fullyPaid": "yes"}, "fullyPaid must be true or false"),
                      ({**paid, "paidDate": "1/12/2026"}, "paidDate must be a date"),
                      ({**paid, "paid": True}, "no field 'paid'")):
        st, doc, _ = await call(http, "PUT", path, bad)
        assert st == 400 and says in doc["message"]
    assert (await call(http, "GET", path))[1] == paid
    st, doc, _ = await call(http, "PUT", f"invoices/{draft.id}/paymentStatus", paid)
    assert st == 409 and "draft" in doc["message"]
    assert (await call(http, "GET", "invoices/99999/paymentStatus"))[0] == 404
    # A credit note starts unpaid; its paidAmount is the amount settled, never negative.
    note = sandbox.credit_invoice(invoice.id)
    st, doc, _ = await call(http, "GET", f"invoices/{note.id}/paymentStatus")
    assert doc["paidAmount"] == "0.00"
    st, doc, _ = await call(http, "PUT", f"invoices/{note.id}/paymentStatus",
                            {**paid, "externalId": "economic:2026:invoice:2"})
    assert st == 200 and doc["paidAmount"] == "12500.00"


async def test_faults_apply_to_expenses_and_payment_status(
        sandbox: moment_sandbox.MomentSandbox, http: aiohttp.ClientSession) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    sandbox.add_project(name="P1", customer_id=customer.id, project_number="1")
    invoice = sandbox.add_invoice(customer_id=customer.id, total_excluding_vat="8.00",
                                  finalize=True)
    sandbox.faults.add(429, retry_after=7, path_contains="/projectExpenses", method="POST")
    sandbox.faults.add(503, path_contains="/paymentStatus")
    st, _, headers = await call(http, "POST", "projectExpenses", expense("e1"))
    assert st == 429 and headers["Retry-After"] == "7" and sandbox.expenses == {}
    st, _, _ = await call(http, "GET", f"invoices/{invoice.id}/paymentStatus")
    assert st == 503
    assert (await call(http, "POST", "projectExpenses", expense("e1")))[0] == 201
    assert (await call(http, "GET", f"invoices/{invoice.id}/paymentStatus"))[0] == 200
    assert [(r.method, r.status) for r in sandbox.requests] == [
        ("POST", 429), ("GET", 503), ("POST", 201), ("GET", 200)]


async def test_commit_then_drop_keeps_the_expense_but_loses_the_answer(
        sandbox: moment_sandbox.MomentSandbox, http: aiohttp.ClientSession) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    sandbox.add_project(name="P1", customer_id=customer.id, project_number="1")
    async with aiohttp.ClientSession() as admin, admin.post(f"{sandbox.admin_url}/faults", json={
            "drop": True, "pathContains": "/projectExpenses", "method": "POST"}) as r:
        assert r.status == 201 and (await r.json())["drop"] is True
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(http, "POST", "projectExpenses", expense("economic:2026:entry:7"))
    assert [e.body["externalId"] for e in sandbox.expenses.values()] == [
        "economic:2026:entry:7"]
    st, page, _ = await call(http, "GET", "projectExpenses",
                             params={"externalId": "economic:2026:entry:7"})
    assert st == 200 and page["page"] == {"totalElements": 1}
    assert [(r.method, r.status) for r in sandbox.requests] == [("POST", 201), ("GET", 200)]
    with pytest.raises(ValueError, match="drop fault has no status"):
        sandbox.faults.add(503, drop=True)
