"""The Moment client against the Moment sandbox over real loopback HTTP."""

from __future__ import annotations

import datetime as dt
import decimal
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest
from aiohttp import web

from daemon.core import secrets
from daemon.moment import answers, errors, shapes
from daemon.moment import client as moment_client
from daemon.sandbox import moment as moment_sandbox
from tests.clocks import FakeClock
from tests.moment.conftest import API_KEY, fake_clock, make_client

pytestmark = pytest.mark.anyio


T = TypeVar("T")


async def every(items: AsyncIterator[T | shapes.Unreadable]) -> list[T]:
    """A listing's objects, none of them unreadable."""
    out: list[T] = []
    async for item in items:
        assert not isinstance(item, shapes.Unreadable), item
        out.append(item)
    return out


def queries(sb: moment_sandbox.MomentSandbox, path_contains: str) -> list[dict[str, str]]:
    return [dict(urllib.parse.parse_qsl(r.query)) for r in sb.requests
            if path_contains in r.path]


async def test_paging_follows_total_elements_across_pages(
        sandbox: moment_sandbox.MomentSandbox) -> None:
    made = [sandbox.add_customer(name=f"Customer {i}") for i in range(10)]
    async with make_client(sandbox, page_size=3) as client:
        got = await every(client.iter_customers())
    assert [c.id for c in got] == [c.id for c in made]
    assert [c.customer_number for c in got] == [c.customer_number for c in made]
    sent = queries(sandbox, "/customers")
    assert [q["page"] for q in sent] == ["1", "2", "3", "4"]
    assert {q["size"] for q in sent} == {"3"}
    assert {q["sort"] for q in sent} == {"id,asc"}
    assert all("lastModifiedDateFrom" not in q for q in sent)


async def test_paging_stops_at_an_exact_page_boundary(
        sandbox: moment_sandbox.MomentSandbox) -> None:
    for i in range(9):
        sandbox.add_customer(name=f"Customer {i}")
    async with make_client(sandbox, page_size=3) as client:
        assert len(await every(client.iter_customers())) == 9
    assert sandbox.count(path_contains="/customers") == 3


async def test_empty_list_is_one_request(client: moment_client.MomentClient,
                                         sandbox: moment_sandbox.MomentSandbox) -> None:
    assert await every(client.iter_projects()) == []
    assert sandbox.count() == 1


async def test_last_modified_filters(client: moment_client.MomentClient,
                                     sandbox: moment_sandbox.MomentSandbox,
                                     clock: FakeClock) -> None:
    old = [sandbox.add_customer(name=f"Old {i}") for i in range(3)]
    clock.advance(60)
    cut = clock.utcnow()
    changed = sandbox.change_customer(old[1].id, email="new@example.dk")
    fresh = sandbox.add_customer(name="Fresh")
    clock.advance(60)
    later = clock.utcnow()
    sandbox.add_customer(name="Later")

    since = [c.id for c in await every(client.iter_customers(modified_from=cut))]
    assert since[:2] == [changed.id, fresh.id] and len(since) == 3
    window = await every(client.iter_customers(modified_from=cut, modified_to=later))
    assert [c.id for c in window] == [changed.id, fresh.id]
    assert window[0].version == 2 and window[0].email == "new@example.dk"
    before = [c.id for c in await every(client.iter_customers(modified_to=cut))]
    assert before == [old[0].id, old[2].id]
    sent = queries(sandbox, "/customers")[1]
    assert sent["lastModifiedDateFrom"] == "2026-11-20T09:01:00Z"
    assert sent["lastModifiedDateTo"] == "2026-11-20T09:02:00Z"


async def test_filter_needs_an_aware_datetime(client: moment_client.MomentClient) -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        await client.customers_page(modified_from=dt.datetime(2026, 11, 1))


async def test_one_of_each_kind_decodes(client: moment_client.MomentClient,
                                        sandbox: moment_sandbox.MomentSandbox) -> None:
    customer = sandbox.add_customer(name="Nordlys Arkitekter ApS", customer_number="10001",
                                    organization_number="DK12345678", city="Aarhus")
    project = sandbox.add_project(name="Havnebadet, fase 2", customer_id=customer.id)
    draft = sandbox.add_invoice(customer_id=customer.id, project_id=project.id,
                                total_excluding_vat="10000.00", description="Rådgivning")
    got_customer = await client.get_customer(customer.id)
    assert got_customer.name == "Nordlys Arkitekter ApS"
    assert got_customer.address == shapes.Address(city="Aarhus", country_code="DK")
    got_project = await client.get_project(project.id)
    assert got_project.customer == shapes.CustomerRef(id=customer.id, customer_number="10001")

    got_draft = await client.get_invoice(draft.id)
    assert (got_draft.status, got_draft.invoice_number, got_draft.is_fact) == ("DRAFT", None,
                                                                               False)
    sandbox.finalize_invoice(draft.id)
    final = await client.get_invoice(draft.id)
    assert (final.status, final.invoice_number, final.is_fact) == ("FINALIZED", 1, True)
    assert shapes.money(final.total_including_vat) == decimal.Decimal("12500.00")
    assert final.project == shapes.ProjectRef(id=project.id, project_number="1")
    assert final.finalized_date is not None and final.version == 2

    note = sandbox.credit_invoice(draft.id)
    credited = await client.get_invoice(draft.id)
    got_note = await client.get_invoice(note.id)
    assert credited.status == "CREDITED" and credited.is_fact
    assert got_note.is_credit_note and got_note.credited_invoice_number == 1
    assert got_note.invoice_number == 2 and got_note.total_including_vat == "-12500.00"
    assert [i.id for i in await every(client.iter_invoices())] == [draft.id, note.id]


async def test_unknown_fields_are_ignored(client: moment_client.MomentClient,
                                          sandbox: moment_sandbox.MomentSandbox) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    sandbox.extra_fields = {"companyId": 7, "links": [{"rel": "self", "href": "x"}],
                            "customerName": "ignored", "newThing": {"a": None}}
    assert (await client.get_customer(customer.id)).name == "Nordlys"
    assert [c.id for c in await every(client.iter_customers())] == [customer.id]


async def test_wrong_key_is_unauthorized_and_the_key_never_shows(
        sandbox: moment_sandbox.MomentSandbox) -> None:
    wrong = "wrong-key-9d1c"
    async with make_client(sandbox, key=wrong) as client:
        with pytest.raises(errors.Unauthorized) as caught:
            await client.get_customer(1)
    error = caught.value
    assert error.status == 401 and not error.retryable
    assert isinstance(error, errors.TerminalError)
    for text in (str(error), repr(error), repr(vars(error)), repr(client)):
        assert wrong not in text and "Authorization" not in text and "Basic" not in text
    assert sandbox.requests[-1].status == 401


async def test_unknown_id_is_not_found(client: moment_client.MomentClient) -> None:
    for fetch in (client.get_customer, client.get_project, client.get_invoice):
        with pytest.raises(errors.NotFound) as caught:
            await fetch(424242)
        assert caught.value.status == 404 and "424242" in str(caught.value)


async def test_wrong_company_is_not_found(sandbox: moment_sandbox.MomentSandbox) -> None:
    async with moment_client.MomentClient(api_url=sandbox.api_url, company="other",
                                          api_key=secrets.Secret(API_KEY),
                                          clock=fake_clock()) as client:
        with pytest.raises(errors.NotFound, match="no company"):
            await client.customers_page()


async def test_429_surfaces_retry_after(sandbox: moment_sandbox.MomentSandbox) -> None:
    clock = FakeClock(autojump=True)
    sandbox.faults.add(429, count=1, retry_after=7, path_contains="/customers")
    async with make_client(sandbox, clock=clock) as client:
        with pytest.raises(errors.RateLimited) as caught:
            await client.customers_page()
        assert caught.value.retry_after == 7.0 and caught.value.retryable
        assert isinstance(caught.value, errors.RetryableError)
        # the next call waits out the pause first; the fault is spent
        assert (await client.customers_page()).page.total_elements == 0
    assert clock.sleeps == [7.0]


async def test_429_without_retry_after(client: moment_client.MomentClient,
                                       sandbox: moment_sandbox.MomentSandbox) -> None:
    sandbox.faults.add(429)
    with pytest.raises(errors.RateLimited) as caught:
        await client.get_customer(1)
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retryable(client: moment_client.MomentClient,
                                sandbox: moment_sandbox.MomentSandbox, status: int) -> None:
    customer = sandbox.add_customer(name="X")
    sandbox.faults.add(status, count=2)
    for _ in range(2):
        with pytest.raises(errors.ServerError) as caught:
            await client.get_customer(customer.id)
        assert caught.value.status == status and caught.value.retryable
    assert (await client.get_customer(customer.id)).id == customer.id
    assert [r.status for r in sandbox.requests] == [status, status, 200]


async def test_503_may_carry_retry_after(client: moment_client.MomentClient,
                                         sandbox: moment_sandbox.MomentSandbox) -> None:
    sandbox.faults.add(503, retry_after=30)
    with pytest.raises(errors.ServerError) as caught:
        await client.get_customer(1)
    assert caught.value.retry_after == 30.0


async def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with moment_client.MomentClient(api_url=f"http://127.0.0.1:{port}/api/1.0",
                                          company="acme", api_key=secrets.Secret("k"),
                                          timeout_s=2.0, clock=fake_clock()) as client:
        with pytest.raises(errors.TransportError) as caught:
            await client.get_customer(1)
    assert caught.value.retryable and caught.value.status is None


async def test_invoice_pdf_streams_a_pdf(client: moment_client.MomentClient,
                                         sandbox: moment_sandbox.MomentSandbox) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    invoice = sandbox.add_invoice(customer_id=customer.id, total_excluding_vat="100.00",
                                  finalize=True)
    async with client.invoice_pdf(invoice.id) as pdf:
        chunks = [chunk async for chunk in pdf]
        assert pdf.content_length == sum(len(c) for c in chunks)
    data = b"".join(chunks)
    assert data.startswith(b"%PDF-1.4\n") and data.rstrip().endswith(b"%%EOF")
    assert b"(Invoice 1)" in data
    assert data == sandbox.invoice_pdf(invoice.id)
    assert sandbox.requests[-1].path.endswith(f"/invoices/{invoice.id}/pdf")


async def test_pdf_of_a_draft_or_unknown_invoice(client: moment_client.MomentClient,
                                                 sandbox: moment_sandbox.MomentSandbox) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    draft = sandbox.add_invoice(customer_id=customer.id, total_excluding_vat="1.00")
    with pytest.raises(errors.RequestRejected) as caught:
        async with client.invoice_pdf(draft.id):
            pass
    assert caught.value.status == 409
    with pytest.raises(errors.NotFound):
        async with client.invoice_pdf(99999):
            pass
    sandbox.faults.add(503, path_contains="/pdf")
    with pytest.raises(errors.ServerError):
        async with client.invoice_pdf(draft.id):
            pass


async def test_project_expense_round_trip(client: moment_client.MomentClient,
                                          sandbox: moment_sandbox.MomentSandbox) -> None:
    customer = sandbox.add_customer(name="Nordlys")
    sandbox.add_project(name="Havnebadet", customer_id=customer.id, project_number="1")
    expense = shapes.ProjectExpense(
        external_id="economic:2026:entry:4711",
        project=shapes.ExpenseProjectRef(project_number="1"),
        description="Rejse Aarhus-København", amount_including_vat="1450.00", currency="DKK",
        date=dt.date(2026, 11, 18), cost_type="Rejser")
    assert await client.find_project_expense(expense.external_id) is None
    created = await client.create_project_expense(expense, idempotency_key="k1")
    assert created.id is not None and created.amount_including_vat == "1450.00"
    assert await client.find_project_expense(expense.external_id) == created
    # Moment does not refuse a repeated externalId (API.md): only the lookup keeps it single.
    again = await client.create_project_expense(expense, idempotency_key="k2")
    assert again.id is not None and again.id != created.id
    assert await client.find_project_expense(expense.external_id) == created


async def test_ids_and_sizes_are_checked_before_sending(
        client: moment_client.MomentClient, sandbox: moment_sandbox.MomentSandbox) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        await client.get_customer(0)
    with pytest.raises(ValueError, match="size"):
        await client.customers_page(size=101)
    with pytest.raises(ValueError, match="page"):
        await client.customers_page(page=0)
    assert sandbox.requests == []


async def test_unopened_client_says_so() -> None:
    client = moment_client.MomentClient(api_url="http://127.0.0.1:9/api/1.0", company="acme",
                                        api_key=secrets.Secret("k"),
                                          clock=fake_clock())
    with pytest.raises(RuntimeError, match="not open"):
        await client.get_customer(1)


# --- answers the sandbox never gives: a small hostile server --------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    """A server at the returned API root answering what Moment must not."""

    async def answer(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "customers/1":
            return web.json_response({"id": "one", "customerNumber": "1"})
        if tail == "customers/2":
            return web.Response(body=b"<html>maintenance</html>", content_type="text/html")
        if tail == "customers/3":
            raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
        if tail == "invoices/4":
            return web.json_response({
                "id": 4, "status": "FINALIZED", "currency": "DKK", "totalExcludingVat": 1.5,
                "totalVat": "0", "totalIncludingVat": "1.5", "customer": {"id": 1},
                "lastModifiedDate": "2026-11-20T09:00:00Z", "version": 1})
        if tail == "invoices/5/pdf":
            return web.Response(body=b"not a pdf", content_type="text/plain")
        if tail == "customers/6":
            return web.json_response({"id": 6, "customerNumber": "1", "name": "x",
                                      "lastModifiedDate": "2026-11-20T09:00:00",
                                      "version": 1})
        if tail == "customers/7":
            return web.Response(status=418, text="teapot")
        if tail == "projects":  # one good project, one bad, one without a usable id
            return web.Response(content_type="application/json", text=(
                '{"content": [{"id": 1, "projectNumber": "1", "name": "God", '
                '"lastModifiedDate": "2026-11-20T09:00:00Z", "version": 1}, '
                '{"id": 2, "projectNumber": 2, "name": "Daarlig"}, '
                '{"id": "tre", "name": "Uden id"}], "page": {"totalElements": 3}}'))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/api/1.0/companies/acme/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/1.0"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("call", "expected", "message"), [
    ("customer 1", errors.BadResponse, "expected shape"),
    ("customer 2", errors.BadResponse, "expected shape"),
    ("customer 3", errors.Redirected,
     r"redirect to http://127\.0\.0\.1:9/elsewhere; it was not followed"),
    ("invoice 4", errors.BadResponse, "totalExcludingVat"),
    ("customer 6", errors.BadResponse, "lastModifiedDate"),
    ("customer 7", errors.RequestRejected, "teapot"),
])
async def test_answers_that_break_the_contract(hostile: str, call: str,
                                               expected: type[errors.MomentError],
                                               message: str) -> None:
    kind, number = call.split()
    async with moment_client.MomentClient(api_url=hostile, company="acme",
                                          api_key=secrets.Secret("k"),
                                          clock=fake_clock()) as client:
        fetch = client.get_customer if kind == "customer" else client.get_invoice
        with pytest.raises(expected, match=message) as caught:
            await fetch(int(number))
    assert not caught.value.retryable


async def test_one_object_that_does_not_decode_never_hides_the_others(hostile: str) -> None:
    async with moment_client.MomentClient(api_url=hostile, company="acme",
                                          api_key=secrets.Secret("k"),
                                          clock=fake_clock()) as client:
        listed = [p async for p in client.iter_projects()]
    good, bad, nameless = listed
    assert isinstance(good, shapes.Project) and good.project_number == "1"
    assert isinstance(bad, shapes.Unreadable) and (bad.kind, bad.moment_id) == ("project", 2)
    assert "projectNumber" in bad.error
    assert isinstance(nameless, shapes.Unreadable) and nameless.moment_id is None


async def test_pdf_with_another_content_type_is_refused(hostile: str) -> None:
    async with moment_client.MomentClient(api_url=hostile, company="acme",
                                          api_key=secrets.Secret("k"),
                                          clock=fake_clock()) as client:
        with pytest.raises(errors.BadResponse, match="application/pdf"):
            async with client.invoice_pdf(5):
                pass


def test_retry_after_parsing() -> None:
    now = dt.datetime(2026, 11, 20, 9, 0, 0, tzinfo=dt.UTC)
    parse = answers.parse_retry_after
    assert parse("7", now) == 7.0
    assert parse(" 2.5 ", now) == 2.5
    assert parse("-3", now) == 0.0
    assert parse("Fri, 20 Nov 2026 09:00:30 GMT", now) == 30.0
    assert parse("Fri, 20 Nov 2026 08:59:00 GMT", now) == 0.0
    assert parse("soon", now) is None
    assert parse("nan", now) is None
    assert parse(None, now) is None


def test_timestamp_format() -> None:
    fmt = moment_client.format_timestamp
    assert fmt(dt.datetime(2026, 11, 1, tzinfo=dt.UTC)) == "2026-11-01T00:00:00Z"
    plus_one = dt.timezone(dt.timedelta(hours=1))
    assert fmt(dt.datetime(2026, 11, 1, 1, 0, 0, 250000, tzinfo=plus_one)) == \
        "2026-11-01T00:00:00.250000Z"
