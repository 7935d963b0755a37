"""The fake e-conomic's admin surface under ``/admin`` (no tokens; the real service has none).

For tests and the demo: change data as a person in e-conomic would, flip the agreement's
switches, set the rate limit and faults, and read back every API request served.

- ``GET /admin/state``: counts and switches.
- ``GET /admin/requests``: every API request served, oldest first, as
  ``{method, path, query, status, body, idempotency_key, from_cache}``;
  ``DELETE /admin/requests`` forgets them.
- ``GET /admin/config``, ``PATCH /admin/config``: ``{"project_module": bool,
  "attachments": "on"|"unable"|"forbidden", "cursor_page_size": int,
  "accept_demo_tokens": bool, "idempotency_cache_errors": bool, "rate_limit": {enabled,
  tokens, window_s, cost_get, cost_write, costs, retry_after}, "faults": {probability, kinds,
  retry_after_s, timeout_s}, "webhooks": {attempts, retry_delays_s, timeout_s, disable_after}}``
  (PATCH changes only the keys given; webhooks: see :mod:`economic_firing`, whose
  ``/admin/webhooks`` routes install, disable and observe webhooks and their deliveries).
- ``POST /admin/faults`` ``{"kind": "500"|"503"|"429"|"reset"|"timeout"|"drop"|"garble"|"late",
  "count": 1}``: the next API requests fail so (see ``FAULT_KINDS``).
- ``POST /admin/customers``: ``{"count": N, "start": S}`` seeds N customers, else one
  customer from the fields given (``customerNumber`` optional).
- ``PATCH /admin/customers/{n}``: change fields (``null`` clears one);
  ``POST /admin/customers/{n}/renumber`` ``{"to": M}``; ``DELETE /admin/customers/{n}``.
- ``PATCH /admin/projects/{n}`` (e.g. ``{"isClosed": true}``);
  ``POST /admin/projects/{n}/renumber`` ``{"to": M}``; ``DELETE /admin/projects/{n}``.
- ``POST /admin/project-groups`` ``{"number": n, "name": "...", "type": 1}``: a project group
  as a person creates it (type 1 Internal, 2 External invoiceable, 3 External
  non-invoiceable; an external group's projects need a customer).
- ``DELETE /admin/idempotency``: forget cached answers.

Bookings a person makes in e-conomic's journal, booked at once on the next voucher of journal 1
(rows as :mod:`economic_books` describes; answered 201 ``{"voucherNumber", "entries"}``):

- ``POST /admin/supplier-invoices`` ``{"amount": "1450.00" (incl. VAT), "date": "YYYY-MM-DD",
  "accountNumber": 2750, "vatCode": <the account's>, "projectNumber": n, "text": "...",
  "supplierNumber": 1, "supplierInvoiceNumber": "...", "currency": "DKK"}``: cost, VAT and
  creditor rows (type 3); only the cost row carries ``projectNumber``.
- ``POST /admin/finance-vouchers``: the same without the supplier, paid from
  ``contraAccountNumber`` (default the bank, 5820): cost, VAT and bank rows (type 5).
- ``POST /admin/customer-payments`` ``{"customerNumber", "customerInvoiceNumber", "amount",
  "date", "accountNumber": 5820}``: the invoice's customer-row ``remainder`` goes toward 0.
- ``POST /admin/settlements`` ``{"customerNumber", "customerInvoiceNumber",
  "creditNoteNumber"}``: a credit note settles an invoice (200, the two customer rows).
- ``PATCH /admin/booked-entries/{n}`` ``{"amount", "date", "customerNumber",
  "vatAccountNumber"}`` (any of them; a VAT code, or null for none): a fault, not a booking:
  edits booked row ``n`` in place, as the real e-conomic lets no one do (corrections are new
  entries), to produce a booked entry that differs from what was sent.

A refused request answers 400 ``{"error": "..."}`` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from daemon.sandbox import economic_books
from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_state import Record

if TYPE_CHECKING:
    from daemon.sandbox.economic import EconomicSandbox

_RATE_KEYS = ("enabled", "tokens", "window_s", "cost_get", "cost_write", "costs", "retry_after")
_FAULT_KEYS = ("probability", "kinds", "retry_after_s", "timeout_s")


def _bad(message: str) -> web.Response:
    return replies.json({"error": message}, 400)


async def _body(request: web.Request) -> dict[str, Any] | None:
    raw = await request.read()
    try:
        doc = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _num(request: web.Request) -> int | None:
    raw = request.match_info["n"]
    return int(raw) if raw.isdigit() else None


def routes(sb: EconomicSandbox) -> list[web.RouteDef]:
    def config() -> dict[str, Any]:
        rl, f = sb.rate_limit, sb.faults
        return {"project_module": sb.agreement.project_module,
                "attachments": sb.agreement.attachments,
                "cursor_page_size": sb.cursor_page_size,
                "accept_demo_tokens": sb.accept_demo_tokens,
                "idempotency_cache_errors": sb.idempotency_cache_errors,
                "rate_limit": {k: getattr(rl, k) for k in _RATE_KEYS},
                "faults": {**{k: getattr(f, k) for k in _FAULT_KEYS},
                           "scheduled": list(f.scheduled)},
                "webhooks": sb.firing.settings.as_dict()}

    async def get_state(_r: web.Request) -> web.Response:
        return replies.json(sb.agreement.summary())

    async def get_requests(_r: web.Request) -> web.Response:
        return replies.json([s.as_dict() for s in sb.served])

    async def clear_requests(_r: web.Request) -> web.Response:
        sb.served.clear()
        return web.Response(status=204)

    async def get_config(_r: web.Request) -> web.Response:
        return replies.json(config())

    async def patch_config(request: web.Request) -> web.Response:
        body = await _body(request)
        if body is None:
            return _bad("body must be a JSON object")
        if "project_module" in body:
            sb.agreement.project_module = bool(body["project_module"])
        if "attachments" in body:
            if body["attachments"] not in ("on", "unable", "forbidden"):
                return _bad("attachments: one of on, unable, forbidden")
            sb.agreement.attachments = body["attachments"]
        if "idempotency_cache_errors" in body:
            sb.idempotency_cache_errors = bool(body["idempotency_cache_errors"])
        if "accept_demo_tokens" in body:
            sb.accept_demo_tokens = bool(body["accept_demo_tokens"])
        if "cursor_page_size" in body:
            sb.cursor_page_size = max(1, int(body["cursor_page_size"]))
        hooks = body.get("webhooks") or {}
        wrong = sb.firing.settings.update(hooks) if isinstance(hooks, dict) \
            else "webhooks: an object"
        if wrong:
            return _bad(wrong)
        rate = body.get("rate_limit") or {}
        for k, v in rate.items():
            if k not in _RATE_KEYS:
                return _bad(f"rate_limit.{k}: unknown")
            if k in ("tokens", "window_s") and (type(v) is not int or v < 1):
                return _bad(f"rate_limit.{k}: a positive integer")
        for k, v in rate.items():
            setattr(sb.rate_limit, k, v)
        for k, v in (body.get("faults") or {}).items():
            if k not in _FAULT_KEYS:
                return _bad(f"faults.{k}: unknown")
            setattr(sb.faults, k, v)
        return replies.json(config())

    async def post_faults(request: web.Request) -> web.Response:
        body = await _body(request)
        if body is None:
            return _bad("body must be a JSON object")
        try:
            sb.inject(str(body.get("kind")), int(body.get("count", 1)))
        except ValueError as exc:
            return _bad(str(exc))
        return replies.json({"scheduled": list(sb.faults.scheduled)})

    async def post_customers(request: web.Request) -> web.Response:
        body = await _body(request)
        if body is None:
            return _bad("body must be a JSON object")
        a = sb.agreement
        if "count" in body:
            a.add_customers(int(body["count"]), start=int(body.get("start", 1)))
            return replies.json(a.summary(), 201)
        n = body.pop("customerNumber", None) or a.next_customer_number()
        name = body.pop("name", f"Customer {n}")
        return replies.json(a.add_customer(int(n), str(name), **body), 201)

    async def patch_customer(request: web.Request) -> web.Response:
        n, body = _num(request), await _body(request)
        if n is None or n not in sb.agreement.customers:
            return replies.json({"error": "no such customer"}, 404)
        if body is None:
            return _bad("body must be a JSON object")
        return replies.json(sb.agreement.edit_customer(n, body))

    async def renumber_customer(request: web.Request) -> web.Response:
        n, body = _num(request), await _body(request)
        if n is None or n not in sb.agreement.customers:
            return replies.json({"error": "no such customer"}, 404)
        if body is None or not isinstance(body.get("to"), int):
            return _bad('body must be {"to": <number>}')
        try:
            return replies.json(sb.agreement.renumber_customer(n, body["to"]))
        except KeyError:
            return _bad(f"customer {body['to']} exists")

    async def delete_customer(request: web.Request) -> web.Response:
        n = _num(request)
        if n is None or sb.agreement.delete_customer(n) is None:
            return replies.json({"error": "no such customer"}, 404)
        return web.Response(status=204)

    async def patch_project(request: web.Request) -> web.Response:
        n, body = _num(request), await _body(request)
        if n is None or n not in sb.agreement.projects:
            return replies.json({"error": "no such project"}, 404)
        if body is None:
            return _bad("body must be a JSON object")
        return replies.json(sb.agreement.edit_project(n, body))

    async def renumber_project(request: web.Request) -> web.Response:
        n, body = _num(request), await _body(request)
        if n is None or n not in sb.agreement.projects:
            return replies.json({"error": "no such project"}, 404)
        if body is None or not isinstance(body.get("to"), int):
            return _bad('body must be {"to": <number>}')
        try:
            return replies.json(sb.agreement.renumber_project(n, body["to"]))
        except KeyError:
            return _bad(f"project {body['to']} exists")

    async def delete_project(request: web.Request) -> web.Response:
        n = _num(request)
        if n is None or sb.agreement.delete_project(n) is None:
            return replies.json({"error": "no such project"}, 404)
        return web.Response(status=204)

    def booking(act: Callable[[dict[str, Any]], list[Record]], status: int = 201
                ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def run(request: web.Request) -> web.Response:
            body = await _body(request)
            if body is None:
                return _bad("body must be a JSON object")
            try:
                rows = act(body)
            except economic_books.BookingError as exc:
                return _bad(str(exc))
            out: dict[str, Any] = {"entries": [replies.public(r) for r in rows]}
            if status == 201:  # a new voucher; a settlement posts nothing
                out = {"voucherNumber": rows[0]["voucherNumber"], **out}
            return replies.json(out, status)
        return run

    async def post_project_group(request: web.Request) -> web.Response:
        body = await _body(request)
        if (body is None or not isinstance(body.get("number"), int)
                or body.get("type") not in (1, 2, 3)):
            return _bad('body must be {"number": <number>, "name": "...", "type": 1|2|3}')
        a = sb.agreement
        if body["number"] in a.project_groups:
            return _bad(f"project group {body['number']} exists")
        group: Record = {"number": body["number"], "type": body["type"],
                         "name": str(body.get("name") or f"Group {body['number']}"),
                         "objectVersion": a.version()}
        a.project_groups[body["number"]] = group
        return replies.json(group, 201)

    async def tamper(request: web.Request) -> web.Response:
        n = _num(request)
        if n is None:
            return replies.json({"error": "no such booked entry"}, 404)
        return await booking(lambda b: economic_books.tamper(sb.agreement, n, b), 200)(request)

    async def clear_idempotency(_r: web.Request) -> web.Response:
        sb.idempotency.clear()
        return web.Response(status=204)

    return [
        web.get("/admin/state", get_state),
        web.get("/admin/requests", get_requests),
        web.delete("/admin/requests", clear_requests),
        web.get("/admin/config", get_config),
        web.patch("/admin/config", patch_config),
        web.post("/admin/faults", post_faults),
        web.post("/admin/customers", post_customers),
        web.patch("/admin/customers/{n}", patch_customer),
        web.post("/admin/customers/{n}/renumber", renumber_customer),
        web.delete("/admin/customers/{n}", delete_customer),
        web.patch("/admin/projects/{n}", patch_project),
        web.post("/admin/projects/{n}/renumber", renumber_project),
        web.delete("/admin/projects/{n}", delete_project),
        web.post("/admin/project-groups", post_project_group),
        web.delete("/admin/idempotency", clear_idempotency),
        web.post("/admin/supplier-invoices", booking(
            lambda b: economic_books.book_cost(sb.agreement, "supplierInvoice", b))),
        web.post("/admin/finance-vouchers", booking(
            lambda b: economic_books.book_cost(sb.agreement, "financeVoucher", b))),
        web.post("/admin/customer-payments", booking(
            lambda b: economic_books.pay(sb.agreement, b))),
        web.post("/admin/settlements", booking(
            lambda b: economic_books.settle(sb.agreement, b), 200)),
        web.patch("/admin/booked-entries/{n}", tamper),
    ]
