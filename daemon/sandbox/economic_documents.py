"""documentsapi v4.0.1 routes of the fake that read back and remove attached documents.

What e-conomic's documents spec (``specs/openapi/openapi-Documents.json``) offers besides the
cursor list and the upload (which live in :mod:`economic_journals`): one document by number,
its file, a page-numbered list with filter and sort, a count, and deletion one by one or in
bulk. So a test can read back the bytes that arrived, as an accountant would see them.

Guarantees: answers have the spec's shapes (``AttachedDocument``, a JSON array, an integer,
204 with no body); a number that is not a document is a problem+json 404. The file of a
document is the bytes uploaded; a document that was uploaded several times with ``onConflict``
0 (merge) answers its parts one after the other (the real service merges them into one PDF;
the sandbox does not render PDFs). This module never changes anything but ``documents``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
from aiohttp import web

from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_filters import Field
from daemon.sandbox.economic_journals import DOCUMENTS
from daemon.sandbox.economic_state import Agreement, Document, Record

FILTER: Final = {"number": Field("int", frozenset(("eq", "ne", "lt", "lte", "gt", "gte", "in",
                                                   "nin"))),
                 "voucherNumber": Field("int", frozenset(("eq", "ne", "lt", "lte", "gt", "gte",
                                                          "in", "nin"))),
                 "accountingYear": Field("str", frozenset(("eq", "ne", "lt", "lte", "gt", "gte",
                                                           "in", "nin")))}
SORTABLE: Final = {"number": Field("int")}
MAX_BULK: Final = 500
Ctx = Callable[[web.Request], Agreement]


def render(d: Document) -> Record:
    """A document as the spec's ``AttachedDocument``."""
    return {"number": d.number, "voucherNumber": d.voucher_number,
            "accountingYear": d.accounting_year, "pageCount": d.page_count,
            **({"note": d.note} if d.note else {})}


def _filtered(a: Agreement, request: web.Request) -> list[Record] | web.Response:
    records = [render(d) for d in sorted(a.documents.values(), key=lambda d: d.number)]
    return replies.filtered(request, records, FILTER)


def _document(a: Agreement, request: web.Request) -> Document | None:
    return a.documents.get(int(request.match_info["number"]))


def routes(ctx: Ctx) -> list[web.RouteDef]:
    async def paged(request: web.Request) -> web.Response:
        records = _filtered(ctx(request), request)
        if isinstance(records, web.Response):
            return records
        return replies.classic_page(request, records, sortable=SORTABLE)

    async def count(request: web.Request) -> web.Response:
        records = _filtered(ctx(request), request)
        if isinstance(records, web.Response):
            return records
        return replies.json(len(records))

    async def get_one(request: web.Request) -> web.Response:
        document = _document(ctx(request), request)
        if document is None:
            return replies.not_found_problem()
        return replies.json(render(document))

    async def get_file(request: web.Request) -> web.Response:
        document = _document(ctx(request), request)
        if document is None:
            return replies.not_found_problem()
        return web.Response(body=b"".join(document.content), content_type="application/pdf")

    async def delete_one(request: web.Request) -> web.Response:
        a = ctx(request)
        document = _document(a, request)
        if document is None:
            return replies.not_found_problem()
        del a.documents[document.number]
        return web.Response(status=204)

    async def delete_bulk(request: web.Request) -> web.Response:
        a = ctx(request)
        try:
            body: Any = msgspec.json.decode(await request.read())
        except msgspec.DecodeError:
            return replies.invalid([("documentNumbers", "InvalidValue",
                                     "The request body is not valid JSON.")])
        numbers = body.get("documentNumbers") if isinstance(body, dict) else None
        if not isinstance(numbers, list) or len(numbers) > MAX_BULK or not all(
                isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            return replies.invalid([("documentNumbers", "InvalidValue",
                                     f"documentNumbers must be a list of at most {MAX_BULK} "
                                     "numbers.")])
        for n in numbers:
            a.documents.pop(n, None)
        return web.Response(status=204)

    number = "{number:-?[0-9]{1,10}}"
    return [
        web.get(f"{DOCUMENTS}/AttachedDocuments/paged", paged),
        web.get(f"{DOCUMENTS}/AttachedDocuments/count", count),
        web.delete(f"{DOCUMENTS}/AttachedDocuments/deletebulk", delete_bulk),
        web.get(f"{DOCUMENTS}/AttachedDocuments/{number}", get_one),
        web.get(f"{DOCUMENTS}/AttachedDocuments/{number}/pdf", get_file),
        web.delete(f"{DOCUMENTS}/AttachedDocuments/{number}", delete_one),
    ]
