"""The Moment sandbox's REST API handlers, shaped exactly as ``../shared/moment/API.md``.

Routes under ``{root}/companies/{company}``:

* ``GET /customers|projects|invoices`` — ``page`` (from 1, default 1), ``size`` (1..100,
  default the sandbox's ``default_page_size``), ``sort`` (``id,asc`` default, or ``id,desc``),
  ``lastModifiedDateFrom`` (inclusive) and ``lastModifiedDateTo`` (exclusive), ISO 8601 with
  an offset. Answer ``{"content": [...], "page": {"totalElements": N}}``; a page past the end
  is empty. Any bad value is 400 with a message naming the parameter.
* ``GET /customers|projects|invoices/{id}`` — the object, or 404.
* ``GET /invoices/{id}/pdf`` — ``application/pdf`` of a finalized or credited invoice; 409 for
  a draft, 404 for an unknown id.
* ``POST /projectExpenses`` (201 with the expense and its ``id``; 400 for a bad body, an
  amount that does not parse or an unknown project; a repeated ``externalId`` is not refused)
  and ``GET /projectExpenses?externalId=...&project.projectNumber=...`` (a page, either filter
  optional).
* ``GET /invoices/{id}/paymentStatus`` (never paid: ``paidAmount`` "0.00") and ``PUT`` of the
  same shape (200 with the status; idempotent; 400 for a negative or malformed body, 409 for a
  draft).

Errors answer ``{"status": N, "message": "..."}``. Authentication and faults are applied by
the sandbox's middleware before these handlers run; the handlers never raise to aiohttp.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import hmac
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from aiohttp import web

from daemon.sandbox import moment_faults, moment_records

if TYPE_CHECKING:
    from daemon.sandbox.moment import MomentSandbox

MAX_SIZE: Final = 100
_KINDS: Final[Mapping[str, moment_records.Kind]] = {
    "customers": "customer", "projects": "project", "invoices": "invoice"}


def json_response(body: object, *, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, ensure_ascii=False).encode(), status=status,
                        content_type="application/json", headers=headers)


def error(status: int, message: str, *,
          headers: Mapping[str, str] | None = None) -> web.Response:
    return json_response({"status": status, "message": message}, status=status, headers=headers)


def fault_response(fault: moment_faults.Fault) -> web.Response:
    assert fault.status is not None, "a drop fault is served, not answered"
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    message = "too many requests" if fault.status == 429 else "injected fault"
    return error(fault.status, message, headers=headers)


def authorized(request: web.Request, api_key: str) -> bool:
    """Basic auth with user ``apikey`` and the key as password, compared in constant time."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, password = decoded.partition(":")
    return (sep == ":" and user == "apikey"
            and hmac.compare_digest(password.encode(), api_key.encode()))


class BadQuery(ValueError):
    pass


def _int_param(query: Mapping[str, str], name: str, default: int, low: int,
               high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadQuery(f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"at least {low}"
        raise BadQuery(f"{name} must be {bound}, got {value}")
    return value


def _time_param(query: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise BadQuery(f"{name} must be an ISO 8601 date-time, got {raw!r}") from None
    if value.tzinfo is None:
        raise BadQuery(f"{name} must carry a UTC offset (such as Z), got {raw!r}")
    return value


def _page(sandbox: MomentSandbox, query: Mapping[str, str], ids: list[int],
          render: Callable[[int], moment_records.Json]) -> web.Response:
    """One page of ``ids``; only the objects on the page are rendered."""
    page = _int_param(query, "page", 1, 1, None)
    size = _int_param(query, "size", sandbox.default_page_size, 1, MAX_SIZE)
    start = (page - 1) * size
    content = [{**render(i), **sandbox.extra_fields} for i in ids[start:start + size]]
    return json_response({"content": content, "page": {"totalElements": len(ids)}})


def routes(sandbox: MomentSandbox, root: str) -> list[web.RouteDef]:
    base = root + "/companies/{company}"

    def company_ok(request: web.Request) -> bool:
        return request.match_info["company"] == sandbox.company

    def object_id(request: web.Request) -> int | None:
        raw = request.match_info["id"]
        return int(raw) if raw.isdigit() and raw[0] != "0" else None

    async def list_objects(request: web.Request) -> web.Response:
        if not company_ok(request):
            return error(404, f"no company {request.match_info['company']!r}")
        kind = _KINDS[request.match_info["kind"]]
        query = request.query
        try:
            sort = query.get("sort", "id,asc")
            if sort not in ("id,asc", "id,desc", "id"):
                raise BadQuery(f"sort must be id,asc or id,desc, got {sort!r}")
            modified_from = _time_param(query, "lastModifiedDateFrom")
            modified_to = _time_param(query, "lastModifiedDateTo")
            ids = sandbox.select(kind, modified_from=modified_from, modified_to=modified_to,
                                 descending=sort == "id,desc")
            return _page(sandbox, query, ids, lambda i: sandbox.render(kind, i))
        except BadQuery as exc:
            return error(400, str(exc))

    async def get_object(request: web.Request) -> web.Response:
        if not company_ok(request):
            return error(404, f"no company {request.match_info['company']!r}")
        kind = _KINDS[request.match_info["kind"]]
        moment_id = object_id(request)
        if moment_id is None:
            return error(404, f"no {kind} with id {request.match_info['id']!r}")
        try:
            return json_response({**sandbox.render(kind, moment_id), **sandbox.extra_fields})
        except moment_records.UnknownObject as exc:
            return error(404, str(exc))

    async def get_pdf(request: web.Request) -> web.Response:
        if not company_ok(request):
            return error(404, f"no company {request.match_info['company']!r}")
        moment_id = object_id(request)
        if moment_id is None or moment_id not in sandbox.invoices:
            return error(404, f"no invoice with id {request.match_info['id']!r}")
        try:
            pdf = sandbox.invoice_pdf(moment_id)
        except moment_records.SandboxError as exc:
            return error(409, str(exc))
        return web.Response(body=pdf, content_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="invoice-{moment_id}.pdf"'})

    async def post_expense(request: web.Request) -> web.Response:
        if not company_ok(request):
            return error(404, f"no company {request.match_info['company']!r}")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return error(400, "body is not JSON")
        problem = _expense_problem(body)
        if problem is not None:
            return error(400, problem)
        try:
            record = sandbox.add_expense(body)
        except moment_records.SandboxError as exc:
            return error(400, str(exc))
        return json_response(record.body, status=201)

    async def find_expenses(request: web.Request) -> web.Response:
        if not company_ok(request):
            return error(404, f"no company {request.match_info['company']!r}")
        ids = sandbox.find_expenses(external_id=request.query.get("externalId"),
                                    project_number=request.query.get("project.projectNumber"))
        try:
            return _page(sandbox, request.query, ids, lambda i: sandbox.expenses[i].body)
        except BadQuery as exc:
            return error(400, str(exc))

    async def get_payment(request: web.Request) -> web.Response:
        if not company_ok(request):
            return error(404, f"no company {request.match_info['company']!r}")
        moment_id = object_id(request)
        if moment_id is None or moment_id not in sandbox.invoices:
            return error(404, f"no invoice with id {request.match_info['id']!r}")
        return json_response(sandbox.payment_status(moment_id))

    async def put_payment(request: web.Request) -> web.Response:
        if not company_ok(request):
            return error(404, f"no company {request.match_info['company']!r}")
        moment_id = object_id(request)
        if moment_id is None or moment_id not in sandbox.invoices:
            return error(404, f"no invoice with id {request.match_info['id']!r}")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return error(400, "body is not JSON")
        if sandbox.invoices[moment_id].status == "DRAFT":
            return error(409, f"invoice {moment_id} is a draft: it cannot be paid")
        try:
            return json_response(sandbox.set_payment_status(moment_id, body))
        except moment_records.SandboxError as exc:
            return error(400, str(exc))

    kinds = "{kind:customers|projects|invoices}"
    return [
        web.get(f"{base}/{kinds}", list_objects),
        web.get(f"{base}/{kinds}/{{id}}", get_object),
        web.get(f"{base}/invoices/{{id}}/pdf", get_pdf),
        web.get(f"{base}/invoices/{{id}}/paymentStatus", get_payment),
        web.put(f"{base}/invoices/{{id}}/paymentStatus", put_payment),
        web.post(f"{base}/projectExpenses", post_expense),
        web.get(f"{base}/projectExpenses", find_expenses),
    ]


def _expense_problem(body: object) -> str | None:
    """What is wrong with a project-expense body, or None."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    for name in ("externalId", "description", "currency"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} must be a non-empty string"
    project = body.get("project")
    if not isinstance(project, dict) or not isinstance(project.get("projectNumber"), str):
        return "project must be an object with a string projectNumber"
    amount = body.get("amountIncludingVat")
    if not isinstance(amount, str):
        return "amountIncludingVat must be a decimal string"
    try:
        decimal.Decimal(amount)
    except decimal.InvalidOperation:
        return "amountIncludingVat must be a decimal string"
    try:
        dt.date.fromisoformat(str(body.get("date")))
    except ValueError:
        return "date must be a date YYYY-MM-DD"
    cost_type = body.get("costType")
    if cost_type is not None and not isinstance(cost_type, str):
        return "costType must be a string"
    return None
