"""Normalizing Moment snapshots: numbers taken only when e-conomic can hold them, drafts never."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from daemon.core import events as ev
from daemon.ingest import normalizing
from daemon.ingest.ingesting import Outcome
from daemon.moment import shapes
from daemon.sandbox import moment_data
from tests.ingest.conftest import Harness

STAMP = dt.datetime(2026, 11, 20, 9, 14, tzinfo=dt.UTC)


def customer(number: str, **fields: object) -> shapes.Customer:
    base: dict[str, object] = {"id": 62788973, "customer_number": number, "name": "Nordlys",
                               "last_modified_date": STAMP, "version": 7}
    return shapes.Customer(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize("number", ["1", "10001", "999999999"])
def test_whole_numbers_in_range_are_facts(number: str) -> None:
    fact = normalizing.customer_fact(customer(number))
    assert isinstance(fact, ev.CustomerUpserted) and fact.number == number
    assert fact.last_modified == "2026-11-20T09:14:00Z"


@pytest.mark.parametrize(("number", "why"), [
    ("0", "whole number from 1"),
    ("-5", "whole number from 1"),
    ("1000000000", "above e-conomic's largest"),
    ("007", "leading zeros"),
    (" 12", "spaces"),
    ("12.0", "whole number from 1"),
    ("K-100", "whole number from 1"),
    ("", "whole number from 1"),
    ("١٢", "whole number from 1"),  # Arabic-Indic digits are digits to Python, not to e-conomic
])
def test_other_numbers_are_refused_with_a_reason(number: str, why: str) -> None:
    refusal = normalizing.customer_fact(customer(number))
    assert isinstance(refusal, normalizing.Refusal)
    assert why in refusal.reason and "change the customer number in Moment" in refusal.reason
    assert refusal.key == (number or "id:62788973")


def test_customer_fields_are_mirrored_and_keys_follow_design() -> None:
    fact = normalizing.customer_fact(customer(
        "10001", email="a@b.dk", organization_number="DK1", vat_code="EU",
        address=shapes.Address(street="Vej 1", postal_code="8000", city="Aarhus",
                               country_code="DK")))
    assert isinstance(fact, ev.CustomerUpserted)
    assert (fact.email, fact.organization_number, fact.vat_code, fact.street, fact.postal_code,
            fact.city, fact.country_code) == ("a@b.dk", "DK1", "EU", "Vej 1", "8000", "Aarhus",
                                              "DK")
    assert normalizing.fact_key(fact) == f"customer:62788973:7:{ev.content_hash(fact)}"
    empty = normalizing.customer_fact(customer("10001"))
    assert isinstance(empty, ev.CustomerUpserted)
    assert (empty.email, empty.street, empty.vat_code) == ("", "", "")


def test_invoices_drafts_and_credit_notes() -> None:
    raw = {"id": 106939080, "invoiceNumber": 1, "status": "FINALIZED", "isCreditNote": False,
           "creditedInvoiceNumber": None, "description": "Rådgivning februar",
           "invoiceDate": "2026-11-20", "dueDate": "2026-12-04", "currency": "DKK",
           "totalExcludingVat": "10000.00", "totalVat": "2500.00",
           "totalIncludingVat": "12500.00", "financialAccountNumber": "1010",
           "customer": {"id": 62788973, "customerNumber": "10001"},
           "project": {"id": 62788980, "projectNumber": "1"},
           "finalizedDate": "2026-11-20T09:20:00Z", "lastModifiedDate": "2026-11-20T09:20:00Z",
           "version": 2}
    invoice = msgspec.json.decode(msgspec.json.encode(raw), type=shapes.Invoice)
    fact = normalizing.invoice_fact(invoice, pdf_sha256="ab" * 32, pdf_size=1234)
    assert fact == ev.InvoiceFinalized(
        moment_id=106939080, number=1, status="FINALIZED", description="Rådgivning februar",
        invoice_date="2026-11-20", due_date="2026-12-04", currency="DKK",
        total_excluding_vat="10000.00", total_vat="2500.00", total_including_vat="12500.00",
        financial_account="1010", customer_number="10001", project_number="1",
        pdf_sha256="ab" * 32, pdf_size=1234, finalized_date="2026-11-20T09:20:00Z", version=2)
    assert normalizing.fact_key(fact) == "invoice:1"
    credited = normalizing.credited(fact, msgspec.structs.replace(invoice, status="CREDITED",
                                                                   version=3))
    assert (credited.status, credited.version, credited.pdf_sha256) == ("CREDITED", 3, "ab" * 32)
    assert normalizing.credited_key(1) == "invoice:1:credited"
    draft = msgspec.structs.replace(invoice, status="DRAFT", invoice_number=None)
    assert normalizing.invoice_fact(draft, pdf_sha256="", pdf_size=0) is None
    numberless = msgspec.structs.replace(invoice, invoice_number=None)
    refusal = normalizing.invoice_fact(numberless, pdf_sha256="", pdf_size=0)
    assert isinstance(refusal, normalizing.Refusal) and refusal.key == "id:106939080"
    note = msgspec.structs.replace(invoice, id=5, invoice_number=2, is_credit_note=True,
                                   credited_invoice_number=1, total_including_vat="-12500.00",
                                   project=None)
    note_fact = normalizing.invoice_fact(note, pdf_sha256="cd" * 32, pdf_size=1)
    assert isinstance(note_fact, ev.InvoiceFinalized)
    assert (note_fact.is_credit_note, note_fact.credited_invoice_number,
            note_fact.total_including_vat, note_fact.project_number) == (
        True, 1, "-12500.00", "")


@pytest.mark.anyio
async def test_an_unusable_number_parks_the_entity_and_no_fact_is_written(
        harness: Harness) -> None:
    sb = harness.sandbox
    bad = sb.add_customer(name="Forkert Nummer ApS", customer_number="K-17")
    await harness.settle()
    assert await harness.events(ev.CustomerUpserted) == []
    parked = [e for e in await harness.events(ev.Parked) if isinstance(e, ev.Parked)]
    assert [(p.kind, p.key) for p in parked] == [("customer", "K-17")]
    assert "whole number from 1 to 999999999" in parked[0].reason
    # once fixed in Moment it is a fact under its new number
    sb.change_customer(bad.id, customer_number="17")
    await harness.settle()
    facts = [e for e in await harness.events(ev.CustomerUpserted)
             if isinstance(e, ev.CustomerUpserted)]
    assert [(f.number, f.moment_id) for f in facts] == [("17", bad.id)]


@pytest.mark.anyio
async def test_an_older_snapshot_never_replaces_a_newer_fact(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    made = sb.add_customer(name="Gammel", customer_number="80001")
    old = await harness.client.get_customer(made.id)
    sb.change_customer(made.id, name="Ny")
    assert await harness.processor.process("customer", made.id) == Outcome.APPENDED
    assert await harness.processor.ingest(old) == Outcome.STALE
    assert harness.log.tables.customers()["80001"].fact.name == "Ny"


def test_a_foreign_currency_invoice_keeps_moments_exchange_rate() -> None:
    """API.md: ``exchangeRate`` (DKK per 100 units) comes with an invoice not in DKK; the fact
    keeps it as Moment wrote it, and an invoice without one records none."""
    data = moment_data.MomentData(now=lambda: STAMP)
    cust = data.add_customer(name="Nordlys")
    eur = data.add_invoice(customer_id=cust.id, total_excluding_vat="100.00", currency="EUR",
                           exchange_rate="745.60", finalize=True)
    dkk = data.add_invoice(customer_id=cust.id, total_excluding_vat="100.00", finalize=True)
    facts = []
    for record in (eur, dkk):
        served = msgspec.json.encode(data.render("invoice", record.id))
        invoice = msgspec.json.decode(served, type=shapes.Invoice)
        facts.append(normalizing.invoice_fact(invoice, pdf_sha256="", pdf_size=0))
    assert [(f.currency, f.exchange_rate) for f in facts
            if isinstance(f, ev.InvoiceFinalized)] == [("EUR", "745.60"), ("DKK", "")]
