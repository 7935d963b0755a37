"""The customer kind: Moment's customers as e-conomic's legacy ``/customers`` records.

The spec (:data:`SPEC`) says how a customer is read (``customerNumber$in:[...]``, 200 numbers a
call; every page of 1000 for sweeps), planned (:func:`daemon.core.plans.plan_customer`) and
written. ``PUT /customers/{n}`` replaces the whole record and creates it when missing, so the
body is the live record as read with only the fields Moment changes replaced: what people keep
in e-conomic survives, and so does a field Moment leaves empty and never filled (an accountant's
e-mail for reminders), a country written under another of its names, and a VAT zone the
accountant chose while Moment states no VAT code. That write carries no version, so a sweep's
read never travels to it: the controller (:mod:`daemon.reconcile.controlling`) merges into a
fresh read. A customer missing under Moment's number is written again under it, and look-alikes
under other numbers (same organization number, else name and e-mail) are reported as strays,
never deleted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence

import msgspec

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.core import projections as pj
from daemon.core import rows as rw
from daemon.economic import filters, payloads
from daemon.economic.client import EconomicClient
from daemon.reconcile import specs

KIND = "customer"


def live_customer(c: payloads.Customer) -> plans.LiveCustomer:
    return plans.LiveCustomer(
        number=c.customerNumber, name=c.name or "", email=c.email or "",
        corporate_id=c.corporateIdentificationNumber or "", address=c.address or "",
        zip=c.zip or "", city=c.city or "", country=c.country or "",
        vat_zone=c.vatZone.vatZoneNumber if c.vatZone else None,
        last_updated=c.lastUpdated or "")


def _opt(value: str) -> str | None:
    return value or None  # e-conomic refuses null and empty means "not set": omit it


#: the e-conomic field of each owned field
_ECONOMIC: dict[str, str] = {"name": "name", "email": "email",
                             "corporate_id": "corporateIdentificationNumber",
                             "address": "address", "zip": "zip", "city": "city",
                             "country": "country", "vat_zone": "vatZone"}


def merged(desired: mp.CustomerFields, live: payloads.Customer | None) -> payloads.CustomerWrite:
    """The whole record to PUT: ``live`` with the fields Moment changes replaced (a new record
    with every field Moment owns, when there is none); the rest keeps e-conomic's value."""
    values: dict[str, object] = {
        "name": desired.name, "email": _opt(desired.email),
        "corporate_id": _opt(desired.corporate_id), "address": _opt(desired.address),
        "zip": _opt(desired.zip), "city": _opt(desired.city),
        "country": _opt(desired.country),
        "vat_zone": payloads.VatZoneRef(vatZoneNumber=desired.vat_zone)}
    writes = plans.customer_writes(desired, live_customer(live) if live is not None else None)
    owned = {_ECONOMIC[f]: values[f] for f in writes}
    if live is None:
        return payloads.CustomerWrite(
            customerNumber=desired.number, currency=desired.currency,
            customerGroup=payloads.CustomerGroupRef(customerGroupNumber=desired.customer_group),
            paymentTerms=payloads.PaymentTermsRef(paymentTermsNumber=desired.payment_terms),
            **owned)  # type: ignore[arg-type]
    base = payloads.writable(live, payloads.CustomerWrite)
    return msgspec.structs.replace(base, customerNumber=desired.number, **owned)


class CustomerSpec(specs.RecordSpec[ev.CustomerUpserted, mp.CustomerFields,
                                    plans.LiveCustomer, payloads.Customer]):
    kind = KIND
    record_type = payloads.Customer
    number_field = "customerNumber"
    verbs = ("put", "put")
    in_sync_action = "put"
    sweep_hint = False

    def rows(self, tables: pj.Tables) -> Mapping[str, specs.Fact[ev.CustomerUpserted]]:
        return tables.customers()

    def map(self, fact: ev.CustomerUpserted, options: mp.Options
            ) -> mp.Mapped[mp.CustomerFields]:
        return mp.map_customer(fact, options)

    def map_row(self, row: specs.Fact[ev.CustomerUpserted], state: rw.EntityState,
                options: mp.Options) -> mp.Mapped[mp.CustomerFields]:
        del state
        filled = row.filled if isinstance(row, rw.DesiredCustomer) else ()
        return mp.map_customer(row.fact, options, filled=filled)

    def number(self, desired: mp.CustomerFields) -> int:
        return desired.number

    def live(self, record: payloads.Customer) -> plans.LiveCustomer:
        return live_customer(record)

    def number_of(self, record: payloads.Customer) -> int:
        return record.customerNumber

    def listing(self, client: EconomicClient, flt: filters.Filter | None
                ) -> AsyncIterator[payloads.Customer]:
        return client.iter_customers(filter=flt)

    def plan(self, desired: mp.CustomerFields, live: plans.LiveCustomer | None, *,
             applied_before: bool) -> plans.Action:
        return plans.plan_customer(desired, live, applied_before=applied_before)

    async def write(self, client: EconomicClient, desired: mp.CustomerFields,
                    live: payloads.Customer | None, *, idempotency_key: str) -> None:
        await client.put_customer(merged(desired, live), idempotency_key=idempotency_key)

    def stray_filter(self, desired: mp.CustomerFields) -> filters.Filter:
        return (filters.eq("corporateIdentificationNumber", desired.corporate_id)
                if desired.corporate_id else filters.eq("name", desired.name))

    def strays(self, managed: Sequence[mp.CustomerFields], live: Iterable[plans.LiveCustomer],
               numbers: set[int]) -> list[plans.Stray]:
        return plans.find_strays(managed, live, numbers)


SPEC = CustomerSpec()
