"""A customer update keeps every writable field the daemon does not own (DESIGN.md: read,
merge, write back). The list of writable fields comes from e-conomic's own PUT schema, so a
field the client's ``CustomerWrite`` lacks fails here, not in an accountant's price list."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import anyio
import pytest

from daemon.core import mapping as mp
from daemon.economic import payloads
from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.conftest import shared_or_skip
from tests.reconcile.conftest import customer, reconciler, record, until

#: The fields the daemon writes from Moment (DESIGN.md, mapping table) and the record's key.
OWNED = {"customerNumber", "name", "email", "corporateIdentificationNumber", "address", "zip",
         "city", "country", "vatZone"}


def writable_fields() -> dict[str, Any]:
    """Every property of ``PUT /customers/{n}`` that is not read-only, with its schema."""
    path = shared_or_skip("economic", "specs", "legacy-rest-json-schema",
                          "customers.customerNo.put.schema.json")
    schema = json.loads(re.sub(r",(\s*[}\]])", r"\1", path.read_text()))
    return {name: prop for name, prop in schema["properties"].items()
            if not prop.get("readOnly")}


def test_the_put_body_has_every_writable_field_of_the_schema() -> None:
    missing = set(writable_fields()) - set(payloads.CustomerWrite.__struct_fields__)
    assert missing == set(), f"CustomerWrite drops {sorted(missing)} on every update"


#: What a person might have set in e-conomic, per field the daemon does not own.
PERSON: dict[str, Any] = {
    "pNumber": "1234567890", "ean": "5790000123456", "vatNumber": "DK12345678",
    "website": "https://nordlys.dk", "telephoneAndFaxNumber": "+45 12 34 56 78",
    "mobilePhone": "+45 87 65 43 21", "publicEntryNumber": "P-17", "creditLimit": 25000.0,
    "barred": True, "eInvoicingDisabledByDefault": True, "layout": {"layoutNumber": 19},
    "salesPerson": {"employeeNumber": 3}, "attention": {"customerContactNumber": 4},
    "customerContact": {"customerContactNumber": 5},
    "defaultDeliveryLocation": {"deliveryLocationNumber": 6},
    "priceGroup": {"priceGroupNumber": 2}, "currency": "DKK",
    "customerGroup": {"customerGroupNumber": 1}, "paymentTerms": {"paymentTermsNumber": 1},
}


def test_every_field_a_person_keeps_is_covered() -> None:
    assert set(PERSON) == set(writable_fields()) - OWNED


@pytest.mark.anyio
async def test_an_update_keeps_every_field_a_person_set(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    await record(log, [customer(1)])
    rec = reconciler(log, client, options=mp.Options(vat_zones={"DK": 1, "EU": 2,
                                                                "ABROAD": 3}))
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await until(rec, lambda: 1 in sandbox.agreement.customers and rec.idle())
        sandbox.agreement.edit_customer(1, dict(PERSON))
        await record(log, [customer(1, email="ny@kunde1.dk", version=2)])
        await until(rec, lambda: sandbox.agreement.customers[1].get("email") ==
                    "ny@kunde1.dk" and rec.idle())
        tg.cancel_scope.cancel()
    kept = sandbox.agreement.customers[1]
    for field, value in PERSON.items():
        got = kept.get(field)
        if isinstance(value, dict):
            got = {k: v for k, v in (got or {}).items() if k != "self"}
        assert got == value, field


@pytest.mark.anyio
async def test_a_credit_limit_goes_back_exactly_as_e_conomic_gave_it(
        sandbox: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    """Money is Decimal: a credit limit a float cannot hold (18 digits) is read and written
    back digit for digit, never through a float."""
    limit = Decimal("1234567890123456.78")
    assert Decimal(float(limit)) != limit
    await record(log, [customer(1)])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await until(rec, lambda: 1 in sandbox.agreement.customers and rec.idle())
        sandbox.agreement.edit_customer(1, {"creditLimit": limit})
        got = await client.get_customer(1)
        assert got is not None and got.creditLimit == limit
        assert got.balance is None or isinstance(got.balance, Decimal)
        sandbox.served.clear()
        await record(log, [customer(1, email="ny@kunde1.dk", version=2)])
        await until(rec, lambda: sandbox.agreement.customers[1].get("email") ==
                    "ny@kunde1.dk" and rec.idle())
        tg.cancel_scope.cancel()
    [put] = [s for s in sandbox.served if s.method == "PUT"]
    assert '"creditLimit":1234567890123456.78' in put.body
