"""An async client for the Moment REST API, on one aiohttp session.

What it does: reads customers, projects and invoices (one by id, or every page of a filtered
list, ``sort=id,asc``), streams an invoice PDF, creates/finds project expenses, and reads/sets
an invoice's payment status, all with Basic auth (user ``apikey``, password the API key).
Shapes come from :mod:`daemon.moment.shapes`.

Guarantees:

* The API key is revealed only in :meth:`MomentClient._headers`, where the header is built;
  it never appears in a URL, a log line or an error.
* Only :mod:`daemon.moment.errors` exceptions leave this module (besides cancellation and
  ``ValueError`` for a caller's own mistake, such as a naive datetime): every aiohttp or
  msgspec failure is translated and classified retryable or terminal. An error is chained to its
  cause only when that cause holds no request or response headers.
* Redirects are not followed (a redirect would carry the key elsewhere): a 3xx is
  :class:`~daemon.moment.errors.Redirected`, saying where it pointed.
* The client stores nothing: an invoice PDF is handed back as a stream of byte chunks that the
  caller consumes inside ``async with client.invoice_pdf(id) as pdf``.
* Every call waits for the client's :class:`~daemon.moment.limiting.Limiter`: its pace, when
  one is set, and the pause a 429 imposes on every call until ``Retry-After`` has passed.
* Every write (POST, PUT) carries the caller's ``Idempotency-Key`` header, the key recorded
  with the intent. Moment ignores it (API.md): the caller's lookup before writing again is what
  keeps a write single; the key is sent so that the request is the same on every attempt.
* Failures are classified as the e-conomic client's are: retryable (429, 5xx, transport,
  and :class:`~daemon.moment.errors.UnknownOutcome` for a write Moment answered 2xx with a
  body that cannot be read), or terminal (refused).
* No retries here: a caller decides when to try a retryable error again.

How an answer is read (its status as an error, its body as a shape) is in
:mod:`daemon.moment.answers`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Final, Literal, NoReturn, Self, TypeVar

import aiohttp
import msgspec

from daemon.core import clocks, secrets
from daemon.moment import answers, errors, limiting, shapes

MAX_PAGE_SIZE: Final = 100
PDF_CHUNK: Final = 64 * 1024

R = TypeVar("R")


def format_timestamp(moment: dt.datetime) -> str:
    """``2026-11-01T00:00:00Z`` for a filter value; a naive datetime is the caller's bug."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a Moment filter timestamp must carry a UTC offset")
    return clocks.iso(moment, timespec="microseconds" if moment.microsecond else "seconds")


class MomentClient:
    """One company's Moment API. Use as ``async with MomentClient(...) as client:``.

    ``api_url`` is the API root, e.g. ``https://app.moment.team/api/1.0``. ``clock`` (its wall
    time) turns an HTTP-date ``Retry-After`` into seconds and times the limiter's waits;
    ``pace``: the client-side limit, None for none (429 pauses still hold every call).
    """

    def __init__(self, *, api_url: str, company: str, api_key: secrets.Secret,
                 timeout_s: float = 30.0, page_size: int = MAX_PAGE_SIZE,
                 clock: clocks.Clock, pace: limiting.Pace | None = None,
                 max_in_flight: int = 8) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        if not company:
            raise ValueError("company must not be empty")
        self._api_url = api_url.rstrip("/")
        self._company_path = "/companies/" + urllib.parse.quote(company, safe="")
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s,
                                              sock_connect=timeout_s, sock_read=timeout_s)
        self._page_size = page_size
        self._clock = clock
        self.limiter = limiting.Limiter(clock=clock, pace=pace, max_in_flight=max_in_flight)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"<MomentClient {self._api_url}{self._company_path}>"

    def stats(self) -> limiting.Stats:
        """The rate limiter's snapshot for ``/status`` and ``/metrics`` (no secret in it)."""
        return self.limiter.stats()

    async def __aenter__(self) -> Self:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, raise_for_status=False)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session; the client cannot be used afterwards until re-entered."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # --- resources ------------------------------------------------------------------------

    async def get_customer(self, moment_id: int) -> shapes.Customer:
        return await self._get_one(f"/customers/{_positive(moment_id)}", shapes.Customer)

    async def get_project(self, moment_id: int) -> shapes.Project:
        return await self._get_one(f"/projects/{_positive(moment_id)}", shapes.Project)

    async def get_invoice(self, moment_id: int) -> shapes.Invoice:
        return await self._get_one(f"/invoices/{_positive(moment_id)}", shapes.Invoice)

    async def customers_page(self, *, page: int = 1, size: int | None = None,
                             modified_from: dt.datetime | None = None,
                             modified_to: dt.datetime | None = None,
                             ) -> shapes.Page[shapes.Customer]:
        return await self._get_page("/customers", shapes.Page[shapes.Customer], page=page,
                                    size=size, modified_from=modified_from,
                                    modified_to=modified_to)

    async def projects_page(self, *, page: int = 1, size: int | None = None,
                            modified_from: dt.datetime | None = None,
                            modified_to: dt.datetime | None = None,
                            ) -> shapes.Page[shapes.Project]:
        return await self._get_page("/projects", shapes.Page[shapes.Project], page=page,
                                    size=size, modified_from=modified_from,
                                    modified_to=modified_to)

    async def invoices_page(self, *, page: int = 1, size: int | None = None,
                            modified_from: dt.datetime | None = None,
                            modified_to: dt.datetime | None = None,
                            ) -> shapes.Page[shapes.Invoice]:
        return await self._get_page("/invoices", shapes.Page[shapes.Invoice], page=page,
                                    size=size, modified_from=modified_from,
                                    modified_to=modified_to)

    def iter_customers(self, *, modified_from: dt.datetime | None = None,
                       modified_to: dt.datetime | None = None,
                       ) -> AsyncIterator[shapes.Customer | shapes.Unreadable]:
        """Every customer (modified in ``[from, to)`` when given), by ascending id; one that
        does not decode is a :class:`~daemon.moment.shapes.Unreadable` in its place."""
        return self._iterate("customer", "/customers", shapes.Customer,
                             modified_from=modified_from, modified_to=modified_to)

    def iter_projects(self, *, modified_from: dt.datetime | None = None,
                      modified_to: dt.datetime | None = None,
                      ) -> AsyncIterator[shapes.Project | shapes.Unreadable]:
        return self._iterate("project", "/projects", shapes.Project,
                             modified_from=modified_from, modified_to=modified_to)

    def iter_invoices(self, *, modified_from: dt.datetime | None = None,
                      modified_to: dt.datetime | None = None,
                      ) -> AsyncIterator[shapes.Invoice | shapes.Unreadable]:
        """Invoices of every status; callers keep those with ``is_fact``."""
        return self._iterate("invoice", "/invoices", shapes.Invoice,
                             modified_from=modified_from, modified_to=modified_to)

    @contextlib.asynccontextmanager
    async def invoice_pdf(self, moment_id: int) -> AsyncIterator[answers.PdfStream]:
        """The invoice's PDF as a :class:`~daemon.moment.answers.PdfStream`, valid inside the
        ``async with``.

        Raises before yielding for any answer other than 200 ``application/pdf``. Whether
        the bytes really are a PDF, and how many of them to accept, is the caller's call.
        """
        method, path = "GET", f"{self._company_path}/invoices/{_positive(moment_id)}/pdf"
        session = self._open_session()
        await self.limiter.acquire()
        try:
            try:
                response = await session.get(self._api_url + path,
                                             headers=self._headers("application/pdf"),
                                             allow_redirects=False)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise answers.transport_error(exc, method=method, path=path) from answers.cause(exc)
            try:
                if response.status != 200:
                    body = await answers.read(response, method=method, path=path)
                    self._raise_for_status(response, body, method=method, path=path)
                content_type = response.content_type
                if content_type != "application/pdf":
                    raise errors.BadResponse(f"expected application/pdf, got {content_type}",
                                             method=method, path=path, status=response.status)
                yield answers.PdfStream(response, method=method, path=path, chunk_size=PDF_CHUNK)
            finally:
                response.release()
        finally:
            self.limiter.release()

    async def create_project_expense(self, expense: shapes.ProjectExpense, *,
                                     idempotency_key: str) -> shapes.ProjectExpense:
        """POST a project expense; Moment's answer (with its ``id``) is returned. A 2xx whose
        body does not decode is :class:`~daemon.moment.errors.UnknownOutcome`: the expense
        may exist, look it up by ``externalId`` before posting again."""
        path = f"{self._company_path}/projectExpenses"
        raw = await self._send("POST", path, json_body=msgspec.json.encode(expense),
                               idempotency_key=idempotency_key)
        return answers.decode_written(raw, shapes.ProjectExpense, method="POST", path=path)

    async def find_project_expense(self, external_id: str) -> shapes.ProjectExpense | None:
        """The expense created with ``external_id``, or None when Moment has none."""
        path = f"{self._company_path}/projectExpenses"
        raw = await self._send("GET", path, params={"externalId": external_id})
        page = answers.decode(raw, shapes.Page[shapes.ProjectExpense], method="GET", path=path)
        for expense in page.content:
            if expense.external_id == external_id:
                return expense
        return None

    async def get_payment_status(self, moment_id: int) -> shapes.PaymentStatus:
        """The invoice's payment status (never paid: ``paidAmount`` "0.00")."""
        return await self._get_one(f"/invoices/{_positive(moment_id)}/paymentStatus",
                                   shapes.PaymentStatus)

    async def set_payment_status(self, moment_id: int, status: shapes.PaymentStatus, *,
                                 idempotency_key: str) -> shapes.PaymentStatus:
        """PUT the invoice's payment status; Moment's answer is returned. The PUT is idempotent
        (the same body twice is one state); a 2xx whose body does not decode is
        :class:`~daemon.moment.errors.UnknownOutcome`."""
        path = f"{self._company_path}/invoices/{_positive(moment_id)}/paymentStatus"
        raw = await self._send("PUT", path, json_body=msgspec.json.encode(status),
                               idempotency_key=idempotency_key)
        return answers.decode_written(raw, shapes.PaymentStatus, method="PUT", path=path)

    # --- plumbing -------------------------------------------------------------------------

    def _headers(self, accept: str) -> dict[str, str]:
        token = base64.b64encode(f"apikey:{self._api_key.reveal()}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}", "Accept": accept}

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("MomentClient is not open: use `async with MomentClient(...)`")
        return self._session

    async def _iterate(self, kind: Literal["customer", "project", "invoice"], suffix: str,
                       shape: type[R], *, modified_from: dt.datetime | None,
                       modified_to: dt.datetime | None,
                       ) -> AsyncIterator[R | shapes.Unreadable]:
        """Pages 1, 2, ... until ``totalElements`` are seen or a page comes back short.

        Each object is decoded on its own: one that does not fit its shape is yielded as
        :class:`~daemon.moment.shapes.Unreadable`, so one bad object never hides the others
        (a page whose envelope does not decode is :class:`~daemon.moment.errors.BadResponse`).
        Objects that change while the pages are read may move; the poller's overlap window,
        not this loop, is what makes such a read complete.
        """
        page_no, seen = 1, 0
        while True:
            page = await self._get_page(suffix, shapes.Page[msgspec.Raw], page=page_no,
                                        size=None, modified_from=modified_from,
                                        modified_to=modified_to)
            for raw in page.content:
                yield answers.listed(kind, raw, shape)
            seen += len(page.content)
            if (not page.content or len(page.content) < self._page_size
                    or seen >= page.page.total_elements):
                return
            page_no += 1

    async def _get_one(self, suffix: str, kind: type[R]) -> R:
        path = self._company_path + suffix
        raw = await self._send("GET", path)
        return answers.decode(raw, kind, method="GET", path=path)

    async def _get_page(self, suffix: str, kind: type[R], *, page: int, size: int | None,
                        modified_from: dt.datetime | None,
                        modified_to: dt.datetime | None) -> R:
        size = self._page_size if size is None else size
        if page < 1:
            raise ValueError(f"page starts at 1, got {page}")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"size must be 1..{MAX_PAGE_SIZE}, got {size}")
        params = {"page": str(page), "size": str(size), "sort": "id,asc"}
        if modified_from is not None:
            params["lastModifiedDateFrom"] = format_timestamp(modified_from)
        if modified_to is not None:
            params["lastModifiedDateTo"] = format_timestamp(modified_to)
        path = self._company_path + suffix
        raw = await self._send("GET", path, params=params)
        return answers.decode(raw, kind, method="GET", path=path)

    async def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    json_body: bytes | None = None, idempotency_key: str | None = None,
                    ) -> bytes:
        if method != "GET" and not idempotency_key:
            raise ValueError(f"{method} {path} needs the caller's idempotency_key")
        session = self._open_session()
        headers = self._headers("application/json")
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        await self.limiter.acquire()
        try:
            async with session.request(method, self._api_url + path, params=params,
                                       data=json_body, headers=headers,
                                       allow_redirects=False) as response:
                body = await answers.read(response, method=method, path=path)
                if not 200 <= response.status < 300:
                    self._raise_for_status(response, body, method=method, path=path)
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise answers.transport_error(exc, method=method, path=path) from answers.cause(exc)
        finally:
            self.limiter.release()

    def _raise_for_status(self, response: aiohttp.ClientResponse, body: bytes, *,
                          method: str, path: str) -> NoReturn:
        error = answers.status_error(response, body, method=method, path=path,
                                     now=clocks.utc(self._clock.now()))
        if isinstance(error, errors.RateLimited):  # every call of this client waits, not one
            self.limiter.throttled(error.retry_after)
        raise error


def _positive(moment_id: int) -> int:
    if isinstance(moment_id, bool) or not isinstance(moment_id, int) or moment_id < 1:
        raise ValueError(f"a Moment id is a positive integer, got {moment_id!r}")
    return moment_id
