"""webhooksapi v1.0.0 routes of the fake e-conomic: ``/EventTypes`` and ``/webhooks``.

As the official spec (``openapi-webhooks-api.json``) and REFERENCE.md section 8 say: one webhook
per event type per agreement (a second POST for the type is 400
``WebhookAlreadyExistsForEventType``), the ``Webhook`` schema's required fields and lengths,
at most 5 custom headers of at most 1000 characters as JSON, printable and without CR or LF, an
event type of :data:`EVENT_TYPES` (else ``WebhookInvalidType``), and a URL of RFC 3986 form
(``WebhookInvalidUrl``) that is HTTPS (``WebhookInvalidUrlScheme``) except, in the sandbox only,
``http://`` to 127.0.0.1, ``localhost`` or ``::1`` so tests and the demo need no TLS. POST
answers 201 ``{"eventType"}`` with ``Location``; PUT (event type in the body) needs the current
``objectVersion`` (else 409 ``UpdateConflict``) and answers 204; a webhook another app or a
person set up as read-only cannot be changed or deleted (``WebhookReadOnly``). Every write
gives a fresh ``objectVersion`` and ``lastUpdated``; turning ``isDisabled`` on stamps
``lastDisabledDate``. Listing: cursor (by event type), ``/paged`` and ``/count``, filterable
and sortable as the schema's ``x-filterable``/``x-sortable`` say. A refused request changes
nothing. Firing is :mod:`daemon.sandbox.economic_firing`'s.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import web

from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_filters import OPS, Field
from daemon.sandbox.economic_state import (
    CUSTOMER_UPDATED,
    DAYBOOK_BOOKED,
    PROJECT_UPDATED,
    Agreement,
    Record,
    stamp,
)

PREFIX: Final = "/apis/webhooksapi/v1.0.0"
Err = tuple[str, str, str]
Ctx = Callable[[web.Request], Agreement]
# The event types the sandbox models and fires: (description, ((merge field, description),)).
# e-conomic's full list is not published (REFERENCE.md: query GET /EventTypes); these are the
# types of its webhook page whose changes the sandbox has (customers, projects, day books).
_NUMBERS = (("[OLDNUMBER]", "The number before the change; empty when it was created."),
            ("[NEWNUMBER]", "The number after the change; empty when it was deleted."))
EVENT_TYPES: Final[dict[str, tuple[str, tuple[tuple[str, str], ...]]]] = {
    CUSTOMER_UPDATED: ("A customer was created, updated, renumbered or deleted.", _NUMBERS),
    PROJECT_UPDATED: ("A project was created, updated, renumbered or deleted.", _NUMBERS),
    DAYBOOK_BOOKED: ("Entries of a day book (journal) were booked.", (
        ("[DAYBOOKNO]", "The number of the day book (journal) booked."),
        ("[FROMSERIALNO]", "The first voucher number booked."),
        ("[TOSERIALNO]", "The last voucher number booked."))),
}
LOOPBACK: Final = frozenset(("127.0.0.1", "localhost", "::1"))
MAX_HEADERS, MAX_HEADERS_JSON = 5, 1000
_TEXT: Final = {"eventType": None, "name": 100, "url": 1000, "contentType": 50}
_EVENT_PATTERN = re.compile(r"[A-Z0-9_]+")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110)
_CMP = frozenset(("eq", "ne", "lt", "lte", "gt", "gte"))
FILTER: Final = {"eventType": Field("str", frozenset(OPS) - {"like"}),
                 "name": Field("str", _CMP | {"like"}), "url": Field("str", _CMP | {"like"}),
                 "isDisabled": Field("bool", _CMP), "lastDisabledDate": Field("datetime", _CMP),
                 "lastUpdated": Field("datetime", _CMP)}
SORTABLE: Final = {"eventType": Field("str"), "name": Field("str")}


def render(hook: Record) -> Record:
    """A stored webhook as the spec's ``Webhook``: no private keys, no false or null values."""
    return {k: v for k, v in hook.items()
            if not k.startswith("_") and v is not False and v is not None}


def url_error(url: str) -> Err | None:
    """Why ``url`` cannot be a webhook's URL, or None (see the module docstring)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, _port = parts.hostname, parts.port  # port: ValueError when not a number
    except ValueError:
        host = None
    if not host or not parts.scheme or any(c.isspace() or ord(c) < 32 for c in url):
        return ("url", "WebhookInvalidUrl",
                f"The URL {url!r} has invalid format (check RFC 3986).")
    if parts.scheme.lower() == "https" or (parts.scheme.lower() == "http"
                                            and host.lower() in LOOPBACK):
        return None
    return ("url", "WebhookInvalidUrlScheme",
            "Only HTTPS is allowed for the webhook URL (the sandbox also takes http:// to "
            "127.0.0.1 or localhost).")


def _headers_errors(headers: Any) -> list[Err]:
    if not isinstance(headers, list) or not all(isinstance(h, dict) for h in headers):
        return [("customHeaders", "WebhookCustomHeaderInvalid",
                 'customHeaders must be a list of {"key": ..., "value": ...}.')]
    if len(headers) > MAX_HEADERS:
        return [("customHeaders", "WebhookCustomHeadersTooMany",
                 f"At most {MAX_HEADERS} custom headers are allowed, not {len(headers)}.")]
    for h in headers:
        key, value = h.get("key"), h.get("value") or ""
        if not isinstance(key, str) or not _TOKEN.fullmatch(key) or not isinstance(value, str) \
                or any(not c.isprintable() for c in value):
            return [("customHeaders", "WebhookCustomHeaderInvalid",
                     f"The custom header {key!r} has an invalid name or value (CRLF or "
                     "non-printable characters).")]
    if len(json.dumps(headers, separators=(",", ":"))) > MAX_HEADERS_JSON:
        return [("customHeaders", "WebhookCustomHeadersTooLong",
                 f"Custom headers exceed {MAX_HEADERS_JSON} characters when serialized as "
                 "JSON.")]
    return []


def validate(body: Any) -> tuple[Record | None, list[Err]]:
    """A ``Webhook`` body checked as e-conomic checks it: the fields to store, or the errors
    (``(property, errorCode, message)``). Read-only and unknown properties are ignored."""
    if not isinstance(body, dict):
        return None, [("", "InvalidRequestBody", "The request body must be a JSON object.")]
    errs: list[Err] = []
    rec: Record = {}
    for prop, limit in _TEXT.items():
        v = body.get(prop)
        if not isinstance(v, str) or (prop in ("eventType", "url") and not v):
            errs.append((prop, "InvalidValue", f"The {prop} field is required."))
        elif limit is not None and len(v) > limit:
            errs.append((prop, "InvalidValue",
                         f"The field {prop} must be a string with a maximum length of {limit}."))
        else:
            rec[prop] = v
    event = rec.get("eventType")
    if event is not None and (not _EVENT_PATTERN.fullmatch(event) or event not in EVENT_TYPES):
        errs.append(("eventType", "WebhookInvalidType",
                     f"{event!r} is not an event type; one of {', '.join(EVENT_TYPES)}."))
    if "url" in rec and (bad := url_error(rec["url"])) is not None:
        errs.append(bad)
    post = body.get("postData")
    if post is not None and (not isinstance(post, str) or len(post) > 4000):
        errs.append(("postData", "InvalidValue",
                     "The field postData must be a string with a maximum length of 4000."))
    elif post is not None:
        rec["postData"] = post
    headers = body.get("customHeaders")
    if headers is not None:
        head_errs = _headers_errors(headers)
        errs += head_errs
        if not head_errs:
            rec["customHeaders"] = [{"key": h["key"], "value": h.get("value") or ""}
                                    for h in headers]
    disabled = body.get("isDisabled", False)
    if not isinstance(disabled, bool):
        errs.append(("isDisabled", "InvalidValue", "isDisabled must be true or false."))
    rec["isDisabled"] = disabled is True
    return (None, errs) if errs else (rec, errs)


def store(a: Agreement, rec: Record, *, before: Record | None, app: str,
          read_only: bool = False) -> Record:
    """Store validated ``rec`` (replacing ``before``), stamped; its failure count starts over."""
    now = stamp()
    rec.update(lastUpdated=now, objectVersion=a.version(), _app=app, _readOnly=read_only,
               _failures=0)
    last = before.get("lastDisabledDate") if before else None
    if rec["isDisabled"] and not (before and before.get("isDisabled")):
        last = now
    rec["lastDisabledDate"] = last
    a.webhooks[rec["eventType"]] = rec
    return rec


def disable(a: Agreement, event_type: str) -> Record | None:
    """Disable the webhook of ``event_type`` as e-conomic does after failed deliveries."""
    hook = a.webhooks.get(event_type)
    if hook is not None:
        now = stamp()
        hook.update(isDisabled=True, lastDisabledDate=now, lastUpdated=now,
                    objectVersion=a.version())
    return hook


def _exists(event: str) -> Err:
    return ("eventType", "WebhookAlreadyExistsForEventType",
            f"A webhook for event type {event} already exists for the agreement. Only one "
            "webhook per event type is allowed. Use PUT to update the existing webhook or "
            "DELETE to remove it before creating a new one.")


def _read_only(event: str) -> web.Response:
    return replies.invalid([("eventType", "WebhookReadOnly",
                             f"The webhook for {event} is read-only and cannot be changed.")])


def create(a: Agreement, body: Any, *, app: str, read_only: bool = False
           ) -> tuple[Record | None, list[Err]]:
    """Validate and store a new webhook (the API's POST, or a person's in the admin)."""
    rec, errs = validate(body)
    if rec is None:
        return None, errs
    if rec["eventType"] in a.webhooks:
        return None, [_exists(rec["eventType"])]
    return store(a, rec, before=None, app=app, read_only=read_only), []


def routes(ctx: Ctx, page_size: Callable[[], int], app: str) -> list[web.RouteDef]:
    """The API routes; webhooks created through them belong to ``app``."""

    def event_of(request: web.Request) -> str | web.Response:
        event = request.match_info["event"]
        if not _EVENT_PATTERN.fullmatch(event):
            return replies.invalid([("eventType", "InvalidValue",
                                     "eventType must match ^[A-Z0-9_]+$.")])
        return event

    def filtered(request: web.Request) -> list[Record] | web.Response:
        hooks = sorted(ctx(request).webhooks.values(), key=lambda h: str(h["eventType"]))
        return replies.filtered(request, hooks, FILTER)

    async def event_types(_request: web.Request) -> web.Response:
        return replies.json([
            {"name": name, "description": text,
             "mergeFields": [{"fieldName": f, "description": d} for f, d in fields]}
            for name, (text, fields) in EVENT_TYPES.items()])

    async def list_hooks(request: web.Request) -> web.Response:
        return replies.cursor_page(request, list(ctx(request).webhooks.values()),
                                   key="eventType", fields=FILTER, page_size=page_size(),
                                   render=render)

    async def paged(request: web.Request) -> web.Response:
        hooks = filtered(request)
        if isinstance(hooks, web.Response):
            return hooks
        return replies.classic_page(request, hooks, sortable=SORTABLE, render=render)

    async def count(request: web.Request) -> web.Response:
        hooks = filtered(request)
        return hooks if isinstance(hooks, web.Response) else replies.json(len(hooks))

    async def get_hook(request: web.Request) -> web.Response:
        event = event_of(request)
        if isinstance(event, web.Response):
            return event
        hook = ctx(request).webhooks.get(event)
        return replies.json(render(hook)) if hook else replies.not_found_problem()

    async def post_hook(request: web.Request) -> web.Response:
        body = await replies.body_of(request)
        if body is msgspec.UNSET:
            return replies.not_json()
        rec, errs = create(ctx(request), body, app=app)
        if rec is None:
            return replies.invalid(errs)
        event = rec["eventType"]
        return replies.json({"eventType": event}, 201, {
            "Location": f"{request.scheme}://{request.host}{PREFIX}/webhooks/{event}"})

    async def put_hook(request: web.Request) -> web.Response:
        a = ctx(request)
        body = await replies.body_of(request)
        if body is msgspec.UNSET:
            return replies.not_json()
        event = body.get("eventType") if isinstance(body, dict) else None
        current = a.webhooks.get(event) if isinstance(event, str) else None
        if current is None:
            return replies.not_found_problem()
        if current.get("_readOnly"):
            return _read_only(current["eventType"])
        if body.get("objectVersion") != current.get("objectVersion"):
            return replies.update_conflict()
        rec, errs = validate(body)
        if rec is None:
            return replies.invalid(errs)
        store(a, rec, before=current, app=current["_app"])
        return web.Response(status=204)

    async def delete_hook(request: web.Request) -> web.Response:
        event = event_of(request)
        if isinstance(event, web.Response):
            return event
        a = ctx(request)
        hook = a.webhooks.get(event)
        if hook is None:
            return replies.not_found_problem()
        if hook.get("_readOnly"):
            return _read_only(event)
        del a.webhooks[event]
        return web.Response(status=204)

    return [
        web.get(f"{PREFIX}/EventTypes", event_types),
        web.get(f"{PREFIX}/webhooks", list_hooks),
        web.post(f"{PREFIX}/webhooks", post_hook),
        web.put(f"{PREFIX}/webhooks", put_hook),
        web.get(f"{PREFIX}/webhooks/paged", paged),
        web.get(f"{PREFIX}/webhooks/count", count),
        web.get(f"{PREFIX}/webhooks/{{event}}", get_hook),
        web.delete(f"{PREFIX}/webhooks/{{event}}", delete_hook),
    ]
