"""The customer controller: Moment's customers into e-conomic's legacy ``/customers``.

For a batch of queued keys it maps each desired customer, reads the live records it has no
fresh read of (``customerNumber$in:[...]``, at most 200 numbers a call), plans, and writes only
what differs. ``PUT /customers/{n}`` replaces the whole record, so the body is the live record
as read with only the fields Moment owns replaced: what people keep in e-conomic survives.
Each write's intent is committed before it is sent and its key reused on retries of the same
content; the live record is always read before writing, which is the lookup of the natural
key that an unknown earlier outcome requires. A customer missing under Moment's number is
written again under it (PUT creates), and look-alikes under other numbers are reported as
strays, never deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core import plans
from daemon.economic import errors, filters, payloads
from daemon.reconcile import batching
from daemon.reconcile.outcomes import Context

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


def merged(desired: mp.CustomerFields, live: payloads.Customer | None) -> payloads.CustomerWrite:
    """The whole record to PUT: ``live`` with Moment's fields replaced (or a new record)."""
    owned = {"name": desired.name, "email": _opt(desired.email),
             "corporateIdentificationNumber": _opt(desired.corporate_id),
             "address": _opt(desired.address), "zip": _opt(desired.zip),
             "city": _opt(desired.city), "country": _opt(desired.country),
             "vatZone": payloads.VatZoneRef(vatZoneNumber=desired.vat_zone)}
    if live is None:
        return payloads.CustomerWrite(
            customerNumber=desired.number, currency=desired.currency,
            customerGroup=payloads.CustomerGroupRef(customerGroupNumber=desired.customer_group),
            paymentTerms=payloads.PaymentTermsRef(paymentTermsNumber=desired.payment_terms),
            **owned)  # type: ignore[arg-type]
    base = payloads.writable(live, payloads.CustomerWrite)
    return msgspec.structs.replace(base, customerNumber=desired.number, **owned)


async def fetch(ctx: Context, numbers: Sequence[int]) -> dict[int, payloads.Customer]:
    """Live customers by number, 200 numbers a call; absent numbers are missing."""
    found: dict[int, payloads.Customer] = {}
    for chunk in filters.chunks(sorted(set(numbers))):
        async for c in ctx.client.iter_customers(filter=filters.in_("customerNumber", chunk)):
            found[c.customerNumber] = c
    return found


def desired_of(ctx: Context, key: str) -> mp.Mapped[mp.CustomerFields] | None:
    row = ctx.log.tables.customers().get(key)
    if row is None or row.gone:
        return None
    return mp.map_customer(row.fact, ctx.options)


class Customers:
    """Reconciles queued customer keys; see the module docstring."""

    kind = KIND

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def reconcile(self, keys: Sequence[str]) -> None:
        ctx = self.ctx
        todo: dict[str, mp.Mapped[mp.CustomerFields]] = {}
        for key in keys:
            m = desired_of(ctx, key)
            if m is None or ctx.log.tables.state(KIND, key).parked:
                continue
            if m.value is None:
                await ctx.park(KIND, key, reason=m.problem)
                continue
            todo[key] = m
        live = await batching.read_live(ctx, KIND, todo, payloads.Customer, fetch, "put")
        await batching.apply_all(ctx, todo, live, self.apply)

    async def apply(self, key: str, m: mp.Mapped[mp.CustomerFields],
                    live: payloads.Customer | None) -> None:
        ctx = self.ctx
        desired = m.value
        assert desired is not None
        state = ctx.log.tables.state(KIND, key)
        applied_before = bool(state.applied_hash) or state.economic_number is not None
        action = plans.plan_customer(desired, live_customer(live) if live else None,
                                     applied_before=applied_before)
        content = mp.fields_hash(desired)
        if not action.writes:
            if state.applied_hash != content or ctx.open_intent(KIND, key, "put"):
                await ctx.log.append(
                    ev.Applied(kind=KIND, key=key, action="put", content_hash=content,
                               economic_number=desired.number, warnings=m.warnings),
                    idempotency_key=f"applied:{KIND}:{key}:{content}:{uuid.uuid4().hex}")
            ctx.queue.release(KIND, key)
            return
        ikey = await ctx.intent(KIND, key, "put", content)
        try:
            await ctx.client.put_customer(merged(desired, live), idempotency_key=ikey)
        except errors.EconomicError as err:
            await ctx.refused(KIND, key, "put", err)
            return
        out: list[ev.Event] = [ev.Applied(kind=KIND, key=key, action="put", content_hash=content,
                                          economic_number=desired.number, warnings=m.warnings)]
        drift: list[str] = []
        if action.name == "recreate":
            drift = ["missing"]
        elif action.name == "update" and state.applied_hash == content:
            # what we last applied is still what Moment wants: e-conomic was edited (drift);
            # otherwise Moment changed and this is an ordinary update
            drift = list(action.fields)
        if drift:
            out.append(ev.DriftRepaired(kind=KIND, key=key, fields=tuple(drift),
                                        detail=action.detail or "changed in e-conomic"))
        await ctx.log.append_many([(e, f"{type(e).__name__}:{ikey}", None) for e in out])
        if drift:
            ctx.observer.drift_repaired(KIND, key, drift)
        if action.name == "recreate":
            await self.report_strays(desired)
        ctx.queue.release(KIND, key)

    async def report_strays(self, desired: mp.CustomerFields) -> None:
        """Look for the record that took this customer's place (renumbered) and report it."""
        ctx = self.ctx
        flt = (filters.eq("corporateIdentificationNumber", desired.corporate_id)
               if desired.corporate_id else filters.eq("name", desired.name))
        try:
            candidates = [live_customer(c) async for c in ctx.client.iter_customers(filter=flt)]
        except errors.EconomicError:
            return  # the full sweep reports it later
        moment = {int(k) for k in ctx.log.tables.customers() if k.isdigit()}
        await record_strays(ctx, plans.find_strays([desired], candidates, moment))


async def record_strays(ctx: Context, strays: Sequence[plans.Stray]) -> int:
    """Append a ``StrayReported`` for each stray not reported before; returns how many."""
    known = ctx.log.tables.daemon()
    new = [s for s in strays if f"stray:{s.kind}:{s.number}" not in known]
    if new:
        await ctx.log.append_many([
            (ev.StrayReported(kind=s.kind, key=s.managed_key, number=s.number, note=s.note),
             f"stray:{s.kind}:{s.number}:{s.managed_key}", None) for s in new])
    return len(new)
