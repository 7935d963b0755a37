"""The Moment sandbox itself: its data rules, PDFs, webhooks, faults, admin surface, samples."""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from daemon.moment import shapes
from daemon.sandbox import moment as moment_sandbox
from daemon.sandbox import moment_data, moment_faults, moment_pdf, moment_records
from tests.moment.conftest import API_KEY, fake_clock

AUTH = {"Authorization": "Basic " + base64.b64encode(f"apikey:{API_KEY}".encode()).decode()}


# --- data rules ---------------------------------------------------------------------------

def test_changes_bump_version_and_last_modified() -> None:
    clock = fake_clock()
    data = moment_data.MomentData(now=clock.utcnow)
    customer = data.add_customer(name="Nordlys")
    assert (customer.version, customer.customer_number) == (1, "10001")
    clock.advance(90.7)
    data.change_customer(customer.id, name="Nordlys ApS")
    rendered = data.render("customer", customer.id)
    assert rendered["version"] == 2 and rendered["name"] == "Nordlys ApS"
    assert rendered["lastModifiedDate"] == "2026-11-20T09:01:30Z"


def test_invoice_life_cycle() -> None:
    data = moment_data.MomentData(now=fake_clock().utcnow)
    customer = data.add_customer(name="Nordlys")
    first = data.add_invoice(customer_id=customer.id, total_excluding_vat="10000")
    assert data.render("invoice", first.id)["invoiceNumber"] is None
    data.change_invoice(first.id, description="Februar", total_vat="0.00")
    data.finalize_invoice(first.id)
    rendered = data.render("invoice", first.id)
    assert (rendered["status"], rendered["invoiceNumber"], rendered["version"]) == (
        "FINALIZED", 1, 3)
    assert rendered["totalIncludingVat"] == "10000.00"
    with pytest.raises(moment_records.SandboxError, match="only drafts change"):
        data.change_invoice(first.id, description="edited")
    second = data.add_invoice(customer_id=customer.id, total_excluding_vat="5")
    with pytest.raises(moment_records.SandboxError, match="already used"):
        data.finalize_invoice(second.id, invoice_number=1)
    assert data.render("invoice", second.id)["status"] == "DRAFT"  # refused: unchanged
    data.force_invoice_number(second.id, 1)
    assert data.render("invoice", second.id)["invoiceNumber"] == 1
    note = data.credit_invoice(first.id)
    assert data.render("invoice", first.id)["status"] == "CREDITED"
    rendered_note = data.render("invoice", note.id)
    assert rendered_note["isCreditNote"] is True and rendered_note["invoiceNumber"] == 2
    assert rendered_note["totalIncludingVat"] == "-10000.00"
    with pytest.raises(moment_records.SandboxError, match="cannot be credited"):
        data.credit_invoice(first.id)


def test_numbers_follow_renumbering_and_deletion() -> None:
    data = moment_data.MomentData(now=fake_clock().utcnow)
    first = data.add_customer(name="A")
    second = data.add_customer(name="B")
    assert (first.customer_number, second.customer_number) == ("10001", "10002")
    data.change_customer(first.id, customer_number="500")
    data.change_customer(second.id, customer_number="10001")  # the old number is free again
    with pytest.raises(moment_records.SandboxError, match="500 is already used"):
        data.change_customer(second.id, customer_number="500")
    data.change_customer(second.id, customer_number="10001", name="B2")  # its own number
    data.delete_customer(first.id)
    assert data.add_customer(name="C", customer_number="500").customer_number == "500"
    assert data.add_customer(name="D").customer_number == "10003"
    project = data.add_project(name="P", customer_id=second.id)
    data.delete_project(project.id)
    assert data.add_project(name="Q", customer_id=second.id, project_number="1").id > project.id
    invoice = data.add_invoice(customer_id=second.id, total_excluding_vat="1", finalize=True)
    data.delete_invoice(invoice.id)
    again = data.add_invoice(customer_id=second.id, total_excluding_vat="1")
    assert data.finalize_invoice(again.id, invoice_number=1).invoice_number == 1


def test_a_refused_invoice_change_leaves_no_trace() -> None:
    data = moment_data.MomentData(now=fake_clock().utcnow)
    customer = data.add_customer(name="A", customer_number="7")
    other = data.add_customer(name="Other", customer_number="8")
    draft = data.add_invoice(customer_id=customer.id, total_excluding_vat="1")
    before = data.render("invoice", draft.id)
    with pytest.raises(moment_records.UnknownObject):
        data.change_invoice(draft.id, customer_id=other.id, project_id=999)
    assert data.render("invoice", draft.id) == before
    data.delete_customer(customer.id)  # now the invoice shows the number it was made with
    assert data.render("invoice", draft.id)["customer"] == {"id": customer.id,
                                                            "customerNumber": "7"}


def test_refusals_change_nothing() -> None:
    data = moment_data.MomentData(now=fake_clock().utcnow)
    customer = data.add_customer(name="A", customer_number="7")
    with pytest.raises(moment_records.SandboxError, match="already used"):
        data.add_customer(name="B", customer_number="7")
    with pytest.raises(moment_records.SandboxError, match="no field 'colour'"):
        data.change_customer(customer.id, colour="red")
    with pytest.raises(moment_records.SandboxError, match="not a float"):
        data.add_invoice(customer_id=customer.id, total_excluding_vat=1.5)  # type: ignore[arg-type]
    with pytest.raises(moment_records.UnknownObject):
        data.add_project(name="P", customer_id=999)
    assert len(data.customers) == 1 and not data.projects and not data.invoices
    assert customer.version == 1


# --- PDFs -----------------------------------------------------------------------------------

def assert_valid_pdf(data: bytes) -> None:
    """Header, every xref offset pointing at its object, startxref at the xref, EOF marker."""
    assert data.startswith(b"%PDF-1.4\n")
    assert data.endswith(b"%%EOF\n")
    startxref = int(re.findall(rb"startxref\n(\d+)\n", data)[-1])
    assert data[startxref:].startswith(b"xref\n0 ")
    header = re.match(rb"xref\n0 (\d+)\n", data[startxref:])
    assert header is not None
    count = int(header.group(1))
    table = data[startxref + header.end():].split(b"trailer")[0]
    entries = [table[i:i + 20] for i in range(0, count * 20, 20)]
    assert entries[0] == b"0000000000 65535 f \n"
    for number, entry in enumerate(entries[1:], start=1):
        assert entry.endswith(b" 00000 n \n")
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % number)
    assert b"/Size %d" % count in data and b"/Root 1 0 R" in data
    length = int(re.findall(rb"/Length (\d+) >>\nstream\n", data)[0])
    start = data.index(b"stream\n") + len(b"stream\n")
    assert data[start + length:].startswith(b"endstream")


def test_generated_pdf_is_structurally_valid_and_deterministic() -> None:
    sandbox_like = moment_sandbox.MomentSandbox(now=fake_clock().utcnow)
    customer = sandbox_like.add_customer(name="Møllegård (Aarhus) \\ ApS")
    invoice = sandbox_like.add_invoice(customer_id=customer.id, total_excluding_vat="1",
                                       description="Rådgivning", finalize=True)
    pdf = sandbox_like.invoice_pdf(invoice.id)
    assert_valid_pdf(pdf)
    assert b"(Invoice 1)" in pdf and b"M\\370lleg\\345rd \\(Aarhus\\) \\\\ ApS" in pdf
    assert pdf == sandbox_like.invoice_pdf(invoice.id)
    sandbox_like.credit_invoice(invoice.id)  # a new version of the invoice, a new PDF
    after = sandbox_like.invoice_pdf(invoice.id)
    assert after != pdf
    assert_valid_pdf(after)


def test_pdf_string_escapes() -> None:
    assert moment_pdf.pdf_string("a(b)c\\d") == b"(a\\(b\\)c\\\\d)"
    assert moment_pdf.pdf_string("æ\n€ ✓") == b"(\\346\\012\\200 ?)"


# --- HTTP surface ---------------------------------------------------------------------------

@pytest.mark.anyio
@pytest.mark.parametrize(("query", "message"), [
    ("page=0", "page must be at least 1"),
    ("page=x", "page must be an integer"),
    ("size=0", "size must be 1..100"),
    ("size=101", "size must be 1..100"),
    ("sort=name,asc", "sort must be"),
    ("lastModifiedDateFrom=yesterday", "ISO 8601"),
    ("lastModifiedDateTo=2026-11-01T00:00:00", "UTC offset"),
])
async def test_bad_list_parameters_are_400(sandbox: moment_sandbox.MomentSandbox, query: str,
                                           message: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            f"{sandbox.api_url}/companies/acme/invoices?{query}", headers=AUTH) as response:
        assert response.status == 400
        assert message in (await response.json())["message"]


@pytest.mark.anyio
async def test_list_shape_paging_and_descending_sort(
        sandbox: moment_sandbox.MomentSandbox) -> None:
    ids = [sandbox.add_customer(name=f"C{i}").id for i in range(5)]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sandbox.api_url}/companies/acme/customers?page=2&size=2",
                               headers=AUTH) as response:
            body = await response.json()
        assert set(body) == {"content", "page"} and body["page"] == {"totalElements": 5}
        assert [c["id"] for c in body["content"]] == ids[2:4]
        async with session.get(f"{sandbox.api_url}/companies/acme/customers?sort=id,desc",
                               headers=AUTH) as response:
            assert [c["id"] for c in (await response.json())["content"]] == ids[::-1]
        async with session.get(f"{sandbox.api_url}/companies/acme/customers?page=9",
                               headers=AUTH) as response:
            assert (await response.json()) == {"content": [], "page": {"totalElements": 5}}
    assert [r.status for r in sandbox.requests] == [200, 200, 200]


@pytest.mark.anyio
@pytest.mark.parametrize("header", [
    None, "Basic " + base64.b64encode(b"apikey:wrong").decode(),
    "Basic " + base64.b64encode(f"user:{API_KEY}".encode()).decode(),
    f"Bearer {API_KEY}", "Basic !!!",
])
async def test_auth_is_required(sandbox: moment_sandbox.MomentSandbox,
                                header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with aiohttp.ClientSession() as session, session.get(
            f"{sandbox.api_url}/companies/acme/customers", headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_faults_count_and_probability_are_deterministic() -> None:
    def run(seed: int) -> list[bool]:
        injector = moment_faults.FaultInjector(seed=seed)
        injector.add(503, count=None, probability=0.3)
        return [injector.pick("GET", "/x") is not None for _ in range(200)]

    first = run(4)
    assert first == run(4) and 30 < sum(first) < 90
    injector = moment_faults.FaultInjector()
    injector.add(429, count=2, path_contains="/invoices", method="GET")
    assert injector.pick("GET", "/customers") is None
    assert injector.pick("POST", "/invoices") is None
    assert [injector.pick("GET", "/invoices") is not None for _ in range(3)] == [True, True,
                                                                                False]
    assert injector.faults == []
    with pytest.raises(ValueError, match="status"):
        injector.add(404)


# --- webhooks ---------------------------------------------------------------------------------

@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A local aiohttp webhook receiver: its URL and the bodies it got."""
    got: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        got.append(await request.read())
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/webhooks/moment/secret-token", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/webhooks/moment/secret-token", got
    finally:
        await runner.cleanup()


@pytest.mark.anyio
async def test_every_change_fires_a_thin_hint(sandbox: moment_sandbox.MomentSandbox,
                                              receiver: tuple[str, list[bytes]]) -> None:
    url, got = receiver
    quiet = sandbox.add_customer(name="Before the webhook", customer_number="9")
    sandbox.set_webhook(url)
    customer = sandbox.add_customer(name="Nordlys", customer_number="10001")
    sandbox.change_customer(customer.id, email="a@b.dk")
    project = sandbox.add_project(name="Havnebadet", customer_id=customer.id)
    invoice = sandbox.add_invoice(customer_id=customer.id, project_id=project.id,
                                  total_excluding_vat="100")
    sandbox.finalize_invoice(invoice.id)
    sandbox.delete_customer(quiet.id)
    await sandbox.webhooks_idle()

    hints = [shapes.decode_hint(b) for b in got]  # the daemon's strict decoder takes them all
    assert [(h.kind, h.event, h.moment_id) for h in hints] == [
        ("customer", "CREATE_NEW", customer.id), ("customer", "UPDATE", customer.id),
        ("project", "CREATE_NEW", project.id), ("invoice", "CREATE_NEW", invoice.id),
        ("invoice", "CREATE_NEW", invoice.id), ("customer", "DELETE", quiet.id)]
    assert json.loads(got[3]) == {"event": "CREATE_NEW", "invoice": {
        "id": invoice.id, "customer": {"id": customer.id, "customerNumber": "10001"},
        "project": {"id": project.id, "projectNumber": "1"}}}
    assert json.loads(got[4])["invoice"]["invoiceNumber"] == 1
    assert all(set(json.loads(b)) == {"event", h.kind} for b, h in zip(got, hints, strict=True))
    assert [d.status for d in sandbox.webhook_deliveries] == [202] * 6
    assert sandbox.requests == []  # hints are not API requests


@pytest.mark.anyio
async def test_explicit_fire_and_raw_bodies(sandbox: moment_sandbox.MomentSandbox,
                                            receiver: tuple[str, list[bytes]]) -> None:
    url, got = receiver
    customer = sandbox.add_customer(name="Nordlys")
    delivery = await sandbox.fire("customer", customer.id, url=url, event="RESEND")
    assert delivery.status == 202 and got == [delivery.body]
    assert json.loads(got[0]) == {"event": "RESEND", "customer": {
        "id": customer.id, "customerNumber": customer.customer_number}}
    sandbox.set_webhook(url)
    raw = await sandbox.fire_raw(b'{"event": 1}')
    assert raw.status == 202 and got[-1] == b'{"event": 1}'
    with pytest.raises(moment_records.UnknownObject):
        await sandbox.fire("invoice", 4242)


@pytest.mark.anyio
async def test_unreachable_webhook_is_recorded_not_raised(
        sandbox: moment_sandbox.MomentSandbox) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sandbox.set_webhook(f"http://127.0.0.1:{port}/hook")
    sandbox.add_customer(name="Nordlys")
    sandbox.set_webhook("not a url at all")
    sandbox.add_customer(name="Havblik")
    await sandbox.webhooks_idle()
    assert [(d.status, d.error is not None) for d in sandbox.webhook_deliveries] == [
        (None, True), (None, True)]


# --- admin surface ----------------------------------------------------------------------------

@pytest.mark.anyio
async def test_admin_surface(sandbox: moment_sandbox.MomentSandbox,
                             receiver: tuple[str, list[bytes]]) -> None:
    url, got = receiver
    admin = sandbox.admin_url
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{admin}/webhook", json={"url": url}) as r:
            assert r.status == 200
        async with http.post(f"{admin}/customers", json={
                "name": "Nordlys", "customerNumber": "10001",
                "address": {"city": "Aarhus", "postalCode": "8000"}}) as r:
            assert r.status == 201
            customer = await r.json()
        assert customer["address"]["city"] == "Aarhus" and customer["version"] == 1
        async with http.patch(f"{admin}/customers/{customer['id']}",
                              json={"email": "x@y.dk"}) as r:
            assert (await r.json())["version"] == 2
        async with http.post(f"{admin}/projects", json={"name": "P",
                                                        "customerId": customer["id"]}) as r:
            project = await r.json()
        async with http.post(f"{admin}/invoices", json={
                "customerId": customer["id"], "projectId": project["id"],
                "totalExcludingVat": "80.00", "finalize": True}) as r:
            invoice = await r.json()
        assert (invoice["status"], invoice["totalIncludingVat"]) == ("FINALIZED", "100.00")
        async with http.post(f"{admin}/invoices/{invoice['id']}/credit") as r:
            assert r.status == 201 and (await r.json())["isCreditNote"] is True
        async with http.post(f"{admin}/invoices", json={"customerId": customer["id"],
                                                        "totalExcludingVat": 1.5}) as r:
            assert r.status == 400 and "not a float" in (await r.json())["message"]
        async with http.patch(f"{admin}/projects/999", json={"name": "x"}) as r:
            assert r.status == 404
        async with http.post(f"{admin}/faults", json={"status": 429, "retryAfter": 3}) as r:
            assert r.status == 201
        async with http.get(f"{sandbox.api_url}/companies/acme/customers",
                            headers=AUTH) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "3"
        async with http.get(f"{admin}/requests") as r:
            assert [q["status"] for q in await r.json()] == [429]
        async with http.delete(f"{admin}/customers/{customer['id']}") as r:
            assert r.status == 204
        async with http.get(f"{sandbox.api_url}/companies/acme/customers/{customer['id']}",
                            headers=AUTH) as r:
            assert r.status == 404
        async with http.post(f"{admin}/sample", json={"customers": 3, "projects": 2,
                                                      "invoices": 4, "seed": 9}) as r:
            assert r.status == 201 and (await r.json())["invoices"] == 4
        async with http.post(f"{admin}/webhook/fire", json={
                "kind": "project", "id": project["id"], "event": "RESEND"}) as r:
            assert (await r.json()) == {"status": 202, "error": None}
        async with http.post(f"{admin}/webhook/fire", json={"kind": "claim", "id": 1}) as r:
            assert r.status == 400
        async with http.get(admin) as r:
            state = await r.json()
        assert state["customers"] == 3 and state["webhookUrl"] == url
    await sandbox.webhooks_idle()
    assert len(got) == len(sandbox.webhook_deliveries) > 10


# --- sample data ------------------------------------------------------------------------------

def test_sample_data_is_deterministic_per_seed() -> None:
    def render(seed: int) -> list[moment_records.Json]:
        sb = moment_sandbox.MomentSandbox(now=fake_clock().utcnow)
        summary = sb.populate(customers=8, projects=6, invoices=40, seed=seed)
        assert (summary.customers, summary.projects, summary.invoices) == (8, 6, 40)
        assert summary.drafts > 0 and summary.credit_notes > 0
        return ([sb.render("customer", i) for i in sorted(sb.customers)]
                + [sb.render("project", i) for i in sorted(sb.projects)]
                + [sb.render("invoice", i) for i in sorted(sb.invoices)])

    first = render(seed=5)
    assert first == render(seed=5)
    assert first != render(seed=6)
    numbers = [o["invoiceNumber"] for o in first if "status" in o and o["invoiceNumber"]]
    assert len(numbers) == len(set(numbers))
