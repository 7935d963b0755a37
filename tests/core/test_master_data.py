"""Master data (DESIGN.md, "Which fields Moment owns", "Country", "VAT zone"), pure: Moment owns
what it fills in, a country is its name in ``language`` and any of its names is not drift, and
the VAT zone comes from Moment's VAT code, else ``vat_zone``, else the country."""

from __future__ import annotations

import msgspec
import pytest

from daemon.core import countries, plans
from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import projections as pj
from daemon.core import rows as rw

OPTS = mp.Options(vat_zones={"DK": 1, "EU": 2, "ABROAD": 3})


def cust(**kw: object) -> ev.CustomerUpserted:
    base: dict[str, object] = {"moment_id": 1, "number": "10001", "name": "Acme ApS",
                               "city": "Aarhus", "country_code": "DK"}
    base.update(kw)
    return ev.CustomerUpserted(**base)  # type: ignore[arg-type]


def mapped(fact: ev.CustomerUpserted, opts: mp.Options = OPTS,
           filled: tuple[str, ...] = ()) -> mp.CustomerFields:
    m = mp.map_customer(fact, opts, filled=filled)
    assert m.value is not None, m.problem
    return m.value


def live(**kw: object) -> plans.LiveCustomer:
    base: dict[str, object] = {"number": 10001, "name": "Acme ApS", "city": "Aarhus",
                               "country": "Danmark", "vat_zone": 1}
    base.update(kw)
    return plans.LiveCustomer(**base)  # type: ignore[arg-type]


# --- which fields Moment owns --------------------------------------------------------------

def test_a_field_moment_leaves_empty_and_never_filled_is_left_alone() -> None:
    d = mapped(cust(email=""))
    assert "email" in d.unowned
    assert plans.plan(d, live(email="bogholderi@acme.dk")) == plans.NOTHING
    assert "email" not in plans.customer_writes(d, None)  # not even sent at creation


def test_a_field_moment_emptied_is_emptied() -> None:
    d = mapped(cust(email=""), filled=("email",))
    assert "email" not in d.unowned
    a = plans.plan(d, live(email="old@acme.dk"))
    assert a.name == "update" and a.fields == ("email",)


def test_the_projection_remembers_every_field_a_fact_filled() -> None:
    row = pj.fold_customer(None, 1, "", cust(email="a@acme.dk", street="Vej 1"))
    row = pj.fold_customer(row, 2, "", cust(email="", street="Vej 1"))
    row = pj.fold_customer(row, 3, "", cust(email="", street=""))
    assert isinstance(row, rw.DesiredCustomer)
    assert set(row.filled) >= {"email", "street", "city", "country_code"}
    assert "postal_code" not in row.filled and "organization_number" not in row.filled


# --- country -------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "language", "name"), [
    ("DK", "da", "Danmark"), ("DE", "da", "Tyskland"), ("DK", "en", "Denmark"),
    ("DE", "en", "Germany"), ("se", "da", "Sverige"), ("DEU", "da", "Tyskland")])
def test_country_is_written_as_its_name_in_the_language(code: str, language: str,
                                                         name: str) -> None:
    d = mapped(cust(country_code=code), msgspec.structs.replace(OPTS, language=language))
    assert d.country == name and len(d.country_code) == 2


@pytest.mark.parametrize("name", ["Danmark", "DANMARK", "denmark", " Dänemark ", "Danemark",
                                  "Kingdom of Denmark", "Dinamarca", "Tanska"])
def test_any_name_of_the_same_country_is_not_drift(name: str) -> None:
    assert plans.plan(mapped(cust()), live(country=name)) == plans.NOTHING


@pytest.mark.parametrize("name", ["Tyskland", "DK", "", "Danmark A/S"])
def test_another_country_a_code_or_nothing_is_drift(name: str) -> None:
    a = plans.plan(mapped(cust()), live(country=name))
    assert a.name == "update" and "country" in a.fields


def test_an_unknown_country_code_parks_with_a_reason() -> None:
    m = mp.map_customer(cust(country_code="XX"), OPTS)
    assert m.value is None and "'XX'" in m.problem and "ISO 3166" in m.problem


# --- VAT zone ------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "zone"), [("DK", 1), ("DE", 2), ("FR", 2), ("NO", 3),
                                            ("US", 3), ("GB", 3), ("GL", 3), ("", 1)])
def test_without_a_vat_code_the_zone_comes_from_the_country(code: str, zone: int) -> None:
    d = mapped(cust(country_code=code))
    assert (d.vat_zone, d.zone_owned) == (zone, False)
    assert countries.zone_key(code) in OPTS.vat_zones


def test_a_german_customer_is_not_created_domestic() -> None:
    d = mapped(cust(country_code="DE", city="Berlin"))
    assert d.vat_zone == 2 and d.country == "Tyskland"
    assert "vat_zone" in plans.customer_writes(d, None)


def test_moments_vat_code_wins_then_the_configured_zone() -> None:
    assert (mapped(cust(country_code="DE", vat_code="DK")).vat_zone, True) == (1, True)
    assert mapped(cust(country_code="DE", vat_code="DK")).zone_owned
    conf = msgspec.structs.replace(OPTS, vat_zone="ABROAD")
    d = mapped(cust(country_code="DE"), conf)
    assert (d.vat_zone, d.zone_owned) == (3, False)
    m = mp.map_customer(cust(vat_code="MARS"), OPTS)
    assert m.value is None and "'MARS'" in m.problem and "vat_zones" in m.problem


def test_a_zone_from_the_country_is_the_accountants_once_written() -> None:
    d = mapped(cust(country_code="DE"))
    assert plans.plan(d, live(country="Tyskland", vat_zone=3)) == plans.NOTHING
    # Moment's country changes: the zone derived from the new country is written with it
    us = mapped(cust(country_code="US"))
    a = plans.plan(us, live(country="Tyskland", vat_zone=2))
    assert a.name == "update" and set(a.fields) == {"country", "vat_zone"}


def test_a_zone_from_moments_vat_code_is_owned() -> None:
    d = mapped(cust(country_code="DE", vat_code="EU"))
    a = plans.plan(d, live(country="Tyskland", vat_zone=3))
    assert a.name == "update" and a.fields == ("vat_zone",)


def test_customers_with_the_same_filled_fields_share_one_tuple_once_decoded() -> None:
    """The projection keeps one ``filled`` tuple per distinct set, not one per customer: a
    full reconcile of 100,000 customers must fit its memory bound (bench fullpass)."""
    rows = [rw.DesiredCustomer(fact=ev.CustomerUpserted(moment_id=n, number=str(n), name="N"),
                               seq=n, filled=("city", "email"))
            for n in range(1, 4)]
    decoded = [pj.decode_row("desired_customers", pj.encode_row(r)) for r in rows]
    assert decoded == rows
    first, *rest = [d.filled for d in decoded if isinstance(d, rw.DesiredCustomer)]
    assert all(other is first for other in rest)
