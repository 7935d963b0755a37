"""Unit tests of the pure mapping, plans and backoff (no I/O)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from daemon.core import backoff, plans
from daemon.core import events as ev
from daemon.core import mapping as mp

OPTS = mp.Options(vat_zones={"DK": 1, "EU": 2}, invoice_vat_code="", default_account=1010)


def cust(**kw: object) -> ev.CustomerUpserted:
    base: dict[str, object] = {"moment_id": 1, "number": "10001", "name": "Acme ApS",
                               "email": "a@acme.dk", "organization_number": "12345678",
                               "city": "Aarhus", "country_code": "DK"}
    base.update(kw)
    return ev.CustomerUpserted(**base)  # type: ignore[arg-type]


def inv(**kw: object) -> ev.InvoiceFinalized:
    base: dict[str, object] = {"moment_id": 9, "number": 42, "customer_number": "10001",
                               "project_number": "7", "invoice_date": "2026-11-20",
                               "due_date": "2026-12-04", "total_including_vat": "1250.00",
                               "currency": "DKK", "description": "Consulting"}
    base.update(kw)
    return ev.InvoiceFinalized(**base)  # type: ignore[arg-type]


def test_customer_maps_fields_and_vat_zone() -> None:
    m = mp.map_customer(cust(vat_code="EU"), OPTS)
    assert m.problem == "" and m.value is not None
    assert (m.value.number, m.value.name, m.value.corporate_id, m.value.vat_zone) == \
        (10001, "Acme ApS", "12345678", 2)
    assert mp.map_customer(cust(), OPTS).value.vat_zone == 1  # type: ignore[union-attr]


def test_unknown_vat_code_is_a_problem_with_a_reason() -> None:
    m = mp.map_customer(cust(vat_code="XX"), OPTS)
    assert m.value is None and "'XX'" in m.problem and "vat_zones" in m.problem


@pytest.mark.parametrize("num", ["0", "1000000000", "A-1", "", "-3"])
def test_numbers_outside_economic_range_are_problems(num: str) -> None:
    assert mp.map_customer(cust(number=num), OPTS).problem


def test_long_values_are_cut_with_a_warning_and_cut_value_is_not_drift() -> None:
    m = mp.map_customer(cust(city="X" * 60, name="N" * 300), OPTS)
    assert m.value is not None and len(m.value.city) == 50 and len(m.value.name) == 255
    assert len(m.warnings) == 2 and "city" in m.warnings[1]
    live = plans.LiveCustomer(number=10001, name="N" * 255, email="a@acme.dk",
                              corporate_id="12345678", city="X" * 50, country="Danmark", vat_zone=1)
    assert plans.plan(m.value, live) == plans.NOTHING
    p = mp.map_project(ev.ProjectUpserted(moment_id=1, number="7", name="P" * 101,
                                          customer_number="10001"), OPTS)
    assert p.value is not None and len(p.value.name) == 100 and p.warnings


def test_invoice_entry_mapping() -> None:
    m = mp.map_invoice(inv(), OPTS)
    assert m.value is not None
    e = m.value
    assert (e.invoice_number, e.text, e.customer_number, e.project_number, e.date, e.amount,
            e.contra_account, e.contra_vat_code) == \
        (42, "Consulting", 10001, 7, "2026-11-20", Decimal("1250.00"), 1010, "")
    e2 = mp.map_invoice(inv(description="", financial_account="1020", is_credit_note=True,
                            total_including_vat="-99.50"),
                        mp.Options(invoice_vat_code="U25")).value
    assert e2 is not None and e2.text == "Kreditnota 42" and e2.contra_account == 1020
    assert e2.amount == Decimal("-99.50") and e2.contra_vat_code == "U25"
    e3 = mp.map_invoice(inv(description=""), mp.Options(language="en")).value
    assert e3 is not None and e3.text == "Invoice 42"
    e4 = mp.map_invoice(inv(description=""), OPTS).value
    assert e4 is not None and e4.text == "Faktura 42"
    long = mp.map_invoice(inv(description="d" * 300), OPTS)
    assert long.value is not None and len(long.value.text) == 250 and long.warnings
    assert mp.map_invoice(inv(customer_number=""), OPTS).problem


def test_a_sign_that_contradicts_is_credit_note_parks_the_invoice() -> None:
    credit = mp.map_invoice(inv(is_credit_note=True, total_including_vat="99.50"), OPTS)
    assert credit.value is None and "credit note" in credit.problem
    invoice = mp.map_invoice(inv(total_including_vat="-99.50"), OPTS)
    assert invoice.value is None and "negative" in invoice.problem
    assert mp.map_invoice(inv(is_credit_note=True, total_including_vat="-99.50"), OPTS).value


def test_customer_plans() -> None:
    d = mp.map_customer(cust(), OPTS).value
    assert d is not None
    assert plans.plan(d, None).name == "create"
    assert plans.plan(d, None, applied_before=True).name == "recreate"
    live = plans.LiveCustomer(number=10001, name="Acme", email="a@acme.dk",
                              corporate_id="12345678", city="Aarhus", country="danmark", vat_zone=1,
                              zip="")
    a = plans.plan(d, live)
    assert a.name == "update" and a.fields == ("name",) and a.writes


def test_project_plans() -> None:
    d = mp.ProjectFields(number=7, name="Build", customer_number=10001)
    assert plans.plan(d, plans.LiveProject(number=7, name="Build", customer_number=10001)
                      ) == plans.NOTHING
    closed = plans.plan(d, plans.LiveProject(number=7, name="Build", closed=True))
    assert closed.name == "report_closed" and not closed.writes
    assert plans.plan(d, plans.LiveProject(number=7, name="Build", customer_number=10001,
                                           barred=True)).fields == ("barred",)


def test_invoice_steps_in_order() -> None:
    d = mp.map_invoice(inv(), OPTS).value
    assert d is not None
    h = mp.invoice_content(inv())
    step = plans.InvoiceProgress
    kw = {"include_pdf": True, "auto_book": True, "desired_hash": h}
    assert plans.plan_invoice(d, step(), **kw).name == "transfer"  # type: ignore[arg-type]
    assert plans.plan_invoice(d, step(entry_created=True), **kw).name == "attach"  # type: ignore[arg-type]
    assert plans.plan_invoice(d, step(entry_created=True, pdf_done=True),
                              **kw).name == "book"  # type: ignore[arg-type]
    assert plans.plan_invoice(d, step(entry_created=True, pdf_done=True, booked=True,
                                      applied_hash=h), **kw) == plans.NOTHING  # type: ignore[arg-type]
    assert plans.plan_invoice(d, step(entry_created=True, pdf_done=True, booked=True,
                                      applied_hash=mp.invoice_content(inv(total_vat="1"))),
                              **kw).name == "report_booked_mismatch"  # type: ignore[arg-type]
    # a digest an older daemon recorded (of its mapping, not of Moment's invoice) is not a change
    assert plans.plan_invoice(d, step(entry_created=True, pdf_done=True, booked=True,
                                      applied_hash=mp.fields_hash(d)),
                              **kw) == plans.NOTHING  # type: ignore[arg-type]
    assert plans.plan_invoice(d, step(entry_created=True), include_pdf=False, auto_book=False,
                              desired_hash=h) == plans.NOTHING


def test_entry_lookup_compares_number_amount_and_date() -> None:
    d = mp.map_invoice(inv(), OPTS).value
    assert d is not None
    e = plans.LiveEntry(entry_number=1, voucher_number=3, invoice_number="42",
                        customer_number=10001, amount=Decimal("1250.0"),
                        date="2026-11-20T00:00:00Z")
    assert plans.entry_matches(d, e)
    assert not plans.entry_matches(d, plans.LiveEntry(
        entry_number=1, voucher_number=3, invoice_number="42", customer_number=10001,
        amount=Decimal("1250.01"), date="2026-11-20"))


def test_strays_by_org_number_else_name_and_email() -> None:
    managed = [mp.CustomerFields(number=1, name="A", email="a@x", corporate_id="111"),
               mp.CustomerFields(number=2, name="B", email="b@x")]
    live = [plans.LiveCustomer(number=1, name="A", corporate_id="111"),
            plans.LiveCustomer(number=50, name="Renamed", corporate_id="111"),
            plans.LiveCustomer(number=51, name="b", email="B@x"),
            plans.LiveCustomer(number=52, name="Someone else", email="z@x")]
    strays = plans.find_strays(managed, live, {1, 2})
    assert [(s.number, s.managed_key) for s in strays] == [(50, "1"), (51, "2")]


def test_backoff_is_exponential_jittered_capped_and_honours_retry_after() -> None:
    p = backoff.Policy(base_s=1.0, cap_s=60.0, max_attempts=4)
    assert backoff.delay(p, 1, 0.0) == 0.5
    assert backoff.delay(p, 3, 0.5) == 3.0
    assert backoff.delay(p, 20, 0.999) < 60.0 and backoff.delay(p, 20, 0.0) == 30.0
    assert backoff.delay(p, 1, 0.0, retry_after=7) == 7
    assert not backoff.exhausted(p, 3) and backoff.exhausted(p, 4)
    with pytest.raises(ValueError):
        backoff.delay(p, 0, 0.1)


def test_configuration_is_not_content() -> None:
    """Changing default_account, invoice_vat_code or journal_number changes the entry a
    not-yet-sent invoice gets, never the content a booked invoice is compared by; crediting
    the invoice in Moment (its status) is not a change of it either."""
    fact = inv(financial_account="")
    base = mp.map_invoice(fact, OPTS).value
    assert base is not None
    for opts in (mp.Options(default_account=1020), mp.Options(invoice_vat_code="U25"),
                 mp.Options(journal_number=3)):
        other = mp.map_invoice(fact, opts).value
        assert other is not None and mp.fields_hash(other) != mp.fields_hash(base)
    content = mp.invoice_content(fact)
    assert content == mp.invoice_content(msgspec.structs.replace(fact, status="CREDITED",
                                                                 version=9))
    assert content != mp.invoice_content(msgspec.structs.replace(fact, total_vat="250.00"))
    booked = plans.InvoiceProgress(entry_created=True, pdf_done=True, booked=True,
                                   applied_hash=content)
    for opts in (mp.Options(default_account=1020), mp.Options(invoice_vat_code="U25")):
        other = mp.map_invoice(fact, opts).value
        assert other is not None
        assert plans.plan_invoice(other, booked, include_pdf=True, auto_book=True,
                                  desired_hash=mp.invoice_content(fact)) == plans.NOTHING
