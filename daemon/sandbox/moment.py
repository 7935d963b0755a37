"""A fake Moment on aiohttp: the REST API of ``../shared/moment/API.md``, plus an admin surface.

Start it in-process::

    async with MomentSandbox.running(port=0, company="acme", api_key="k") as sb:
        customer = sb.add_customer(name="Nordlys Arkitekter ApS")
        sb.set_webhook("http://127.0.0.1:8080/webhooks/moment/TOKEN")
        ...  # sb.api_url, sb.company, sb.api_key, sb.admin_url

What it serves, under ``{api_url}/companies/{company}``: ``customers``, ``projects`` and
``invoices`` (lists and ``/{id}``), ``invoices/{id}/pdf`` and ``projectExpenses``; see
:mod:`daemon.sandbox.moment_api`. The admin surface (:mod:`daemon.sandbox.moment_admin`) lives
under ``/admin`` and has no counterpart in the real Moment.

Guarantees:

* Answers have exactly API.md's shapes (plus ``extra_fields`` when a test asks for them), Basic
  auth (user ``apikey``) is required for every API request (401 otherwise), an unknown company
  or id is 404, bad paging or filter values are 400 with a message.
* Every API request is recorded in :attr:`MomentSandbox.requests` (method, path, query,
  status, the ``Idempotency-Key`` it carried), including ones answered by an injected fault,
  the throttle or a 401; admin requests are not. A
  ``drop`` fault's request is served (its effect kept, its status recorded) and then the
  connection is cut, so the client never learns the outcome.
* Every create, change or delete made while the sandbox runs with a webhook URL set sends one
  thin hint, as Moment does: no signature, no retries; deliveries happen one at a time in a
  task owned by the sandbox, and each outcome is kept in :attr:`webhook_deliveries`.
  :meth:`MomentSandbox.webhooks_idle` waits until every queued hint has been delivered.
* With a rate limit (:attr:`MomentSandbox.throttle`, a
  :class:`~daemon.sandbox.moment_faults.Throttle`; off unless given, and
  :data:`~daemon.sandbox.moment_faults.DOCUMENTED_LIMIT` under ``moment-sync sandbox`` and the
  demo), a request over it is answered 429 with ``Retry-After`` (whole seconds until one
  request fits) and not served.
* An ``Idempotency-Key`` header is ignored, as Moment documents: a POST sent twice with the
  same key creates twice; only the ``externalId`` lookup keeps an expense single.
* It only binds the host it is given (127.0.0.1 by default) and it imports nothing of the
  daemon outside ``daemon.sandbox``: it shares no code with the client it stands in for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Final, Self

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.sandbox import (
    moment_admin,
    moment_api,
    moment_data,
    moment_faults,
    moment_pdf,
    moment_records,
    moment_samples,
)

API_ROOT: Final = "/api/1.0"
ADMIN_ROOT: Final = "/admin"
DEFAULT_API_KEY: Final = "moment-sandbox-key"
WEBHOOK_TIMEOUT_S: Final = 10.0


@dataclasses.dataclass(frozen=True)
class ServedRequest:
    """One API request the sandbox answered."""

    method: str
    path: str
    query: str
    status: int
    idempotency_key: str | None = None


@dataclasses.dataclass(frozen=True)
class WebhookDelivery:
    """One hint POSTed to a webhook URL: the receiver's status, or the transport error."""

    url: str
    body: bytes
    status: int | None
    error: str | None = None
    answer: bytes = b""


class MomentSandbox(moment_data.MomentData):
    """A Moment company (the data and its Python API come from
    :class:`~daemon.sandbox.moment_data.MomentData`) served over HTTP."""

    def __init__(self, *, company: str = "acme", api_key: str = DEFAULT_API_KEY,
                 now: Callable[[], dt.datetime] = moment_records.utc_now, seed: int = 0,
                 default_page_size: int = 20,
                 rate_limit: tuple[int, float] | None = None) -> None:
        super().__init__(now=now)
        if not company or "/" in company:
            raise ValueError("company must be a non-empty path segment")
        self.company = company
        self.api_key = api_key
        self.default_page_size = default_page_size
        self.faults = moment_faults.FaultInjector(seed=seed)
        self.throttle: moment_faults.Throttle | None = None
        self.set_rate_limit(rate_limit)
        self.requests: list[ServedRequest] = []
        self.webhook_url: str | None = None
        self.webhook_deliveries: list[WebhookDelivery] = []
        #: Fields merged into every object the API serves (to test that clients ignore them).
        self.extra_fields: dict[str, object] = {}
        self.host = "127.0.0.1"
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.listeners.append(self._queue_hint)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, *, host: str = "127.0.0.1", port: int = 0, company: str = "acme",
                      api_key: str = DEFAULT_API_KEY,
                      now: Callable[[], dt.datetime] = moment_records.utc_now, seed: int = 0,
                      webhook_url: str | None = None,
                      rate_limit: tuple[int, float] | None = None) -> AsyncIterator[Self]:
        """A started sandbox, stopped (webhook worker and server) when the block exits."""
        sandbox = cls(company=company, api_key=api_key, now=now, seed=seed,
                      rate_limit=rate_limit)
        sandbox.webhook_url = webhook_url
        await sandbox.start(host=host, port=port)
        try:
            yield sandbox
        finally:
            await sandbox.stop()

    # --- addresses ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The API root a client is configured with, e.g. ``http://127.0.0.1:PORT/api/1.0``."""
        return self.base_url + API_ROOT

    @property
    def admin_url(self) -> str:
        return self.base_url + ADMIN_ROOT

    # --- life cycle -----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._api_middleware], client_max_size=1024 * 1024)
        app.add_routes(moment_api.routes(self, API_ROOT))
        app.add_routes(moment_admin.routes(self, ADMIN_ROOT))
        return app

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind ``host:port`` (0: any free port, see :attr:`port`) and serve."""
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self.host, self.port = host, int(sock.getsockname()[1])
        self._runner = runner
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S))
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._deliver_forever())

    async def stop(self) -> None:
        """Stop delivering hints (queued ones are dropped) and serving; idempotent."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._queue = None
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- what tests and the demo call -----------------------------------------------------

    def set_webhook(self, url: str | None) -> None:
        """Send a hint for every later change to ``url`` (None: stop sending)."""
        self.webhook_url = url

    def set_rate_limit(self, limit: tuple[int, float] | None) -> None:
        """Throttle the API at ``(requests, per seconds)`` from now on (None: never)."""
        self.throttle = None if limit is None else moment_faults.Throttle(*limit)

    def count(self, *, method: str | None = None, path_contains: str | None = None) -> int:
        """How many API requests matched (all of them without arguments)."""
        return sum(1 for r in self.requests
                   if (method is None or r.method == method)
                   and (path_contains is None or path_contains in r.path))

    def clear_requests(self) -> None:
        self.requests.clear()

    def populate(self, *, customers: int, projects: int, invoices: int,
                 seed: int = 1) -> moment_samples.SampleSummary:
        """Add deterministic sample data, see :func:`moment_samples.populate`."""
        return moment_samples.populate(self, customers=customers, projects=projects,
                                       invoices=invoices, seed=seed)

    def invoice_pdf(self, invoice_id: int) -> bytes:
        """The PDF the API serves for a finalized or credited invoice (same bytes for the
        same invoice version); :class:`moment_records.SandboxError` for a draft."""
        invoice = self._invoice(invoice_id)
        if invoice.status == "DRAFT" or invoice.invoice_number is None:
            raise moment_records.SandboxError(f"invoice {invoice_id} is a draft: it has no PDF")
        customer = self.customers.get(invoice.customer_id)
        kind = "Credit note" if invoice.is_credit_note else "Invoice"
        lines = [
            f"Customer {invoice.customer_number}"
            + (f" {customer.name}" if customer is not None else ""),
            f"Project {invoice.project_number}" if invoice.project_number else "No project",
            f"Invoice date {invoice.invoice_date.isoformat()}",
            f"Due date {invoice.due_date.isoformat()}",
            f"Description {invoice.description or ''}",
            f"Total excluding VAT {invoice.total_excluding_vat} {invoice.currency}",
            f"VAT {invoice.total_vat} {invoice.currency}",
            f"Total including VAT {invoice.total_including_vat} {invoice.currency}",
        ]
        if invoice.credited_invoice_number is not None:
            lines.append(f"Credits invoice {invoice.credited_invoice_number}")
        lines.append(f"Moment id {invoice.id}, version {invoice.version}")
        return moment_pdf.render_pdf(title=f"{kind} {invoice.invoice_number}",
                                     heading=f"{kind} {invoice.invoice_number}", lines=lines)

    async def fire(self, kind: moment_records.Kind, moment_id: int, *, event: str = "UPDATE",
                   url: str | None = None) -> WebhookDelivery:
        """POST the hint for one existing object now, to ``url`` or the configured URL."""
        body = json.dumps(self.hint(kind, moment_id, event)).encode()
        return await self.fire_raw(body, url=url)

    async def fire_raw(self, body: bytes, *, url: str | None = None,
                       content_type: str = "application/json") -> WebhookDelivery:
        """POST any body as a webhook would (for receiver tests with malformed hints)."""
        target = url or self.webhook_url
        if target is None:
            raise moment_records.SandboxError("no webhook URL is set")
        delivery = await self._post(target, body, content_type=content_type)
        self.webhook_deliveries.append(delivery)
        return delivery

    async def webhooks_idle(self) -> None:
        """Return once every hint queued so far has been delivered (or failed)."""
        if self._queue is not None:
            await self._queue.join()

    # --- internals ------------------------------------------------------------------------

    def _queue_hint(self, hint: moment_records.Json) -> None:
        if self.webhook_url is not None and self._queue is not None:
            self._queue.put_nowait((self.webhook_url, json.dumps(hint).encode()))

    async def _deliver_forever(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            url, body = await queue.get()
            try:
                try:
                    delivery = await self._post(url, body, content_type="application/json")
                except Exception as exc:  # one bad URL must not stop the hints after it
                    delivery = WebhookDelivery(url=url, body=body, status=None,
                                               error=f"{type(exc).__name__}: {exc}")
                self.webhook_deliveries.append(delivery)
            finally:
                queue.task_done()

    async def _post(self, url: str, body: bytes, *, content_type: str) -> WebhookDelivery:
        session = self._session
        if session is None:
            raise RuntimeError("the sandbox is not running")
        try:
            async with session.post(url, data=body, headers={
                    "Content-Type": content_type, "User-Agent": "Moment-Webhooks (sandbox)"},
                    allow_redirects=False) as response:
                answer = await response.read()
                return WebhookDelivery(url=url, body=body, status=response.status,
                                       answer=answer)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return WebhookDelivery(url=url, body=body, status=None,
                                   error=f"{type(exc).__name__}: {exc}")

    @web.middleware
    async def _api_middleware(self, request: web.Request,
                              handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_ROOT + "/"):
            return await handler(request)
        status = 500
        response: web.StreamResponse
        try:
            fault = self.faults.pick(request.method, request.path)
            wait = None if self.throttle is None else self.throttle.admit(
                self._now().timestamp())
            if fault is not None and not fault.drop:
                response = moment_api.fault_response(fault)
            elif wait is not None:
                response = moment_api.error(429, "too many requests",
                                            headers={"Retry-After": str(wait)})
            elif not moment_api.authorized(request, self.api_key):
                response = moment_api.error(401, "missing or wrong API key",
                                            headers={"WWW-Authenticate": 'Basic realm="Moment"'})
            else:
                response = await handler(request)
                if fault is not None and request.transport is not None:
                    request.transport.abort()  # committed; the answer never arrives
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.requests.append(ServedRequest(
                method=request.method, path=request.path, query=request.query_string,
                status=status, idempotency_key=request.headers.get("Idempotency-Key")))
