"""Contract tests: the client against the sandbox over loopback HTTP, every document checked
against e-conomic's official schemas."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from daemon.core.secrets import Secret
from daemon.economic import errors, payloads
from daemon.economic import filters as f
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from tests.clocks import FakeClock
from tests.economic.conftest import make_client, validate_traffic

pytestmark = pytest.mark.anyio
TODAY = dt.datetime.now(dt.UTC).date()


def customer(n: int, name: str, **kw: object) -> payloads.CustomerWrite:
    return payloads.CustomerWrite(
        customerNumber=n, name=name, currency="DKK",
        customerGroup=payloads.CustomerGroupRef(customerGroupNumber=1),
        paymentTerms=payloads.PaymentTermsRef(paymentTermsNumber=1),
        vatZone=payloads.VatZoneRef(vatZoneNumber=1), **kw)  # type: ignore[arg-type]


def entry(customer_no: int, invoice: int, amount: str, **kw: object
          ) -> payloads.DraftEntryWrite:
    return payloads.DraftEntryWrite(
        entryTypeNumber=10, journalNumber=1, date=f"{TODAY.isoformat()}T00:00:00Z",
        amount=Decimal(amount), currency="DKK", customerNumber=customer_no,
        customerInvoiceNumber=str(invoice), contraAccountNumber=1010,
        text=f"Invoice {invoice}", **kw)  # type: ignore[arg-type]


async def test_paging_2500_customers_takes_3_calls(sandbox: EconomicSandbox,
                                                   client: EconomicClient) -> None:
    sandbox.agreement.add_customers(2500)
    got = [c.customerNumber async for c in client.iter_customers()]
    assert got == list(range(1, 2501))
    calls = sandbox.requests(method="GET", path_contains="/rest/customers")
    assert len(calls) == 3
    assert calls[0].query == "skippages=0&pagesize=1000"
    assert "skippages=2" in calls[2].query
    assert validate_traffic(sandbox) == 3


async def test_paging_follows_filter_and_sort_across_pages(sandbox: EconomicSandbox,
                                                           client: EconomicClient) -> None:
    sandbox.agreement.add_customers(30)
    got = [c.customerNumber async for c in client.iter_customers(
        filter=f.gt("customerNumber", 10), sort="-customerNumber", page_size=7)]
    assert got == list(range(30, 10, -1))
    assert len(sandbox.requests(path_contains="/rest/customers")) == 3


async def test_cursor_paging_reads_every_project(sandbox: EconomicSandbox,
                                                 client: EconomicClient) -> None:
    sandbox.cursor_page_size = 10
    sandbox.agreement.add_customers(1)
    for n in range(1, 26):
        sandbox.agreement.add_project(n, f"Project {n}", customerNumber=1)
    got = [p.number async for p in client.iter_projects()]
    assert got == list(range(1, 26))
    assert len(sandbox.requests(path_contains="/Projects")) == 3
    assert [p.number async for p in client.iter_projects(filter=f.in_("number", [3, 24]))] \
        == [3, 24]
    validate_traffic(sandbox)


@pytest.mark.parametrize("name", ["A (b), c* $d [e]", "50% off_sale", "x$and:y", "tab\tend",
                                  "Ørsted & Søn", "a)b", "[[]"])
async def test_filter_values_are_escaped(sandbox: EconomicSandbox, client: EconomicClient,
                                         name: str) -> None:
    sandbox.agreement.add_customers(3)
    sandbox.agreement.add_customer(77, name)
    assert [c.customerNumber async for c in client.iter_customers(filter=f.eq("name", name))] \
        == [77]
    assert [c.customerNumber async for c in client.iter_customers(
        filter=f.like("name", name[1:]))] == [77]
    combined = f.eq("name", name) | (f.eq("customerNumber", 2) & f.ne("city", "Nowhere"))
    assert [c.customerNumber async for c in client.iter_customers(filter=combined)] == [2, 77]


async def test_filters_by_last_updated_and_null(sandbox: EconomicSandbox,
                                                client: EconomicClient) -> None:
    sandbox.agreement.add_customers(3)
    sandbox.agreement.customers[2]["lastUpdated"] = "2020-01-01T00:00:00Z"
    sandbox.agreement.edit_customer(3, {"email": None})
    since = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    assert [c.customerNumber async for c in client.iter_customers(
        filter=f.gt("lastUpdated", since))] == [1, 3]
    assert [c.customerNumber async for c in client.iter_customers(
        filter=f.eq("email", None))] == [3]


async def test_put_customer_replaces_and_creates(sandbox: EconomicSandbox,
                                                 client: EconomicClient) -> None:
    first = await client.put_customer(customer(10, "Acme", city="Aarhus", email="a@x.dk"),
                                      idempotency_key="c10-1")
    assert first.created and first.customer.city == "Aarhus"
    # A person adds a field e-conomic keeps; reading and writing back whole preserves it.
    sandbox.agreement.edit_customer(10, {"website": "https://acme.example"})
    live = await client.get_customer(10)
    desired = msgspec.structs.replace(payloads.writable(live, payloads.CustomerWrite),
                                      name="Acme A/S", city=None)
    second = await client.put_customer(desired, idempotency_key="c10-2")
    assert not second.created
    stored = sandbox.agreement.customers[10]
    assert stored["name"] == "Acme A/S" and "city" not in stored
    assert stored["website"] == "https://acme.example"
    assert await client.find_customer(11) is None
    validate_traffic(sandbox)


async def test_validation_errors_carry_field_messages(sandbox: EconomicSandbox,
                                                      client: EconomicClient) -> None:
    bad = msgspec.structs.replace(customer(5, "X"), currency="ZZZ",
                                  vatZone=payloads.VatZoneRef(vatZoneNumber=9))
    with pytest.raises(errors.ValidationError) as ei:
        await client.put_customer(bad, idempotency_key="bad-1")
    e = ei.value
    assert not e.retryable and e.status == 400 and e.code == "E06000"
    assert e.fields == {"vatZone": ["vatZone does not exist."],
                        "currency": ["currency does not exist."]}
    assert e.method == "PUT" and e.path == "/customers/{n}"
    with pytest.raises(errors.ValidationError) as pe:
        await client.create_project(payloads.ProjectWrite(name="P", projectGroupNumber=1),
                                    idempotency_key="p-bad")
    assert pe.value.code == "ProjectCannotBeCreatedUpdatedCustomerNumberRequired"
    assert list(pe.value.fields) == ["customerNumber"]
    with pytest.raises(errors.ValidationError) as fe:
        [c async for c in client.iter_customers(filter="bogus$eq:1")]
    assert fe.value.fields == {"": ["Filtering is not allowed on property 'bogus'."]}
    validate_traffic(sandbox)


async def test_status_codes_map_to_errors(sandbox: EconomicSandbox, clock: FakeClock) -> None:
    async with EconomicClient(rest_url=sandbox.rest_url, apis_url=sandbox.apis_url,
                              app_secret_token=Secret("wrong"),
                              agreement_grant_token=Secret(sandbox.agreement_grant_token),
                              clock=clock) as bad:
        with pytest.raises(errors.Unauthorized) as u:
            await bad.get_self()
        with pytest.raises(errors.Unauthorized):
            await bad.get_project(1)
    assert sandbox.agreement_grant_token not in repr(u.value) + str(u.value) + u.value.body
    async with make_client(sandbox, clock) as client:
        with pytest.raises(errors.NotFound) as nf:
            await client.get_customer(424242)
        assert nf.value.code == "E06000"
        with pytest.raises(errors.NotFound) as nfp:
            await client.get_project(424242)
        assert nfp.value.code == "ResourceNotFound"
        assert await client.has_project_module()
        sandbox.agreement.project_module = False
        assert not await client.has_project_module()
        with pytest.raises(errors.MissingModule) as mm:
            [p async for p in client.iter_projects()]
        assert mm.value.code == "AccessDeniedAgreementMissingModules"
        assert isinstance(mm.value, errors.Forbidden) and not mm.value.retryable
        sandbox.agreement.project_module = True
        sandbox.agreement.attachments = "forbidden"
        with pytest.raises(errors.Forbidden) as fb:
            await client.attach_document(accounting_year=str(TODAY.year), voucher_number=1,
                                         content=b"%PDF-1.4", filename="x.pdf",
                                         idempotency_key="att")
        assert not isinstance(fb.value, errors.MissingModule)
        for kind, cls in (("500", errors.ServerError), ("503", errors.ServerError),
                          ("reset", errors.TransportError)):
            # aiohttp itself resends a GET once when a reused connection drops: fault both.
            sandbox.inject(kind, 2 if kind == "reset" else 1)
            with pytest.raises(cls) as ex:
                await client.get_self()
            assert ex.value.retryable
    validate_traffic(sandbox)


async def test_a_put_with_a_stale_version_is_a_conflict(sandbox: EconomicSandbox,
                                                        client: EconomicClient) -> None:
    sandbox.agreement.add_customers(2)
    number = await client.create_project(
        payloads.ProjectWrite(number=500, name="Build", projectGroupNumber=1, customerNumber=1),
        idempotency_key="p500")
    assert number == 500
    stale = await client.get_project(500)
    sandbox.agreement.edit_project(500, {"description": "edited in e-conomic"})
    with pytest.raises(errors.Conflict) as c:
        await client.put_project(payloads.writable(stale, payloads.ProjectWrite),
                                 idempotency_key="p500-stale")
    assert c.value.status == 409 and c.value.code == "UpdateConflict"

    validate_traffic(sandbox)


async def test_invoice_flow_books_and_attaches(sandbox: EconomicSandbox,
                                               client: EconomicClient) -> None:
    sandbox.agreement.add_customers(3)
    sandbox.agreement.add_project(7, "Site", customerNumber=2)
    [one] = await client.create_draft_entries([entry(2, 1001, "1250.00", projectNumber=7)],
                                              idempotency_key="inv-1001")
    more = await client.create_draft_entries([entry(3, 1002, "-100.00"), entry(3, 1003, "50")],
                                             idempotency_key="inv-bulk")
    drafts = [d async for d in client.iter_draft_entries(
        filter=f.eq("entryTypeNumber", 10) & f.eq("customerNumber", 3))]
    assert [d.entryNumber for d in drafts] == more
    assert [d.customerInvoiceNumber for d in drafts] == ["1002", "1003"]
    vouchers = sorted({d.voucherNumber or 0 for d in drafts})
    assert len(vouchers) == 2  # one voucher per invoice
    year = str(TODAY.year)
    doc = await client.attach_document(accounting_year=year, voucher_number=vouchers[0],
                                       content=b"%PDF-1.4 invoice", filename="1002.pdf",
                                       idempotency_key="pdf-1002")
    with pytest.raises(errors.ValidationError) as dup:
        await client.attach_document(accounting_year=year, voucher_number=vouchers[0],
                                     content=b"%PDF-1.4 again", filename="1002.pdf",
                                     idempotency_key="pdf-1002-again")
    assert dup.value.code == "DocumentAlreadyAttachedToVoucher"
    assert sandbox.agreement.documents[doc].voucher_number == vouchers[0]
    await client.book_draft_entries(1, [one, *more], idempotency_key="book-1")
    assert sandbox.agreement.draft_entries == {}
    booked = [b async for b in client.iter_booked_entries(
        filter=f.eq("customerInvoiceNumber", 1001) & f.eq("customerNumber", 2))]
    assert [(b.amount, b.projectNumber, b.voucherNumber) for b in booked] == \
        [(Decimal("1250.00"), 7, 1)]
    validate_traffic(sandbox)


async def test_lookups_and_self_match_the_seed(sandbox: EconomicSandbox,
                                               client: EconomicClient) -> None:
    me = await client.get_self()
    assert me.agreementNumber == sandbox.agreement.agreement_number
    assert [g.customerGroupNumber for g in await client.customer_groups()] == [1]
    assert [t.paymentTermsNumber for t in await client.payment_terms()] == [1]
    assert "DKK" in {c.code for c in await client.currencies()}
    assert [z.vatZoneNumber for z in await client.vat_zones()] == [1, 2, 3, 4]
    assert "U25" in {v.vatCode for v in await client.vat_accounts()}
    assert 1010 in {a.accountNumber for a in await client.accounts()}
    assert [j.journalNumber for j in await client.journals()] == [1]
    assert [g.number for g in await client.project_groups()] == [1]
    year = await client.accounting_year_for(TODAY)
    assert year is not None and year.year == str(TODAY.year)
    assert len(await client.accounting_years()) == 3
    assert validate_traffic(sandbox) >= 11


async def test_thousands_of_customers_flow_through(clock: FakeClock) -> None:
    async with EconomicSandbox.running(clock=clock.now) as sb, \
            make_client(sb, clock, max_in_flight=8) as client:
        async def put(n: int) -> bool:
            done = await client.put_customer(customer(n, f"Bulk {n}", city="Odense"),
                                             idempotency_key=f"bulk-{n}")
            return done.created

        created = await asyncio.gather(*(put(n) for n in range(1, 3001)))
        assert all(created) and len(sb.agreement.customers) == 3000
        listed = [c async for c in client.iter_customers(filter=f.eq("city", "odense"))]
        assert len(listed) == 3000
        assert client.stats().calls_today == 3003
