"""The Moment sandbox's admin surface: what a person does in Moment, and test controls.

The real Moment has none of this; it lives under its own prefix (``/admin``), needs no auth
(the sandbox binds loopback), is not counted in the request log and never sees faults. Bodies
and answers are JSON; objects are answered in their API shape. Field names are the API's
camelCase (a customer's ``address`` is an object with ``street``, ``postalCode``, ``city``,
``countryCode``; a project's customer is ``customerId``; an invoice takes ``customerId``,
``projectId``, ``totalExcludingVat``, optional ``totalVat`` (else 25 %), ``finalize``).

| request | does |
|---|---|
| ``GET /admin`` | counts of objects, requests served, webhook deliveries |
| ``POST /admin/{customers,projects,invoices}`` | create (201, the object) |
| ``PATCH /admin/{kind}/{id}`` | change fields (bumps version and lastModifiedDate) |
| ``DELETE /admin/{kind}/{id}`` | delete (204) |
| ``POST /admin/invoices/{id}/finalize`` | finalize a draft, ``{"invoiceNumber": n}`` optional |
| ``POST /admin/invoices/{id}/credit`` | credit it; answers the new credit note |
| ``GET/PUT /admin/webhook`` | ``{"url": "..."}`` or null: where hints go |
| ``POST /admin/webhook/fire`` | ``{"kind": "invoice", "id": n, "event": "UPDATE"}``: send now |
| ``GET/POST/DELETE /admin/faults`` | list, add, clear faults (see below) |
| ``GET/DELETE /admin/requests`` | the API requests served, or forget them |
| ``GET/PUT /admin/rate-limit`` | ``{"limit": 600, "windowS": 60}`` or null: the throttle |
| ``POST /admin/sample`` | ``{"customers": N, "projects": M, "invoices": K, "seed": S}`` |

A fault is ``{"status": 429, "count": 1, "probability": 1.0, "retryAfter": 2,
"pathContains": "/invoices", "method": "GET"}`` (all but ``status`` optional), or
``{"drop": true, "pathContains": "/projectExpenses", "method": "POST"}``: commit-then-drop,
the request is served and the connection cut before the answer.
A refused operation answers 400 (404 for an unknown id) with ``{"status", "message"}`` and
changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from aiohttp import web

from daemon.sandbox import moment_records
from daemon.sandbox.moment_api import error, json_response

if TYPE_CHECKING:
    from daemon.sandbox.moment import MomentSandbox

_KINDS: Final[dict[str, moment_records.Kind]] = {
    "customers": "customer", "projects": "project", "invoices": "invoice"}
_CAMEL: Final = re.compile(r"(?<!^)(?=[A-Z])")


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _fields(kind: moment_records.Kind, body: dict[str, object]) -> dict[str, object]:
    """camelCase admin fields as the snake_case fields of :mod:`moment_data`."""
    out: dict[str, object] = {}
    for key, value in body.items():
        if kind == "customer" and key == "address":
            if not isinstance(value, dict):
                raise moment_records.SandboxError("address must be an object")
            for sub, sub_value in value.items():
                if sub not in ("street", "postalCode", "city", "countryCode"):
                    raise moment_records.SandboxError(f"address has no field {sub!r}")
                out[_snake(sub)] = sub_value
        else:
            out[_snake(key)] = value
    return out


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except moment_records.UnknownObject as exc:
            return error(404, str(exc))
        except (moment_records.SandboxError, ValueError) as exc:
            return error(400, str(exc))
    return run


async def _body(request: web.Request) -> dict[str, object]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise moment_records.SandboxError("body is not JSON") from None
    if not isinstance(body, dict):
        raise moment_records.SandboxError("body must be a JSON object")
    return body


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise moment_records.UnknownObject(f"no object with id {raw!r}")
    return int(raw)


def routes(sandbox: MomentSandbox, root: str) -> list[web.RouteDef]:
    kinds = "{kind:customers|projects|invoices}"

    async def summary(request: web.Request) -> web.StreamResponse:
        return json_response({
            "company": sandbox.company, "apiUrl": sandbox.api_url,
            "customers": len(sandbox.customers), "projects": len(sandbox.projects),
            "invoices": len(sandbox.invoices), "expenses": len(sandbox.expenses),
            "requests": len(sandbox.requests), "webhookUrl": sandbox.webhook_url,
            "webhookDeliveries": len(sandbox.webhook_deliveries)})

    async def create(request: web.Request) -> web.StreamResponse:
        kind = _KINDS[request.match_info["kind"]]
        fields = _fields(kind, await _body(request))
        if kind == "customer":
            moment_id = sandbox.create_customer(fields).id
        elif kind == "project":
            moment_id = sandbox.create_project(fields).id
        else:
            finalize = fields.pop("finalize", False)
            if not isinstance(finalize, bool):
                raise moment_records.SandboxError("finalize must be true or false")
            moment_id = sandbox.create_invoice(fields).id
            if finalize:
                sandbox.finalize_invoice(moment_id)
        return json_response(sandbox.render(kind, moment_id), status=201)

    async def change(request: web.Request) -> web.StreamResponse:
        kind = _KINDS[request.match_info["kind"]]
        moment_id = _id(request)
        fields = _fields(kind, await _body(request))
        if kind == "customer":
            sandbox.change_customer(moment_id, **fields)
        elif kind == "project":
            sandbox.change_project(moment_id, **fields)
        else:
            sandbox.change_invoice(moment_id, **fields)
        return json_response(sandbox.render(kind, moment_id))

    async def delete(request: web.Request) -> web.StreamResponse:
        kind = _KINDS[request.match_info["kind"]]
        moment_id = _id(request)
        if kind == "customer":
            sandbox.delete_customer(moment_id)
        elif kind == "project":
            sandbox.delete_project(moment_id)
        else:
            sandbox.delete_invoice(moment_id)
        return web.Response(status=204)

    async def finalize(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        number = body.get("invoiceNumber")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int)):
            raise moment_records.SandboxError("invoiceNumber must be an integer")
        record = sandbox.finalize_invoice(_id(request), invoice_number=number)
        return json_response(sandbox.render("invoice", record.id))

    async def credit(request: web.Request) -> web.StreamResponse:
        note = sandbox.credit_invoice(_id(request))
        return json_response(sandbox.render("invoice", note.id), status=201)

    async def get_webhook(request: web.Request) -> web.StreamResponse:
        return json_response({"url": sandbox.webhook_url})

    async def put_webhook(request: web.Request) -> web.StreamResponse:
        url = (await _body(request)).get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith(
                ("http://", "https://"))):
            raise moment_records.SandboxError("url must be an http(s) URL or null")
        sandbox.set_webhook(url)
        return json_response({"url": sandbox.webhook_url})

    async def fire(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        kind = body.get("kind")
        if kind not in moment_records.KINDS:
            raise moment_records.SandboxError("kind must be customer, project or invoice")
        moment_id = body.get("id")
        if isinstance(moment_id, bool) or not isinstance(moment_id, int):
            raise moment_records.SandboxError("id must be an integer")
        event = body.get("event", "UPDATE")
        if not isinstance(event, str):
            raise moment_records.SandboxError("event must be a string")
        checked: moment_records.Kind = "customer" if kind == "customer" else (
            "project" if kind == "project" else "invoice")
        delivery = await sandbox.fire(checked, moment_id, event=event)
        return json_response({"status": delivery.status, "error": delivery.error})

    async def list_faults(request: web.Request) -> web.StreamResponse:
        return json_response([f.to_json() for f in sandbox.faults.faults])

    async def add_fault(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        status, drop = body.get("status"), body.get("drop", False)
        if not isinstance(drop, bool):
            raise moment_records.SandboxError("drop must be true or false")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise moment_records.SandboxError("status must be an integer")
        count, probability = body.get("count", 1), body.get("probability", 1.0)
        retry_after = body.get("retryAfter")
        path_contains, method = body.get("pathContains"), body.get("method")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise moment_records.SandboxError("count must be an integer or null")
        if isinstance(probability, bool) or not isinstance(probability, (int, float)):
            raise moment_records.SandboxError("probability must be a number")
        if retry_after is not None and (isinstance(retry_after, bool)
                                        or not isinstance(retry_after, int)):
            raise moment_records.SandboxError("retryAfter must be an integer or null")
        for name, value in (("pathContains", path_contains), ("method", method)):
            if value is not None and not isinstance(value, str):
                raise moment_records.SandboxError(f"{name} must be a string or null")
        fault = sandbox.faults.add(
            status, count=count, probability=float(probability), retry_after=retry_after,
            path_contains=path_contains if isinstance(path_contains, str) else None,
            method=method if isinstance(method, str) else None, drop=drop)
        return json_response(fault.to_json(), status=201)

    async def clear_faults(request: web.Request) -> web.StreamResponse:
        sandbox.faults.clear()
        return web.Response(status=204)

    async def get_rate_limit(request: web.Request) -> web.StreamResponse:
        throttle = sandbox.throttle
        return json_response(None if throttle is None else throttle.to_json())

    async def put_rate_limit(request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            raise moment_records.SandboxError("body is not JSON") from None
        if body is None:
            sandbox.set_rate_limit(None)
            return json_response(None)
        if not isinstance(body, dict) or set(body) != {"limit", "windowS"}:
            raise moment_records.SandboxError(
                'the rate limit is {"limit": N, "windowS": S} or null')
        limit, window = body["limit"], body["windowS"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise moment_records.SandboxError("limit must be a whole number of at least 1")
        if isinstance(window, bool) or not isinstance(window, (int, float)) or window <= 0:
            raise moment_records.SandboxError("windowS must be a number of seconds above 0")
        sandbox.set_rate_limit((limit, float(window)))
        assert sandbox.throttle is not None
        return json_response(sandbox.throttle.to_json())

    async def list_requests(request: web.Request) -> web.StreamResponse:
        return json_response([dataclasses.asdict(r) for r in sandbox.requests])

    async def clear_requests(request: web.Request) -> web.StreamResponse:
        sandbox.clear_requests()
        return web.Response(status=204)

    async def sample(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        counts: dict[str, int] = {}
        for name, default in (("customers", 10), ("projects", 10), ("invoices", 10),
                              ("seed", 1)):
            value = body.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise moment_records.SandboxError(f"{name} must be a non-negative integer")
            counts[name] = value
        summary_ = sandbox.populate(customers=counts["customers"], projects=counts["projects"],
                                    invoices=counts["invoices"], seed=counts["seed"])
        return json_response(dataclasses.asdict(summary_), status=201)

    return [
        web.get(root, _guarded(summary)),
        web.post(f"{root}/{kinds}", _guarded(create)),
        web.patch(f"{root}/{kinds}/{{id}}", _guarded(change)),
        web.delete(f"{root}/{kinds}/{{id}}", _guarded(delete)),
        web.post(f"{root}/invoices/{{id}}/finalize", _guarded(finalize)),
        web.post(f"{root}/invoices/{{id}}/credit", _guarded(credit)),
        web.get(f"{root}/webhook", _guarded(get_webhook)),
        web.put(f"{root}/webhook", _guarded(put_webhook)),
        web.post(f"{root}/webhook/fire", _guarded(fire)),
        web.get(f"{root}/faults", _guarded(list_faults)),
        web.post(f"{root}/faults", _guarded(add_fault)),
        web.delete(f"{root}/faults", _guarded(clear_faults)),
        web.get(f"{root}/rate-limit", _guarded(get_rate_limit)),
        web.put(f"{root}/rate-limit", _guarded(put_rate_limit)),
        web.get(f"{root}/requests", _guarded(list_requests)),
        web.delete(f"{root}/requests", _guarded(clear_requests)),
        web.post(f"{root}/sample", _guarded(sample)),
    ]
