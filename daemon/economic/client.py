"""The e-conomic client: the endpoints the daemon uses, typed, paged, rate-limited.

Legacy REST under ``rest_url`` (customers and lookups), the OpenAPI services under ``apis_url``
(projectsapi v1.1.0, journalsapi v15.0.0, bookedEntriesapi v4.0.0, documentsapi v4.0.1).
Every method either returns decoded Structs or raises a :mod:`daemon.economic.errors` error.
Every write takes the caller's ``idempotency_key``; the client never invents one. Writes leave
nothing behind in the client on error: whether e-conomic applied a write that raised a
retryable error is unknown, and the caller looks the natural key up before writing again; a
write answered 2xx with a body that cannot be read raises :class:`errors.UnknownOutcome` (it was
applied: never a refusal).

Calls for invoices (draft entries, booking, booked entries, attachments) run with priority and
may spend the daily budget's invoice reserve; all others may not.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import msgspec

from daemon.core import clocks, ratelimits
from daemon.core.secrets import Secret
from daemon.economic import errors, filters, payloads
from daemon.economic.calling import Base, Caller, Counters
from daemon.economic.limiting import Limiter

T = TypeVar("T")
PROJECTS = "projectsapi/v1.1.0"
JOURNALS = "journalsapi/v15.0.0"
BOOKED = "bookedEntriesapi/v4.0.0"
DOCUMENTS = "documentsapi/v4.0.1"
PAGE_SIZE = 1000
MAX_BULK = 500
TIMEOUT_S = 30.0  # a call that has not answered by then is an unknown outcome


class LegacyPage(msgspec.Struct, Generic[T]):
    collection: list[T]
    pagination: payloads.Pagination = msgspec.field(default_factory=payloads.Pagination)


class CursorPage(msgspec.Struct, Generic[T]):
    items: list[T] | None = None
    cursor: str | None = None


class CustomerPut(msgspec.Struct, frozen=True):
    """What ``PUT /customers/{n}`` left behind; ``created`` when it answered 201."""

    customer: payloads.Customer
    created: bool


class RateLimitStats(msgspec.Struct, frozen=True):
    """The bucket mirror: tokens ``used`` of ``limit`` now; it drains ``limit`` per
    ``window_s`` seconds."""

    used: int
    limit: int
    window_s: float


class ClientStats(msgspec.Struct, frozen=True):
    """A snapshot for ``/status`` and ``/metrics``. ``paused_until`` is a POSIX time while a
    429 pause is in force; ``calls_today`` is the calls of the last rolling 24 hours (to the
    minute); ``calls`` counts calls by ``"METHOD /path-template status"``
    (status 0: no answer)."""

    rate_limit: RateLimitStats
    calls_today: int
    paused_until: float | None
    in_flight: int
    rate_limited: int
    tokens_used: int
    replayed: int
    last_error: str | None
    calls: dict[str, int]


_decoders: dict[object, msgspec.json.Decoder[object]] = {}


def _decode(kind: type[T] | object, body: bytes, *, method: str, path: str) -> T:
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return dec.decode(body)  # type: ignore[return-value]
    except msgspec.DecodeError as exc:
        text, where = body.decode("utf-8", "replace"), path.split(" ", 1)[-1]
        if method != "GET":  # a 2xx to a write: applied, with an answer we cannot read
            raise errors.UnknownOutcome(f"applied, but the answer is not as specified: {exc}",
                                        method=method, path=where, status=200,
                                        body=text) from exc
        raise errors.ProtocolError(f"answer not as specified: {exc}", method=method,
                                   path=where, status=200, body=text) from exc


def _decode_item(kind: type[T], raw: msgspec.Raw) -> T:
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.json.Decoder(kind)
    return dec.decode(raw)  # type: ignore[return-value]


def _query(filter: filters.Filter | str | None, extra: Mapping[str, str] | None = None
           ) -> dict[str, str]:
    q = dict(extra or {})
    if filter is not None:
        q["filter"] = str(filter)
    return q


class EconomicClient:
    """One client per agreement. Use ``async with EconomicClient(...) as client`` or call
    :meth:`aclose`. ``clock`` is the injected time the limiter waits on; ``invoice_reserve``
    defaults to a tenth of ``daily_call_budget``; ``on_call(method, path_template, status)`` is
    told of every call as it finishes (status None when no answer came), e.g. to feed
    metrics."""

    def __init__(self, *, rest_url: str, apis_url: str, app_secret_token: Secret,
                 agreement_grant_token: Secret, clock: clocks.Clock,
                 daily_call_budget: int = 50_000, invoice_reserve: int | None = None,
                 max_in_flight: int = 4, timeout_s: float = TIMEOUT_S, rate_limit_retries: int = 2,
                 session: aiohttp.ClientSession | None = None,
                 on_call: Callable[[str, str, int | None], None] | None = None) -> None:
        self.limiter = Limiter(clock=clock, daily_call_budget=daily_call_budget,
                               invoice_reserve=invoice_reserve, max_in_flight=max_in_flight)
        self._caller = Caller(rest_url=rest_url, apis_url=apis_url,
                              app_secret_token=app_secret_token,
                              agreement_grant_token=agreement_grant_token, limiter=self.limiter,
                              timeout_s=timeout_s, rate_limit_retries=rate_limit_retries,
                              session=session, on_call=on_call)

    async def __aenter__(self) -> EconomicClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._caller.aclose()

    # ------------------------------------------------------------ observation ---------------
    @property
    def caller(self) -> Caller:
        """The one caller of this client (its session, limiter and counters)."""
        return self._caller

    @property
    def counters(self) -> Counters:
        return self._caller.counters

    def stats(self) -> ClientStats:
        """A snapshot for ``/status`` and ``/metrics`` (the bucket as of now, drained)."""
        b = self.limiter.bucket
        used = math.ceil(ratelimits.level(b, self.limiter.clock.now()) - ratelimits.EPSILON)
        c = self.counters
        return ClientStats(
            rate_limit=RateLimitStats(used=used, limit=b.limit, window_s=b.window_s),
            calls_today=self.limiter.calls_today(), paused_until=self.limiter.paused_until,
            in_flight=self.limiter.in_flight, rate_limited=c.rate_limited,
            tokens_used=c.tokens_used, replayed=c.replayed, last_error=c.last_error,
            calls={f"{ep} {st}": n for (ep, st), n in sorted(c.calls.items())})

    # ------------------------------------------------------------ plumbing -----------------
    async def _get(self, kind: type[T] | object, base: Base, path: str, *, endpoint: str,
                   params: Mapping[str, str] | None = None, priority: bool = False) -> T:
        ans = await self._caller.call("GET", base, path, endpoint=endpoint, params=params,
                                      priority=priority)
        return _decode(kind, ans.body, method="GET", path=endpoint)

    async def _legacy_pages(self, kind: type[T], path: str, *, endpoint: str,
                            filter: filters.Filter | str | None = None,
                            sort: str | None = None, page_size: int = PAGE_SIZE
                            ) -> AsyncIterator[T]:
        """Every item of a legacy collection, following ``nextPage`` (one call per page)."""
        extra = {"skippages": "0", "pagesize": str(page_size)}
        if sort:
            extra["sort"] = sort
        params: dict[str, str] = _query(filter, extra)
        while True:
            page: LegacyPage[T] = await self._get(LegacyPage[kind],  # type: ignore[valid-type]
                                                  "rest", path, endpoint=endpoint, params=params)
            for item in page.collection:
                yield item
            nxt = page.pagination.nextPage
            if not nxt or not page.collection:
                return
            # Follow nextPage's query only: the tokens never go to a host from an answer.
            params = dict(parse_qsl(urlsplit(nxt).query, keep_blank_values=True))

    async def _cursor_pages(self, kind: type[T], path: str, *, endpoint: str,
                            filter: filters.Filter | str | None = None,
                            priority: bool = False) -> AsyncIterator[T]:
        """Every item of an OpenAPI collection, following ``cursor`` until it is absent."""
        params = _query(filter)
        while True:
            page: CursorPage[T] = await self._get(CursorPage[kind],  # type: ignore[valid-type]
                                                  "apis", path, endpoint=endpoint,
                                                  params=params, priority=priority)
            for item in page.items or ():
                yield item
            if not page.cursor:
                return
            if page.cursor == params.get("cursor"):  # a server bug must not loop forever
                raise errors.ProtocolError("the cursor did not advance", method="GET",
                                           path=endpoint.split(" ", 1)[-1], status=200)
            params = {**params, "cursor": page.cursor}

    async def _all(self, kind: type[T], path: str) -> list[T]:
        return [x async for x in self._legacy_pages(kind, path, endpoint=f"GET /{path}")]

    # ------------------------------------------------------------ legacy REST --------------
    async def get_self(self) -> payloads.Agreement:
        return await self._get(payloads.Agreement, "rest", "self", endpoint="GET /self")

    def iter_customers(self, *, filter: filters.Filter | str | None = None,
                       sort: str | None = None, page_size: int = PAGE_SIZE
                       ) -> AsyncIterator[payloads.Customer]:
        return self._legacy_pages(payloads.Customer, "customers", endpoint="GET /customers",
                                  filter=filter, sort=sort, page_size=page_size)

    async def get_customer(self, number: int) -> payloads.Customer:
        return await self._get(payloads.Customer, "rest", f"customers/{int(number)}",
                               endpoint="GET /customers/{n}")

    async def find_customer(self, number: int) -> payloads.Customer | None:
        """The customer, or None when e-conomic has no customer under ``number``."""
        try:
            return await self.get_customer(number)
        except errors.NotFound:
            return None

    async def put_customer(self, customer: payloads.CustomerWrite, *, idempotency_key: str
                           ) -> CustomerPut:
        """Replace (or create) the whole customer ``customer.customerNumber``."""
        if customer.customerNumber is None:
            raise ValueError("put_customer needs customer.customerNumber")
        ans = await self._caller.call("PUT", "rest", f"customers/{customer.customerNumber}",
                                      endpoint="PUT /customers/{n}", json=customer,
                                      idempotency_key=idempotency_key)
        body: payloads.Customer = _decode(payloads.Customer, ans.body, method="PUT",
                                          path="PUT /customers/{n}")
        return CustomerPut(customer=body, created=ans.status == 201)

    async def customer_groups(self) -> list[payloads.CustomerGroup]:
        return await self._all(payloads.CustomerGroup, "customer-groups")

    async def payment_terms(self) -> list[payloads.PaymentTerms]:
        return await self._all(payloads.PaymentTerms, "payment-terms")

    async def currencies(self) -> list[payloads.Currency]:
        return await self._all(payloads.Currency, "currencies")

    async def vat_zones(self) -> list[payloads.VatZone]:
        return await self._all(payloads.VatZone, "vat-zones")

    async def vat_accounts(self) -> list[payloads.VatAccount]:
        return await self._all(payloads.VatAccount, "vat-accounts")

    async def accounts(self) -> list[payloads.Account]:
        return await self._all(payloads.Account, "accounts")

    async def accounting_years(self) -> list[payloads.AccountingYear]:
        return await self._all(payloads.AccountingYear, "accounting-years")

    async def accounting_year_for(self, day: dt.date) -> payloads.AccountingYear | None:
        """The accounting year whose dates contain ``day``, or None."""
        iso = day.isoformat()
        for y in await self.accounting_years():
            if y.fromDate <= iso <= y.toDate:
                return y
        return None

    async def journals(self) -> list[payloads.Journal]:
        return await self._all(payloads.Journal, "journals")

    # ------------------------------------------------------------ projectsapi --------------
    def iter_projects(self, *, filter: filters.Filter | str | None = None
                      ) -> AsyncIterator[payloads.Project]:
        return self._cursor_pages(payloads.Project, f"{PROJECTS}/Projects",
                                  endpoint="GET /Projects", filter=filter)

    async def get_project(self, number: int) -> payloads.Project:
        return await self._get(payloads.Project, "apis", f"{PROJECTS}/Projects/{int(number)}",
                               endpoint="GET /Projects/{n}")

    async def find_project(self, number: int) -> payloads.Project | None:
        try:
            return await self.get_project(number)
        except errors.NotFound:
            return None

    async def create_project(self, project: payloads.ProjectWrite, *, idempotency_key: str
                             ) -> int:
        """Create the project; returns its number (``project.number`` when given)."""
        ans = await self._caller.call("POST", "apis", f"{PROJECTS}/Projects",
                                      endpoint="POST /Projects", json=project,
                                      idempotency_key=idempotency_key)
        return _decode(payloads.NumberCreated, ans.body, method="POST",
                       path="POST /Projects").number

    async def put_project(self, project: payloads.ProjectWrite, *, idempotency_key: str
                          ) -> None:
        """Replace the project ``project.number``; its ``objectVersion`` must be current, else
        :class:`errors.Conflict`."""
        await self._caller.call("PUT", "apis", f"{PROJECTS}/Projects", endpoint="PUT /Projects",
                                json=project, idempotency_key=idempotency_key)

    async def has_project_module(self) -> bool:
        """Whether the agreement has the project module: ``GET /Projects/count`` answers 403
        ``AccessDeniedAgreementMissingModules`` when it has not (other errors are raised)."""
        try:
            await self._get(int, "apis", f"{PROJECTS}/Projects/count",
                            endpoint="GET /Projects/count")
        except errors.MissingModule:
            return False
        return True

    async def project_groups(self) -> list[payloads.ProjectGroup]:
        return [g async for g in self._cursor_pages(
            payloads.ProjectGroup, f"{PROJECTS}/ProjectGroups", endpoint="GET /ProjectGroups")]

    # ------------------------------------------------------------ journalsapi --------------
    def iter_draft_entries(self, *, filter: filters.Filter | str | None = None
                           ) -> AsyncIterator[payloads.DraftEntry]:
        return self._cursor_pages(payloads.DraftEntry, f"{JOURNALS}/draft-entries",
                                  endpoint="GET /draft-entries", filter=filter, priority=True)

    async def create_draft_entries(self, entries: Sequence[payloads.DraftEntryWrite], *,
                                   idempotency_key: str) -> list[int]:
        """Create up to 500 draft entries all-or-nothing; returns their numbers in order."""
        if not 1 <= len(entries) <= MAX_BULK:
            raise ValueError(f"bulk takes 1 to {MAX_BULK} entries, got {len(entries)}")
        ans = await self._caller.call("POST", "apis", f"{JOURNALS}/draft-entries/bulk",
                                      endpoint="POST /draft-entries/bulk",
                                      json=payloads.DraftEntries(entries=list(entries)),
                                      idempotency_key=idempotency_key, priority=True)
        return _decode(payloads.DraftEntriesCreated, ans.body, method="POST",
                       path="POST /draft-entries/bulk").entryNumbers

    async def book_draft_entries(self, journal_number: int, entry_numbers: Sequence[int], *,
                                 idempotency_key: str) -> None:
        """Book the given draft entries of the journal (they become booked entries)."""
        if not entry_numbers:
            raise ValueError("nothing to book")
        await self._caller.call("POST", "apis",
                                f"{JOURNALS}/journals/{int(journal_number)}/bookdraftentries",
                                endpoint="POST /journals/{j}/bookdraftentries",
                                json=payloads.BookEntries(entryNumbers=list(entry_numbers)),
                                idempotency_key=idempotency_key, priority=True)

    # ------------------------------------------------------------ bookedEntriesapi ---------
    async def iter_booked_rows(self, *, filter: filters.Filter | str | None = None
                               ) -> AsyncIterator[
                                   payloads.BookedEntry | payloads.UnreadableBookedEntry]:
        """Every booked entry matching ``filter``, each decoded on its own: one that does not
        read as specified is an :class:`~daemon.economic.payloads.UnreadableBookedEntry` in its
        place (one entry's problem, never the listing's). One call per cursor page of 1000."""
        endpoint = "GET /booked-entries"
        async for raw in self._cursor_pages(msgspec.Raw, f"{BOOKED}/booked-entries",
                                            endpoint=endpoint, filter=filter):
            try:
                yield _decode_item(payloads.BookedEntry, raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                try:
                    loose = _decode_item(payloads.UnreadableBookedEntry, raw)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    raise errors.ProtocolError(
                        f"a booked entry without an entry number: {exc}", method="GET",
                        path=endpoint.split(" ", 1)[-1], status=200) from exc
                yield msgspec.structs.replace(loose, error=str(exc)[:200])

    def iter_booked_entries(self, *, filter: filters.Filter | str | None = None
                            ) -> AsyncIterator[payloads.BookedEntry]:
        return self._cursor_pages(payloads.BookedEntry, f"{BOOKED}/booked-entries",
                                  endpoint="GET /booked-entries", filter=filter, priority=True)

    # ------------------------------------------------------------ documentsapi -------------
    async def attach_document(self, *, accounting_year: str, voucher_number: int,
                              content: bytes, filename: str,
                              content_type: str = "application/pdf", on_conflict: int = 1,
                              note: str | None = None, idempotency_key: str) -> int:
        """Attach a PDF/JPEG/PNG to a voucher (multipart, the field names of the spec's
        ``AttachedDocumentCreate``); returns the document number. With ``on_conflict`` 1 a
        voucher that already has a document answers ``DocumentAlreadyAttachedToVoucher``."""
        def form() -> aiohttp.FormData:  # a FormData is spent once sent; a retry needs a new one
            f = aiohttp.FormData()
            # A BytesIO: aiohttp warns that large raw bytes block the loop while written.
            f.add_field("file", io.BytesIO(content), filename=filename,
                        content_type=content_type)
            f.add_field("accountingYear", accounting_year)
            f.add_field("voucherNumber", str(int(voucher_number)))
            f.add_field("onConflict", str(int(on_conflict)))
            if note is not None:
                f.add_field("note", note)
            return f

        ans = await self._caller.call("POST", "apis", f"{DOCUMENTS}/AttachedDocuments",
                                      endpoint="POST /AttachedDocuments", form=form,
                                      idempotency_key=idempotency_key, priority=True)
        return _decode(payloads.NumberCreated, ans.body, method="POST",
                       path="POST /AttachedDocuments").number
