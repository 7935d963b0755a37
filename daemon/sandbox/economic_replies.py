"""Answer bodies of the fake e-conomic: JSON, legacy error bodies, problem+json.

Legacy REST errors: ``{message, developerHint, logId, httpStatusCode, errors?, logTime,
errorCode?}`` where ``errors`` is an object annotated per property for validation and an array
of strings for query errors. OpenAPI errors: ``application/problem+json`` ``{type, title,
status, errors?, traceId, errorCode?, traceTimeUtc}``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

if TYPE_CHECKING:
    from daemon.sandbox.economic_filters import FilterError

# Money is held as Decimal and written as a JSON number with its two decimals (12500.00).
_enc = msgspec.json.Encoder(decimal_format="number")
# Where the middleware leaves the request's log record, for a handler to refine its body.
SERVED: web.RequestKey[Any] = web.RequestKey("economic_served", object)
TYPES = {400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
         401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
         403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
         404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
         405: "https://tools.ietf.org/html/rfc9110#section-15.5.6",
         409: "https://tools.ietf.org/html/rfc9110#section-15.5.10",
         415: "https://tools.ietf.org/html/rfc9110#section-15.5.16",
         429: "https://tools.ietf.org/html/rfc6585#section-4",
         500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
         503: "https://tools.ietf.org/html/rfc9110#section-15.6.4"}


def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_enc.encode(data), status=status, headers=headers,
                        content_type="application/json")


def _log_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def legacy_error(status: int, message: str, *, hint: str = "", errors: Any = None,
                 code: str | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"message": message}
    if code:
        body["errorCode"] = code
    body["developerHint"] = hint or message
    body["logId"] = uuid.uuid4().hex[:16] + "-SBX"
    body["httpStatusCode"] = status
    if errors is not None:
        body["errors"] = errors
    body["logTime"] = _log_time()
    body.update(extra)
    return json(body, status)


def annotated(prop_errors: dict[str, list[tuple[str, str, Any]]]) -> web.Response:
    """A legacy 400 annotated per property: ``{prop: [(code, message, value), ...]}``."""
    errors = {prop: {"errors": [{"errorCode": c, "message": m, "value": v,
                                 "developerHint": "Please check the format of your data."}
                                for c, m, v in items]}
              for prop, items in prop_errors.items()}
    return legacy_error(400, "Validation error.",
                        hint="Inspect validation errors and correct your request.", errors=errors)


def problem(status: int, title: str, *, code: str | None = None,
            errors: list[dict[str, Any]] | None = None, detail: str | None = None
            ) -> web.Response:
    body: dict[str, Any] = {"type": TYPES.get(status), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body["traceId"] = uuid.uuid4().hex[:16] + "-SBX"
    if code:
        body["errorCode"] = code
    body["traceTimeUtc"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return web.Response(body=_enc.encode(body), status=status,
                        content_type="application/problem+json")


def invalid(errors: list[tuple[str, str, str]]) -> web.Response:
    """A problem+json 400 from ``[(property, errorCode, message), ...]``."""
    return problem(400, "Validation error.", code=errors[0][1] if errors else None,
                   errors=[{"message": m, "errorCode": c, "property": p} for p, c, m in errors])


def not_json() -> web.Response:
    """The problem+json 400 for a body that is not JSON."""
    return problem(400, "The request body is not valid JSON.", code="InvalidRequestBody")


def update_conflict() -> web.Response:
    """The problem+json 409 for a PUT whose ``objectVersion`` is not the record's."""
    return problem(409, "Update conflict. Version does not match.", code="UpdateConflict",
                   errors=[{"message": "Version does not match.", "errorCode": "UpdateConflict",
                            "property": "objectVersion"}])


def not_found_problem() -> web.Response:
    return problem(404, "Resource not found.", code="ResourceNotFound")


def error_for_family(family: str, status: int, message: str, code: str | None = None
                     ) -> web.Response:
    """An error in the family's own body shape (``rest`` legacy, ``apis`` problem+json)."""
    if family == "rest":
        return legacy_error(status, message, code=code)
    return problem(status, message, code=code)


def bad_filter(exc: FilterError) -> web.Response:
    """The problem+json 400 ``BadFilterRequest`` for a ``FilterError`` (its ``message``)."""
    return problem(400, exc.message, code="BadFilterRequest",
                   errors=[{"message": exc.message, "errorCode": "BadFilterRequest",
                            "property": "filter"}])


async def body_of(request: web.Request) -> Any:
    """The request's JSON body: None when empty, ``msgspec.UNSET`` when it is not JSON."""
    raw = await request.read()
    try:
        return msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        return msgspec.UNSET


def filtered(request: web.Request, records: list[dict[str, Any]], fields: Any
             ) -> list[dict[str, Any]] | web.Response:
    """``records`` that pass the ``filter`` query parameter, or its 400 ``BadFilterRequest``."""
    from daemon.sandbox.economic_filters import FilterError, compile_filter

    text = request.rel_url.query.get("filter")
    if not text:
        return records
    try:
        keep = compile_filter(text, fields)
    except FilterError as exc:
        return bad_filter(exc)
    return [r for r in records if keep(r)]


def classic_page(request: web.Request, records: list[dict[str, Any]], *, sortable: Any,
                 render: Any = None) -> web.Response:
    """An OpenAPI ``/paged`` answer: a bare array of page ``skipPages`` (0-100) of
    ``pageSize`` (1-100, default 20) of ``records`` (already filtered), in ``sort`` order."""
    from daemon.sandbox.economic_filters import FilterError, sort_records

    size = query_int(request, "pageSize", 20, 1, 100)
    if isinstance(size, web.Response):
        return size
    skip = query_int(request, "skipPages", 0, 0, 100)
    if isinstance(skip, web.Response):
        return skip
    sort = request.rel_url.query.get("sort")
    if sort:
        try:
            records = sort_records(records, sort, sortable)
        except FilterError as exc:
            return bad_filter(exc)
    chunk = records[skip * size:(skip + 1) * size]
    return json([render(r) for r in chunk] if render else chunk)


def query_int(request: web.Request, name: str, default: int, low: int, high: int
              ) -> int | web.Response:
    """Query parameter ``name`` as a whole number from ``low`` to ``high`` (``default`` when
    absent), or the problem+json 400 that refuses it."""
    raw = request.rel_url.query.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        return invalid([(name, "InvalidValue",
                         f"{name} must be a whole number from {low} to {high}.")])
    return int(raw)


def cursor_page(request: web.Request, records: list[dict[str, Any]], *, key: str,
                fields: Any, page_size: int, render: Any = None) -> web.Response:
    """An OpenAPI cursor answer ``{items, cursor?}``: records sorted by ``key`` (a number, or
    text such as a webhook's event type); the cursor is the key of the first record of the next
    set and is absent at the end. ``sort`` is ignored,
    as e-conomic ignores it on cursor endpoints. Filter errors are problem+json
    ``BadFilterRequest``."""
    from daemon.sandbox.economic_filters import FilterError, compile_filter

    q = request.rel_url.query
    flt = q.get("filter")
    recs = sorted(records, key=lambda r: r[key])
    if flt:
        try:
            pred = compile_filter(flt, fields)
        except FilterError as exc:
            return bad_filter(exc)
        recs = [r for r in recs if pred(r)]
    cursor = q.get("cursor")
    if cursor:
        textual = bool(recs) and isinstance(recs[0][key], str)  # e.g. a webhook's eventType
        if len(cursor) > 50 or not (textual or cursor.lstrip("-").isdigit()):
            return problem(400, "The cursor is not valid.", code="InvalidCursor")
        start: int | str = cursor if textual else int(cursor)
        recs = [r for r in recs if r[key] >= start]
    chunk = recs[:page_size]
    items = [render(r) if render else r for r in chunk]
    body: dict[str, Any] = {"items": items}
    if len(recs) > page_size:
        body["cursor"] = str(recs[page_size][key])
    return json(body)


def public(rec: dict[str, Any]) -> dict[str, Any]:
    """A stored record without the sandbox's private ``_`` keys."""
    return {k: v for k, v in rec.items() if not k.startswith("_")}
