"""The sandbox behaves as REFERENCE.md section 10 says, checked over raw HTTP (no client)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import aiohttp
import pytest

from daemon.sandbox.economic import EconomicSandbox
from tests.clocks import T0, FakeClock
from tests.economic.conftest import call, limited, validate_traffic

pytestmark = pytest.mark.anyio
RAW_REQUESTS = True  # these tests send malformed bodies on purpose
YEAR = dt.datetime.now(dt.UTC).year
J = "/apis/journalsapi/v15.0.0"
D = "/apis/documentsapi/v4.0.1/AttachedDocuments"


def draft(**kw: Any) -> dict[str, Any]:
    return {"entryTypeNumber": 10, "journalNumber": 1, "date": f"{YEAR}-03-01T00:00:00Z",
            "amount": 100.0, "currency": "DKK", "customerNumber": 1,
            "contraAccountNumber": 1010, **kw}


async def test_legacy_paging_rules(sandbox: EconomicSandbox, http: aiohttp.ClientSession
                                   ) -> None:
    sandbox.agreement.add_customers(45)
    st, doc, _ = await call(http, "GET", "/rest/customers?pagesize=1001")
    assert st == 400 and doc["errorCode"] == "E04810"
    st, doc, _ = await call(http, "GET", "/rest/customers")
    assert len(doc["collection"]) == 20 and "nextPage" in doc["pagination"]
    st, doc, _ = await call(http, "GET", "/rest/customers?skippages=2")
    p = doc["pagination"]
    assert len(doc["collection"]) == 5 and "nextPage" not in p and "previousPage" in p
    st, doc, _ = await call(http, "GET", "/rest/customers?skippages=9&pagesize=10")
    assert st == 200 and doc["collection"] == [] and doc["pagination"]["results"] == 45
    validate_traffic(sandbox, requests=False)


async def test_filter_and_sort_errors(sandbox: EconomicSandbox, http: aiohttp.ClientSession
                                      ) -> None:
    many = ",".join(str(i) for i in range(201))
    st, doc, _ = await call(http, "GET", "/rest/customers", params={
        "filter": f"customerNumber$in:[{many}]"})
    assert st == 400 and "Your array has 201 values." in doc["errors"][0]
    st, doc, _ = await call(http, "GET", "/rest/customers", params={
        "filter": "customerNumber$in:1,2"})
    assert doc["errors"] == ["Syntax error, expected: ["]
    st, doc, _ = await call(http, "GET", "/rest/customers", params={"filter": "bogus$eq:1"})
    assert "customerNumber" in doc["allowedFilteringFields"]
    st, doc, _ = await call(http, "GET", "/rest/customers", params={"sort": "barred"})
    assert st == 400 and doc["message"] == "Could not parse query string sort parameter"
    st, doc, _ = await call(http, "GET", f"{J}/draft-entries", params={"filter": "text$eq:x"})
    assert st == 400 and doc["errorCode"] == "BadFilterRequest"
    validate_traffic(sandbox, requests=False)


async def test_headers_tokens_and_error_shapes(sandbox: EconomicSandbox, clock: FakeClock,
                                               http: aiohttp.ClientSession) -> None:
    sandbox.rate_limit = limited(3, 60, cost_get=1, cost_write=2)
    st, _, h = await call(http, "GET", "/rest/self")
    assert (h["X-CallCost"], h["X-RateLimiting"]) == ("1", "token-limit-3-per-60-seconds: 1/3")
    assert h["X-RequestId"]
    st, doc, h = await call(http, "GET", "/rest/customers/9")
    assert st == 404 and h["X-RateLimiting"].endswith("2/3") and doc["errorCode"] == "E06000"
    clock.advance(5)  # 3 tokens per 60 s: 0.25 drained, 1.75 in the bucket; 2 fit in 15 s
    st, doc, h = await call(http, "PUT", "/rest/customers/9", {"name": "x"})
    assert st == 429 and h["Retry-After"] == "15" and h["X-RateLimiting"].endswith("2/3")
    async with aiohttp.ClientSession(f"http://{sandbox.host}:{sandbox.port}") as anon:
        st, doc, _ = await call(anon, "GET", "/rest/self")
        assert st == 401 and doc["httpStatusCode"] == 401
        st, doc, h = await call(anon, "GET", "/apis/projectsapi/v1.1.0/Projects")
        assert st == 401 and doc["status"] == 401
        assert h["Content-Type"].startswith("application/problem+json")
    clock.advance(40)
    async with http.put("/rest/customers/9", data=b"name=x",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415
    sandbox.accept_demo_tokens = True
    demo = {"X-AppSecretToken": "demo", "X-AgreementGrantToken": "demo"}
    async with aiohttp.ClientSession(f"http://{sandbox.host}:{sandbox.port}",
                                     headers=demo) as d:
        assert (await call(d, "GET", "/rest/currencies"))[0] == 200
        assert (await call(d, "DELETE", "/rest/customers/1"))[0] == 401
    sandbox.accept_demo_tokens = False
    sandbox.rate_limit.enabled = False
    st, doc, _ = await call(http, "GET", "/rest/no-such-thing")
    assert st == 404 and doc["httpStatusCode"] == 404
    st, doc, _ = await call(http, "DELETE", "/apis/projectsapi/v1.1.0/ProjectGroups")
    assert st == 405 and doc["status"] == 405
    _, _, h = await call(http, "GET", "/rest/self")
    assert "X-RateLimiting" not in h and h["X-CallCost"] == "1"
    assert [(s.status, s.at - T0) for s in sandbox.served] == [
        (200, 0), (404, 0), (429, 5), (401, 5), (401, 5), (415, 45), (200, 45), (401, 45),
        (404, 45), (405, 45), (200, 45)]


async def test_customer_validation(sandbox: EconomicSandbox, http: aiohttp.ClientSession
                                   ) -> None:
    ok = {"name": "N", "currency": "DKK", "customerGroup": {"self": "http://x/customer-groups/1"},
          "paymentTerms": {"paymentTermsNumber": 1}, "vatZone": {"vatZoneNumber": 1},
          "balance": 99, "unknownProperty": 1}
    st, doc, h = await call(http, "POST", "/rest/customers", ok)
    assert st == 201 and doc["customerNumber"] == 1 and h["Location"].endswith("/customers/1")
    assert "balance" not in sandbox.agreement.customers[1]
    st, doc, _ = await call(http, "POST", "/rest/customers", {**ok, "customerNumber": 1})
    assert st == 400 and "customerNumber" in doc["errors"]
    st, doc, _ = await call(http, "PUT", "/rest/customers/2", {**ok, "city": None})
    assert doc["errors"]["city"]["errors"][0]["message"] == "Expected String but got Null"
    st, doc, _ = await call(http, "PUT", "/rest/customers/2",
                            {**ok, "customerGroup": {"customerGroupNumber": 0}, "name": ""})
    errs = doc["errors"]
    assert errs["customerGroup"]["errors"][0]["message"] == \
        "Integer 0 is less than minimum value of 1"
    assert "name" in errs and st == 400
    st, _, _ = await call(http, "DELETE", "/rest/customers/1")
    st2, doc, _ = await call(http, "DELETE", "/rest/customers/1")
    assert (st, st2, doc["errorCode"]) == (204, 404, "E06000")
    validate_traffic(sandbox, requests=False)


async def test_journal_rules(sandbox: EconomicSandbox, http: aiohttp.ClientSession) -> None:
    a = sandbox.agreement
    a.add_customers(1)
    a.journals[1]["settings"]["voucherNumbers"]["maximumVoucherNumber"] = 2
    assert (await call(http, "POST", f"{J}/draft-entries", draft()))[0] == 201
    st, doc, _ = await call(http, "POST", f"{J}/draft-entries/bulk",
                            {"entries": [draft(), draft(customerInvoiceNumber="INV1")]})
    assert st == 400 and doc["errors"][0]["errorCode"] == "Customer_Invoice_Is_Not_Numeric"
    assert doc["errors"][0]["property"] == "entries[1].customerInvoiceNumber"
    assert len(a.draft_entries) == 1  # all or nothing
    assert (await call(http, "POST", f"{J}/draft-entries", draft()))[0] == 201
    st, doc, _ = await call(http, "POST", f"{J}/draft-entries", draft())
    assert doc["errorCode"] == "JournalEntryVoucherNumberNotWithinBoundaries"
    st, doc, _ = await call(http, "POST", f"{J}/draft-entries", draft(voucherNumber=5))
    assert doc["errorCode"] == "JournalEntryVoucherNumberNotWithinBoundaries"
    st, doc, _ = await call(http, "POST", f"{J}/draft-entries",
                            draft(date=f"{YEAR + 5}-01-01T00:00:00Z"))
    assert doc["errorCode"] == "JournalEntryDateAccountingYearDoesNotExist"
    a.add_project(3, "Closed", customerNumber=1, isClosed=True)
    st, doc, _ = await call(http, "POST", f"{J}/draft-entries", draft(projectNumber=3))
    assert doc["errorCode"] == "JournalEntryProjectSetIsClosed"
    a.project_module = False
    st, doc, _ = await call(http, "POST", f"{J}/draft-entries", draft(projectNumber=3))
    assert doc["errorCode"] == "JournalEntryProjectIdSetWithoutModuleAccess"
    st, doc, _ = await call(http, "POST", f"{J}/journals/1/bookdraftentries",
                            {"entryNumbers": [1, 99]})
    assert doc["errorCode"] == "JournalEntryDoesNotExist" and len(a.draft_entries) == 2
    st, _, _ = await call(http, "POST", f"{J}/journals/1/bookdraftentries",
                          {"entryNumbers": [1, 2]})
    assert st == 204 and a.draft_entries == {}
    assert sorted(e["voucherNumber"] for e in a.booked_entries.values()) == [1, 1, 2, 2]
    st, doc, _ = await call(http, "GET", f"/rest/accounting-years/{YEAR}/entries", params={
        "filter": "customer.customerNumber$eq:1$and:voucherNumber$eq:2"})
    assert [(e["entryType"], e["amount"]) for e in doc["collection"]] == [
        ("manualDebtorInvoice", 100.0)]
    st, doc, _ = await call(http, "GET", f"/rest/accounting-years/{YEAR - 1}/entries")
    assert st == 200 and doc["collection"] == []
    validate_traffic(sandbox, requests=False)


async def test_attached_documents(sandbox: EconomicSandbox, http: aiohttp.ClientSession
                                  ) -> None:
    sandbox.agreement.add_customers(1)
    await call(http, "POST", f"{J}/draft-entries", draft())

    async def attach(content: bytes, voucher: int = 1, year: str = str(YEAR),
                     conflict: int = 0) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("File", io.BytesIO(content), filename="f",
                       content_type="application/pdf")
        form.add_field("AccountingYear", year)
        form.add_field("VoucherNumber", str(voucher))
        form.add_field("OnConflict", str(conflict))
        async with http.post(D, data=form) as r:
            return r.status, await r.json(content_type=None)

    big = b"%PDF-" + b"0" * (9 * 1024 * 1024)
    assert (await attach(big))[1]["errors"][0]["errorCode"] == "InvalidFileData"
    assert (await attach(b"plain text"))[1]["errorCode"] == "InvalidFileData"
    assert (await attach(b"%PDF-1", voucher=7))[1]["errorCode"] == "InvalidVoucherNumber"
    assert (await attach(b"%PDF-1", year="1999"))[1]["errorCode"] == "AccountingYearNotFound"
    st, first = await attach(b"%PDF-1.4 a")
    st2, merged = await attach(b"\x89PNG\r\n\x1a\n b", conflict=0)
    assert (st, st2, first, merged) == (201, 201, {"number": 1}, {"number": 1})
    assert sandbox.agreement.documents[1].page_count == 2
    st, doc = await attach(b"\xff\xd8\xff c", conflict=1)
    assert st == 400 and doc["errorCode"] == "DocumentAlreadyAttachedToVoucher"
    sandbox.agreement.attachments = "unable"
    assert (await attach(b"%PDF-1"))[1]["errorCode"] == "UnableToAttach"
    async with http.post(D, json={"file": "x"}) as r:
        assert r.status == 415
    validate_traffic(sandbox, requests=False)


async def test_admin_edits_like_a_person(sandbox: EconomicSandbox,
                                         http: aiohttp.ClientSession) -> None:
    st, _, _ = await call(http, "POST", "/admin/customers", {"count": 3})
    assert st == 201 and len(sandbox.agreement.customers) == 3
    await call(http, "PATCH", "/admin/customers/2", {"name": "Renamed", "city": None})
    assert sandbox.agreement.customers[2]["name"] == "Renamed"
    assert "city" not in sandbox.agreement.customers[2]
    st, _, _ = await call(http, "POST", "/admin/customers/3/renumber", {"to": 30})
    assert st == 200 and 30 in sandbox.agreement.customers and 3 not in sandbox.agreement.customers
    assert (await call(http, "DELETE", "/admin/customers/1"))[0] == 204
    sandbox.agreement.add_project(5, "P", customerNumber=2)
    await call(http, "PATCH", "/admin/projects/5", {"isClosed": True})
    assert sandbox.agreement.projects[5]["isClosed"] is True
    assert (await call(http, "DELETE", "/admin/projects/5"))[0] == 204
    st, cfg, _ = await call(http, "PATCH", "/admin/config", {
        "project_module": False, "rate_limit": {"tokens": 50}, "faults": {"probability": 0}})
    assert cfg["project_module"] is False and cfg["rate_limit"]["tokens"] == 50
    assert (await call(http, "PATCH", "/admin/config", {"rate_limit": {"nope": 1}}))[0] == 400
    st, doc, _ = await call(http, "PATCH", "/admin/config",
                            {"rate_limit": {"retry_after": False, "window_s": 0}})
    assert st == 400 and sandbox.rate_limit.window_s == 60  # refused whole: nothing set
    assert sandbox.rate_limit.retry_after is True
    await call(http, "POST", "/admin/faults", {"kind": "503", "count": 1})
    assert (await call(http, "GET", "/rest/customers/2"))[0] == 503
    st, doc, _ = await call(http, "GET", "/rest/customers/2")
    assert doc["name"] == "Renamed"
    st, served, _ = await call(http, "GET", "/admin/requests")
    assert [(s["method"], s["path"], s["status"]) for s in served] == [
        ("GET", "/rest/customers/2", 503), ("GET", "/rest/customers/2", 200)]
    st, state, _ = await call(http, "GET", "/admin/state")
    assert state["customers"] == 2 and state["project_module"] is False


async def test_random_faults_follow_probability_and_kinds(clock: FakeClock) -> None:
    async with EconomicSandbox.running(clock=clock.now) as sb:
        sb.faults.probability, sb.faults.kinds = 1.0, ["500"]
        headers = {"X-AppSecretToken": sb.app_secret_token,
                   "X-AgreementGrantToken": sb.agreement_grant_token}
        async with aiohttp.ClientSession(headers=headers) as s:
            for _ in range(3):
                async with s.get(f"{sb.rest_url}/self") as r:
                    assert r.status == 500
            sb.faults.probability = 0.0
            async with s.get(f"{sb.rest_url}/self") as r:
                assert r.status == 200


async def test_attached_documents_read_back_and_delete_as_the_spec_says(
        sandbox: EconomicSandbox, http: aiohttp.ClientSession) -> None:
    """GET/DELETE /AttachedDocuments/{number}, its /pdf, /paged, /count and /deletebulk: the
    bytes that arrived can be read back, and every answer has the spec's shape."""
    sandbox.agreement.add_customers(1)
    for _ in range(3):
        await call(http, "POST", f"{J}/draft-entries", draft())
    files = {1: b"%PDF-1.4 first", 2: b"%PDF-1.4 second", 3: b"%PDF-1.4 third"}
    for voucher, content in files.items():
        form = aiohttp.FormData()
        form.add_field("File", io.BytesIO(content), filename="f.pdf",
                       content_type="application/pdf")
        form.add_field("AccountingYear", str(YEAR))
        form.add_field("VoucherNumber", str(voucher))
        form.add_field("OnConflict", "1")
        async with http.post(D, data=form) as r:
            assert r.status == 201
    st, one, _ = await call(http, "GET", f"{D}/2")
    assert st == 200 and one == {"number": 2, "voucherNumber": 2, "accountingYear": str(YEAR),
                                 "pageCount": 1}
    for number, content in files.items():
        async with http.get(f"{D}/{number}/pdf") as r:
            assert (r.status, r.content_type, await r.read()) == (200, "application/pdf",
                                                                  content)
    st, count, _ = await call(http, "GET", f"{D}/count?filter=voucherNumber$gte:2")
    assert (st, count) == (200, 2)
    st, page, _ = await call(http, "GET", f"{D}/paged?pageSize=2&skipPages=1")
    assert st == 200 and [d["number"] for d in page] == [3]
    st, page, _ = await call(http, "GET", f"{D}/paged?sort=-number&pageSize=2")
    assert [d["number"] for d in page] == [3, 2]
    st, bad, _ = await call(http, "GET", f"{D}/paged?pageSize=101")
    assert st == 400 and bad["errors"][0]["property"] == "pageSize"
    assert (await call(http, "DELETE", f"{D}/1"))[0] == 204
    assert (await call(http, "GET", f"{D}/1"))[0] == 404
    assert (await call(http, "DELETE", f"{D}/1"))[0] == 404
    async with http.get(f"{D}/1/pdf") as r:
        assert r.status == 404
    st, _, _ = await call(http, "DELETE", f"{D}/deletebulk", {"documentNumbers": [2, 3, 99]})
    assert st == 204 and sandbox.agreement.documents == {}
    assert (await call(http, "GET", f"{D}/count"))[1] == 0
    assert validate_traffic(sandbox) >= 8
