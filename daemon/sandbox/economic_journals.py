"""journalsapi v15.0.0, bookedEntriesapi v4.0.0 and documentsapi v4.0.1 routes of the fake.

Draft entries are validated by :mod:`economic_entries` (REFERENCE.md section 10 item 18), get
the journal's next free voucher number when they name none, and ``/bulk`` is all-or-nothing.
Booking moves draft entries into booked entries, posting the rows :mod:`economic_books`
describes (customer, revenue and VAT rows for a manual customer invoice). Attached documents:
multipart, 9 MiB, PDF/JPEG/PNG by content, one document per voucher with ``onConflict`` 0
(merge) or 1 (fail), and the agreement's attachment switch.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from aiohttp import web

from daemon.sandbox import economic_books, economic_entries
from daemon.sandbox import economic_replies as replies
from daemon.sandbox.economic_filters import OPS, Field
from daemon.sandbox.economic_state import Agreement, Document, Record

JOURNALS = "/apis/journalsapi/v15.0.0"
BOOKED = "/apis/bookedEntriesapi/v4.0.0"
DOCUMENTS = "/apis/documentsapi/v4.0.1"
MAX_FILE = 9_437_184
MAX_BULK = 500
_CMP = frozenset(("eq", "ne", "lt", "lte", "gt", "gte"))
_ALL = frozenset(OPS) - {"like"}
DRAFT_FILTER = {**{k: Field("int", _ALL) for k in (
    "entryNumber", "entryTypeNumber", "voucherNumber", "journalNumber", "accountNumber",
    "contraAccountNumber", "projectNumber", "customerNumber", "supplierNumber")},
    "date": Field("datetime", _CMP), "currency": Field("str", _ALL)}
BOOKED_FILTER = {**{k: Field("int", _ALL) for k in (
    "entryNumber", "accountNumber", "projectNumber", "voucherNumber", "customerNumber",
    "customerInvoiceNumber", "supplierNumber")},
    "amount": Field("float", _CMP), "amountInBaseCurrency": Field("float", _CMP),
    "currencyCode": Field("str", _ALL), "date": Field("datetime", _CMP),
    "dueDate": Field("datetime", _CMP), "text": Field("str", _CMP | {"like"}),
    "type": Field("int", frozenset(("eq", "ne"))), "vatAccountNumber": Field("str", _ALL),
    "supplierInvoiceNumber": Field("str", _ALL), "remainder": Field("float", _ALL)}
DOCUMENT_FILTER = {"number": Field("int", _ALL), "voucherNumber": Field("int", _ALL),
                   "accountingYear": Field("str", _ALL)}
Ctx = Callable[[web.Request], Agreement]
Err = tuple[str, str, str]


def _insert(a: Agreement, rec: Record) -> int | None:
    """Store a validated entry; None when the journal has no voucher number left. Its amount
    is kept as e-conomic keeps it: two decimals, rounded half up from the number sent."""
    rec["amount"] = economic_books.money(rec["amount"])
    if rec.get("voucherNumber") is None:
        nxt = a.next_voucher(rec["journalNumber"], rec["_year"])
        if nxt is None:
            return None
        rec["voucherNumber"] = nxt
    n = a.next_entry
    a.next_entry += 1
    rec["entryNumber"] = n
    rec["objectVersion"] = a.version()
    a.put_draft(n, rec)
    return n


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def routes(ctx: Ctx, page_size: Callable[[], int]) -> list[web.RouteDef]:
    async def list_drafts(request: web.Request) -> web.Response:
        recs = list(ctx(request).draft_entries.values())
        return replies.cursor_page(request, recs, key="entryNumber", fields=DRAFT_FILTER,
                                   page_size=page_size(), render=replies.public)

    async def get_draft(request: web.Request) -> web.Response:
        raw = request.match_info["n"]
        d = ctx(request).draft_entries.get(int(raw)) if raw.isdigit() else None
        return replies.json(replies.public(d)) if d else replies.not_found_problem()

    async def post_draft(request: web.Request) -> web.Response:
        a = ctx(request)
        body = await replies.body_of(request)
        rec, errs = economic_entries.validate(a, body)
        if rec is None:
            return replies.invalid(errs)
        n = _insert(a, rec)
        if n is None:
            return replies.invalid([("voucherNumber",
                                     "JournalEntryVoucherNumberNotWithinBoundaries",
                                     "The journal has no voucher number left.")])
        return replies.json({"entryNumber": n}, 201)

    async def post_bulk(request: web.Request) -> web.Response:
        a = ctx(request)
        body = await replies.body_of(request)
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, list) or not entries:
            return replies.invalid([("entries", "InvalidValue", "The entries field is required.")])
        if len(entries) > MAX_BULK:
            return replies.invalid([("entries", "OneAPITooManyEntries",
                                     f"At most {MAX_BULK} entries per request.")])
        recs: list[Record] = []
        errs: list[Err] = []
        for i, e in enumerate(entries):
            rec, more = economic_entries.validate(a, e, f"entries[{i}].")
            errs += more
            if rec is not None:
                recs.append(rec)
        if errs:
            return replies.invalid(errs)
        numbers: list[int] = []
        for rec in recs:
            if a.bulk_voucher == "shared" and numbers and rec.get("voucherNumber") is None:
                rec["voucherNumber"] = a.draft_entries[numbers[0]]["voucherNumber"]
            n = _insert(a, rec)
            if n is None:  # roll back: all or nothing
                for done in numbers:
                    a.drop_draft(done)
                return replies.invalid([("voucherNumber",
                                         "JournalEntryVoucherNumberNotWithinBoundaries",
                                         "The journal has no voucher number left.")])
            numbers.append(n)
        if a.bulk_order == "reversed":
            numbers.reverse()
        return replies.json({"entryNumbers": numbers}, 201)

    async def delete_draft(request: web.Request) -> web.Response:
        a = ctx(request)
        raw = request.match_info["n"]
        if not raw.isdigit() or int(raw) not in a.draft_entries:
            return replies.not_found_problem()
        a.drop_draft(int(raw))
        return web.Response(status=204)

    async def book(request: web.Request) -> web.Response:
        a = ctx(request)
        raw = request.match_info["j"]
        j = int(raw) if raw.isdigit() else -1
        if j not in a.journals:
            return replies.problem(404, "The journal does not exist.", code="JournalDoesNotExist")
        body = await replies.body_of(request)
        nums = body.get("entryNumbers") if isinstance(body, dict) else None
        if not isinstance(nums, list) or not nums or \
                not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
            return replies.invalid([("entryNumbers", "InvalidValue",
                                     "entryNumbers must be a list of at least one number.")])
        missing = [n for n in nums if a.draft_entries.get(n, {}).get("journalNumber") != j]
        if missing:
            text = f"Draft entries {missing} do not exist in journal {j}."
            if a.book_missing_status == 404:
                return replies.problem(404, text, code="JournalEntryDoesNotExist")
            return replies.invalid([("entryNumbers", "JournalEntryDoesNotExist", text)])
        rows = [r for n in dict.fromkeys(nums) for r in economic_books.book(a, a.drop_draft(n))]
        a.daybook_booked(j, rows)
        return web.Response(status=204)

    async def list_booked(request: web.Request) -> web.Response:
        recs = list(ctx(request).booked_entries.values())
        return replies.cursor_page(request, recs, key="entryNumber", fields=BOOKED_FILTER,
                                   page_size=page_size(), render=replies.public)

    def render_doc(d: Record) -> Record:
        return d

    async def list_documents(request: web.Request) -> web.Response:
        docs = [{"number": d.number, "voucherNumber": d.voucher_number,
                 "accountingYear": d.accounting_year, "pageCount": d.page_count,
                 **({"note": d.note} if d.note else {})}
                for d in ctx(request).documents.values()]
        return replies.cursor_page(request, docs, key="number", fields=DOCUMENT_FILTER,
                                   page_size=page_size(), render=render_doc)

    async def attach(request: web.Request) -> web.Response:
        a = ctx(request)
        if a.attachments == "forbidden":
            return replies.problem(403, "The agreement cannot store attachments.",
                                   code="UnableToAttach")
        if not request.content_type.startswith("multipart/form-data"):
            return replies.problem(415, "Unsupported Media Type")
        form = await request.post()
        fields = {k.lower(): v for k, v in form.items()}
        served = request.get(replies.SERVED)
        if served is not None:  # what the parts were, for the request log
            served.body = msgspec.json.encode(
                {k: (f"<file {v.filename} {v.content_type}>" if isinstance(v, web.FileField)
                     else v) for k, v in form.items()}).decode()
        errs: list[Err] = []
        upload = fields.get("file")
        data = b""
        if not isinstance(upload, web.FileField):
            errs.append(("file", "InvalidFileData", "The File field is required."))
        else:
            data = upload.file.read()
            if len(data) > MAX_FILE:
                errs.append(("file", "InvalidFileData", "Max allowed file size: 9 MB."))
            elif _sniff(data) is None:
                errs.append(("file", "InvalidFileData",
                             "Only PDF, JPEG and PNG can be attached."))
        year = str(fields.get("accountingyear", ""))
        raw_v = str(fields.get("vouchernumber", ""))
        if year not in a.accounting_years:
            errs.append(("accountingYear", "AccountingYearNotFound",
                         "The accounting year does not exist."))
        elif not raw_v.isdigit() or not a.voucher_exists(year, int(raw_v)):
            errs.append(("voucherNumber", "InvalidVoucherNumber",
                         "No draft or booked entry has this voucher number."))
        raw_c = str(fields.get("onconflict", "0"))
        if raw_c not in ("0", "1"):
            errs.append(("onConflict", "InvalidValue", "onConflict must be 0 or 1."))
        note = fields.get("note")
        if note is not None and (not isinstance(note, str) or len(note) > 250):
            errs.append(("note", "InvalidValue", "The note can be at most 250 characters."))
        if errs:
            return replies.invalid(errs)
        if a.attachments == "unable":
            return replies.invalid([("file", "UnableToAttach",
                                     "The agreement cannot store attachments.")])
        voucher = int(raw_v)
        existing = next((d for d in a.documents.values()
                         if d.accounting_year == year and d.voucher_number == voucher), None)
        if existing is not None:
            if raw_c == "1":
                return replies.invalid([("voucherNumber", "DocumentAlreadyAttachedToVoucher",
                                         "A document is already attached to the voucher.")])
            existing.content.append(data)
            n = existing.number
        else:
            n = a.next_document
            a.next_document += 1
            a.documents[n] = Document(number=n, accounting_year=year, voucher_number=voucher,
                                      content=[data], content_type=_sniff(data) or "",
                                      note=note if isinstance(note, str) else None)
        return replies.json({"number": n}, 201, {
            "Location": f"{request.scheme}://{request.host}{DOCUMENTS}/AttachedDocuments/{n}"})

    return [
        web.get(f"{JOURNALS}/draft-entries", list_drafts),
        web.post(f"{JOURNALS}/draft-entries", post_draft),
        web.post(f"{JOURNALS}/draft-entries/bulk", post_bulk),
        web.get(f"{JOURNALS}/draft-entries/{{n}}", get_draft),
        web.delete(f"{JOURNALS}/draft-entries/{{n}}", delete_draft),
        web.post(f"{JOURNALS}/journals/{{j}}/bookdraftentries", book),
        web.get(f"{BOOKED}/booked-entries", list_booked),
        web.get(f"{DOCUMENTS}/AttachedDocuments", list_documents),
        web.post(f"{DOCUMENTS}/AttachedDocuments", attach),
    ]
