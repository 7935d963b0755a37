"""Legacy REST routes of the fake e-conomic, under ``/rest``: /self, /customers and lookups.

Behaviour per REFERENCE.md section 10 items 7-9 and 13-14: paged collections with the
``pagination`` envelope (``nextPage`` only when a further page has items), filters and sorting,
``pagesize`` 1..1000 else 400 ``E04810``; customers validated as e-conomic does (required
fields, referenced numbers, lengths, no ``null``), PUT replaces the whole record (201 when it
created one), read-only and unknown properties are ignored, false booleans are omitted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_filters import Field, FilterError, compile_filter, sort_records
from daemon.sandbox.economic_state import Agreement, Record, stamp

STR_LIMITS: dict[str, tuple[int, int]] = {
    "name": (1, 255), "address": (0, 510), "city": (0, 50), "country": (0, 50),
    "corporateIdentificationNumber": (0, 40), "pNumber": (10, 10), "ean": (0, 13),
    "email": (0, 255), "mobilePhone": (0, 50), "publicEntryNumber": (0, 50),
    "telephoneAndFaxNumber": (0, 255), "vatNumber": (0, 20), "website": (0, 255),
    "zip": (0, 30), "currency": (3, 3)}
BOOLS = ("barred", "eInvoicingDisabledByDefault")
REFS = {"customerGroup": ("customerGroupNumber", "customer-groups"),
        "paymentTerms": ("paymentTermsNumber", "payment-terms"),
        "vatZone": ("vatZoneNumber", "vat-zones"), "layout": ("layoutNumber", "layouts"),
        "salesPerson": ("employeeNumber", "employees"),
        "attention": ("customerContactNumber", "contacts"),
        "customerContact": ("customerContactNumber", "contacts"),
        "defaultDeliveryLocation": ("deliveryLocationNumber", "delivery-locations"),
        "priceGroup": ("priceGroupNumber", "price-groups")}
REQUIRED = ("currency", "customerGroup", "name", "paymentTerms", "vatZone")
_S, _I, _F, _B = Field("str"), Field("int"), Field("float"), Field("bool")
CUSTOMER_FILTER: dict[str, Field] = {
    **{k: _S for k in ("address", "city", "corporateIdentificationNumber", "country", "currency",
                       "ean", "email", "name", "publicEntryNumber", "telephoneAndFaxNumber",
                       "mobilePhone", "vatNumber", "website", "zip", "pNumber")},
    "balance": _F, "creditLimit": _F, "barred": _B, "customerNumber": _I,
    "lastUpdated": Field("datetime"), "customerGroup.customerGroupNumber": _I}
CUSTOMER_SORT = {k: v for k, v in CUSTOMER_FILTER.items()
                 if k not in ("barred", "customerGroup.customerGroupNumber")}

Ctx = Callable[[web.Request], Agreement]


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/rest"


def _omit_false(rec: Record) -> Record:
    return {k: v for k, v in rec.items() if v is not False and not k.startswith("_")}


def render_customer(c: Record, base: str) -> Record:
    n = c["customerNumber"]
    out = _omit_false(c)
    for prop, (key, coll) in REFS.items():
        ref = out.get(prop)
        if isinstance(ref, dict) and key in ref:
            sub = f"customers/{n}/{coll}" if coll in ("contacts", "delivery-locations") else coll
            out[prop] = {**ref, "self": f"{base}/{sub}/{ref[key]}"}
    out["contacts"] = f"{base}/customers/{n}/contacts"
    out["deliveryLocations"] = f"{base}/customers/{n}/delivery-locations"
    out["templates"] = {"invoice": f"{base}/customers/{n}/templates/invoice",
                        "invoiceLine": f"{base}/customers/{n}/templates/invoiceline",
                        "self": f"{base}/customers/{n}/templates"}
    out["totals"] = {"drafts": f"{base}/invoices/totals/drafts/customers/{n}",
                     "booked": f"{base}/invoices/totals/booked/customers/{n}",
                     "self": f"{base}/customers/{n}/totals"}
    out["invoices"] = {"drafts": f"{base}/customers/{n}/invoices/drafts",
                       "booked": f"{base}/customers/{n}/invoices/booked",
                       "self": f"{base}/customers/{n}/invoices"}
    out["self"] = f"{base}/customers/{n}"
    return out


def _link_refs(rec: Record, base: str, links: Mapping[str, tuple[str, str]]) -> Record:
    out = _omit_false(rec)
    for prop, (key, coll) in links.items():
        ref = out.get(prop)
        if isinstance(ref, dict) and key in ref:
            out[prop] = {**ref, "self": f"{base}/{coll}/{ref[key]}"}
    return out


def page(request: web.Request, path: str, records: list[Record], *,
         render: Callable[[Record], Record], filterable: Mapping[str, Field] | None = None,
         sortable: Mapping[str, Field] | None = None,
         meta: dict[str, Any] | None = None) -> web.Response:
    """A legacy collection answer for ``records`` honouring skippages/pagesize/filter/sort."""
    q = request.rel_url.query
    base = base_url(request)
    try:
        size = int(q.get("pagesize", "20"))
        skip = int(q.get("skippages", "0"))
    except ValueError:
        size, skip = -1, -1
    if not 1 <= size <= 1000 or skip < 0:
        return replies.legacy_error(
            400, "pagesize must be a positive whole number between 1 and 1000.", code="E04810",
            hint="skippages must be 0 or more, pagesize between 1 and 1000.")
    total = len(records)
    flt, srt = q.get("filter"), q.get("sort")
    if flt:
        try:
            pred = compile_filter(flt, filterable or {})
        except FilterError as exc:
            extra: dict[str, Any] = {"allowedFilteringFields": sorted(filterable or {})} \
                if exc.kind == "field" else {}
            return replies.legacy_error(
                400, "Could not parse query string filter.",
                hint="Filtering on collections can be done using the querystring parameter "
                     "'filter'.", errors=[exc.message], **extra)
        records = [r for r in records if pred(r)]
    if srt:
        try:
            records = sort_records(records, srt, sortable or {})
        except FilterError as exc:
            return replies.legacy_error(400, exc.message, errors=[exc.message])
    results = len(records)
    chunk = records[skip * size:(skip + 1) * size]
    last = max(0, math.ceil(results / size) - 1)

    def link(n: int) -> str:
        params = {"skippages": str(n), "pagesize": str(size)}
        if flt:
            params["filter"] = flt
        if srt:
            params["sort"] = srt
        return f"{base}/{path}?{urlencode(params)}"

    pagination: Record = {"skipPages": skip, "pageSize": size, "maxPageSizeAllowed": 1000,
                          "results": results, "resultsWithoutFilter": total,
                          "firstPage": link(0)}
    if skip < last:
        pagination["nextPage"] = link(skip + 1)
    if skip > 0:
        pagination["previousPage"] = link(min(skip - 1, last))
    pagination["lastPage"] = link(last)
    self_q = f"?{request.rel_url.query_string}" if request.rel_url.query_string else ""
    return replies.json({"collection": [render(r) for r in chunk], "pagination": pagination,
                         "metaData": meta or {}, "self": f"{base}/{path}{self_q}"})


# ---------------------------------------------------------------- customer validation -------
def validate_customer(a: Agreement, body: Any, number: int | None
                      ) -> tuple[Record | None, dict[str, list[tuple[str, str, Any]]]]:
    """The record to store, or the annotated errors e-conomic would give."""
    errs: dict[str, list[tuple[str, str, Any]]] = {}

    def err(prop: str, code: str, msg: str, value: Any = None) -> None:
        errs.setdefault(prop, []).append((code, msg, value))

    if not isinstance(body, dict):
        err("request", "E00500", "The request body must be a JSON object.")
        return None, errs
    rec: Record = {}
    for prop in REQUIRED:
        if prop not in body:
            err(prop, "E04020", f"Property {prop} is required.")
    for prop, value in body.items():
        if value is None:
            kind = "Object" if prop in REFS else "String"
            err(prop, "E04030", f"Expected {kind} but got Null", None)
        elif prop in STR_LIMITS:
            lo, hi = STR_LIMITS[prop]
            if not isinstance(value, str):
                err(prop, "E04030", f"Expected String but got {type(value).__name__}", value)
            elif not lo <= len(value) <= hi:
                err(prop, "E04040", f"{prop} must be between {lo} and {hi} characters long.",
                    value)
            else:
                rec[prop] = value
        elif prop in BOOLS:
            if not isinstance(value, bool):
                err(prop, "E04030", "Expected Boolean", value)
            elif value:
                rec[prop] = True
        elif prop == "creditLimit":
            if isinstance(value, bool) or not isinstance(value, int | float):
                err(prop, "E04030", "Expected Number", value)
            else:
                rec[prop] = value
        elif prop in REFS:
            key = REFS[prop][0]
            ref_no = _ref_number(value, key)
            if ref_no is None:
                err(prop, "E04500", f"No identifiers present on {prop}.", value)
            elif ref_no < 1:
                err(prop, "E04050", f"Integer {ref_no} is less than minimum value of 1", ref_no)
            else:
                rec[prop] = {key: ref_no}
        elif prop == "customerNumber":
            if isinstance(value, bool) or not isinstance(value, int):
                err(prop, "E04030", "Expected Integer", value)
            elif not 1 <= value <= 999_999_999:
                err(prop, "E04050", f"Integer {value} is less than minimum value of 1"
                    if value < 1 else f"Integer {value} exceeds maximum value of 999999999",
                    value)
            else:
                rec[prop] = value
    # Referenced numbers must exist.
    checks = (("customerGroup", "customerGroupNumber", a.customer_groups),
              ("paymentTerms", "paymentTermsNumber", a.payment_terms),
              ("vatZone", "vatZoneNumber", a.vat_zones))
    for prop, key, table in checks:
        ref = rec.get(prop)
        if ref is not None and ref[key] not in table:
            err(prop, "E06000", f"{prop} does not exist.", ref[key])
    if "currency" in rec and rec["currency"].upper() not in a.currencies:
        err("currency", "E06000", "currency does not exist.", rec["currency"])
    if errs:
        return None, errs
    if number is not None:
        rec["customerNumber"] = number
    return rec, errs


def _ref_number(value: Any, key: str) -> int | None:
    if not isinstance(value, dict):
        return None
    n = value.get(key)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    link = value.get("self")
    if isinstance(link, str):
        tail = link.rstrip("/").rsplit("/", 1)[-1]
        if tail.isdigit():
            return int(tail)
    return None


def _not_found(what: str) -> web.Response:
    return replies.legacy_error(404, f"{what} not found.", code="E06000",
                                hint="The requested resource does not exist.")


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        return msgspec.UNSET


def routes(ctx: Ctx) -> list[web.RouteDef]:
    """The legacy routes, reading the agreement through ``ctx``."""

    async def get_self(request: web.Request) -> web.Response:
        a = ctx(request)
        base = base_url(request)
        modules = [{"moduleNumber": 14, "name": "Project", "self": f"{base}/modules/14"}] \
            if a.project_module else []
        return replies.json({
            "agreementNumber": a.agreement_number,
            "agreementType": {"agreementTypeNumber": 1, "name": "Sandbox"},
            "userName": "sandbox", "signupDate": "2026-01-01",
            "company": {"name": a.company_name, "country": "Denmark",
                        "companyIdentificationNumber": "12345678"},
            "settings": {"baseCurrency": "DKK", "defaultPaymentTerm": "1",
                         "internationalLedger": "false"},
            "companyAffiliation": "E-conomic", "modules": modules, "self": f"{base}/self"})

    async def list_customers(request: web.Request) -> web.Response:
        a = ctx(request)
        base = base_url(request)
        recs = [a.customers[k] for k in sorted(a.customers)]
        meta = {"create": {"description": "Create a new customer",
                           "href": f"{base}/customers", "httpMethod": "post"}}
        return page(request, "customers", recs, render=lambda c: render_customer(c, base),
                    filterable=CUSTOMER_FILTER, sortable=CUSTOMER_SORT, meta=meta)

    def _number(request: web.Request) -> int | None:
        raw = request.match_info["n"]
        return int(raw) if raw.isdigit() and 1 <= int(raw) <= 999_999_999 else None

    async def get_customer(request: web.Request) -> web.Response:
        a = ctx(request)
        n = _number(request)
        if n is None or n not in a.customers:
            return _not_found("Customer")
        return replies.json(render_customer(a.customers[n], base_url(request)))

    async def put_customer(request: web.Request) -> web.Response:
        a = ctx(request)
        n = _number(request)
        if n is None:
            return _not_found("Customer")
        body = await _json_body(request)
        if body is msgspec.UNSET:
            return replies.legacy_error(400, "The request body is not valid JSON.")
        rec, errs = validate_customer(a, body, n)
        if rec is None:
            return replies.annotated(errs)
        created = n not in a.customers
        rec["lastUpdated"] = stamp()
        a.customers[n] = rec
        a.customer_changed(None if created else n, n)
        out = render_customer(rec, base_url(request))
        headers = {"Location": out["self"]} if created else None
        return replies.json(out, 201 if created else 200, headers)

    async def post_customer(request: web.Request) -> web.Response:
        a = ctx(request)
        body = await _json_body(request)
        if body is msgspec.UNSET:
            return replies.legacy_error(400, "The request body is not valid JSON.")
        rec, errs = validate_customer(a, body, None)
        if rec is None:
            return replies.annotated(errs)
        n = rec.get("customerNumber") or a.next_customer_number()
        if n in a.customers:
            return replies.annotated({"customerNumber": [
                ("E06010", f"Customer number {n} already exists.", n)]})
        rec["customerNumber"] = n
        rec["lastUpdated"] = stamp()
        a.customers[n] = rec
        a.customer_changed(None, n)
        out = render_customer(rec, base_url(request))
        return replies.json(out, 201, {"Location": out["self"]})

    async def delete_customer(request: web.Request) -> web.Response:
        a = ctx(request)
        n = _number(request)
        if n is None or n not in a.customers:
            return _not_found("Customer")
        if any(e.get("customerNumber") == n for e in a.booked_entries.values()):
            return replies.legacy_error(400, "The customer has entries and cannot be deleted.",
                                        code="E06100")
        a.delete_customer(n)
        return web.Response(status=204)

    def lookup(path: str, table: Callable[[Agreement], Mapping[Any, Record]],
               links: Mapping[str, tuple[str, str]], key: str,
               filterable: Mapping[str, Field] | None = None) -> list[web.RouteDef]:
        async def coll(request: web.Request) -> web.Response:
            base = base_url(request)
            t = table(ctx(request))
            recs = [t[k] for k in sorted(t)]

            def render(r: Record) -> Record:
                out = _link_refs(r, base, links)
                out["self"] = f"{base}/{path}/{r[key]}"
                return out
            return page(request, path, recs, render=render, filterable=filterable,
                        sortable=filterable)

        async def one(request: web.Request) -> web.Response:
            base = base_url(request)
            t = table(ctx(request))
            raw = request.match_info["id"]
            k: Any = int(raw) if raw.isdigit() else raw
            if k not in t:
                return _not_found(path)
            out = _link_refs(t[k], base, links)
            out["self"] = f"{base}/{path}/{raw}"
            return replies.json(out)
        return [web.get(f"/rest/{path}", coll), web.get(f"/rest/{path}/{{id}}", one)]

    acc = {"account": ("accountNumber", "accounts")}
    return [
        web.get("/rest/self", get_self),
        web.get("/rest/customers", list_customers),
        web.post("/rest/customers", post_customer),
        web.get("/rest/customers/{n}", get_customer),
        web.put("/rest/customers/{n}", put_customer),
        web.delete("/rest/customers/{n}", delete_customer),
        *lookup("customer-groups", lambda a: a.customer_groups, acc, "customerGroupNumber",
                {"customerGroupNumber": _I, "name": _S}),
        *lookup("payment-terms", lambda a: a.payment_terms, {}, "paymentTermsNumber"),
        *lookup("currencies", lambda a: a.currencies, {}, "code"),
        *lookup("vat-zones", lambda a: a.vat_zones, {}, "vatZoneNumber"),
        *lookup("vat-accounts", lambda a: a.vat_accounts,
                {**acc, "contraAccount": ("accountNumber", "accounts"),
                 "vatType": ("vatTypeNumber", "vat-types")}, "vatCode"),
        *lookup("accounts", lambda a: a.accounts, {"vatAccount": ("vatCode", "vat-accounts")},
                "accountNumber", {"accountNumber": _I, "name": _S, "accountType": _S,
                                  "barred": _B}),
        *lookup("accounting-years", lambda a: a.accounting_years, {}, "year",
                {"year": _S, "fromDate": Field("date"), "toDate": Field("date")}),
        *lookup("journals", lambda a: a.journals, {}, "journalNumber",
                {"journalNumber": _I, "name": _S}),
    ]
