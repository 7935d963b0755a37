"""Invoice PDFs: stored once by content, refused when not a PDF or over the cap."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from daemon.core import events as ev
from daemon.core import secrets
from daemon.ingest import pdfs
from daemon.ingest.ingesting import Outcome
from daemon.moment import client as moment_client
from daemon.moment import errors
from tests.clocks import FakeClock
from tests.ingest.conftest import Harness, running

pytestmark = pytest.mark.anyio


def finalized(harness: Harness, total: str = "100.00") -> int:
    sb = harness.sandbox
    customer = sb.add_customer(name="PDF ApS")
    invoice = sb.add_invoice(customer_id=customer.id, total_excluding_vat=total, finalize=True)
    return invoice.id


async def test_the_same_pdf_fetched_twice_is_stored_once(harness: Harness) -> None:
    harness.sandbox.set_webhook(None)
    invoice_id = finalized(harness)
    expected = harness.sandbox.invoice_pdf(invoice_id)
    first = await pdfs.fetch_and_store(harness.client, harness.log, invoice_id)
    second = await pdfs.fetch_and_store(harness.client, harness.log, invoice_id)
    assert first == second == pdfs.StoredPdf(sha256=hashlib.sha256(expected).hexdigest(),
                                             size=len(expected))
    assert await harness.log.blob_count() == 1
    assert await harness.log.get_blob(first.sha256) == expected
    assert harness.sandbox.count(path_contains=f"/invoices/{invoice_id}/pdf") == 2


async def test_an_invoice_fact_carries_its_pdf_hash_and_size(harness: Harness) -> None:
    invoice_id = finalized(harness)
    await harness.settle()
    facts = [e for e in await harness.events(ev.InvoiceFinalized)
             if isinstance(e, ev.InvoiceFinalized)]
    assert len(facts) == 1 and facts[0].moment_id == invoice_id
    pdf = harness.sandbox.invoice_pdf(invoice_id)
    assert (facts[0].pdf_sha256, facts[0].pdf_size) == (hashlib.sha256(pdf).hexdigest(), len(pdf))
    assert await harness.log.blob_count() == 1


async def test_a_non_pdf_is_refused_parked_and_taken_once_fixed(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    invoice_id = finalized(harness)
    real = sb.invoice_pdf
    monkeypatch.setattr(sb, "invoice_pdf", lambda _id: b"<html>oops</html>")
    assert await harness.processor.process("invoice", invoice_id) == Outcome.PARKED
    assert await harness.events(ev.InvoiceFinalized) == []
    assert await harness.log.blob_count() == 0
    parked = [e for e in await harness.events(ev.Parked) if isinstance(e, ev.Parked)]
    assert len(parked) == 1
    assert (parked[0].kind, parked[0].key, parked[0].source) == ("invoice", "1", "ingest")
    assert "is not a PDF" in parked[0].reason and "resync" in parked[0].reason
    state = harness.log.tables.state("invoice", "1")
    assert state.parked and state.reason == parked[0].reason
    # the same refusal again records nothing new
    assert await harness.processor.process("invoice", invoice_id) == Outcome.PARKED
    assert len(await harness.events(ev.Parked)) == 1

    monkeypatch.setattr(sb, "invoice_pdf", real)
    assert await harness.poller.resync("invoice", "1") == Outcome.APPENDED
    assert not harness.log.tables.state("invoice", "1").parked
    unparked = await harness.events(ev.Unparked)
    assert unparked == [ev.Unparked(kind="invoice", key="1", by="ingest")]


async def test_reconciles_parking_is_not_lifted_by_ingest(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    customer = sb.add_customer(name="Parkeret ApS", customer_number="60001")
    await harness.processor.process("customer", customer.id)
    await harness.log.append(ev.Parked(kind="customer", key="60001", reason="VAT zone unknown"),
                             idempotency_key="reconcile-park")
    sb.change_customer(customer.id, name="Parkeret A/S")
    assert await harness.processor.process("customer", customer.id) == Outcome.APPENDED
    assert harness.log.tables.state("customer", "60001").parked
    assert await harness.events(ev.Unparked) == []


async def test_an_announced_pdf_over_the_cap_is_refused(clock: FakeClock) -> None:
    async with running(clock, pdf_max_bytes=500) as harness:
        harness.sandbox.set_webhook(None)
        invoice_id = finalized(harness)
        assert await harness.processor.process("invoice", invoice_id) == Outcome.PARKED
        parked = (await harness.events(ev.Parked))[0]
        assert isinstance(parked, ev.Parked) and "over the" in parked.reason
        assert await harness.log.blob_count() == 0
        assert await harness.events(ev.InvoiceFinalized) == []


async def _pdf_server(body: list[bytes], content_type: str = "application/pdf",
                      ) -> AsyncIterator[str]:
    async def pdf(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for chunk in body:
            await response.write(chunk)
        await response.write_eof()
        return response

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"status": 404, "message": "no invoice"}, status=404)

    app = web.Application()
    app.router.add_get("/api/companies/acme/invoices/1/pdf", pdf)
    app.router.add_get("/api/companies/acme/invoices/2/pdf", missing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/api"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("chunks", "problem"), [
    ([b"%PDF-1.4\n", b"x" * 600], "over the"),
    ([b"%PD", b"F-1.7 ok"], None),
    ([b"PK\x03\x04zip"], "is not a PDF"),
    ([], "is not a PDF"),
])
async def test_a_streamed_pdf_is_capped_while_it_is_read(chunks: list[bytes],
                                                         problem: str | None) -> None:
    async for api_url in _pdf_server(chunks):
        async with moment_client.MomentClient(api_url=api_url, company="acme",
                                              api_key=secrets.Secret("k"),
                                              clock=FakeClock()) as client:
            if problem is None:
                assert await pdfs.fetch(client, 1, max_bytes=500) == b"".join(chunks)
            else:
                with pytest.raises(pdfs.PdfRefused, match=problem):
                    await pdfs.fetch(client, 1, max_bytes=500)
            with pytest.raises(pdfs.PdfRefused, match="would not hand out"):
                await pdfs.fetch(client, 2)


async def test_a_retryable_pdf_error_is_raised_for_the_caller_to_retry(
        harness: Harness) -> None:
    harness.sandbox.set_webhook(None)
    invoice_id = finalized(harness)
    harness.sandbox.faults.add(503, count=1, path_contains="/pdf")
    with pytest.raises(errors.ServerError):
        await pdfs.fetch(harness.client, invoice_id)
