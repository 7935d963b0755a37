"""The webhook receiver: ``POST /webhooks/moment/{token}`` and, with e-conomic webhooks on,
``POST /webhooks/economic/{token}`` on the same listener, answered 202 once durable.

What it does: checks a webhook request in the order DESIGN.md fixes (token, size, content type,
body), appends one event per good hint (Moment's: :class:`~daemon.core.events.HintReceived`;
e-conomic's: :class:`~daemon.core.events.EconomicHintReceived`) and answers 202 only after that
append has committed (the log is durable on return). The hint processor
(:mod:`daemon.ingest.hinting`) and the reconciler pick the hints up from the log, so the
receiver does no fetching.

Answers: 404 for a wrong token (compared in constant time, on SHA-256 digests so the length
does not show either; on the e-conomic route also for an ``X-Moment-Sync-Token`` header that is
present and wrong), 413 for a body over :data:`MAX_BODY_BYTES` (announced or streamed), 415
for a content type other than ``application/json``, 400 with the decoder's message for a body
that is not a hint, 408 for a body slower than :data:`BODY_TIMEOUT_S`, 503 when the log cannot
take the hint. Every answer but the 202 is JSON
``{"status": N, "message": "..."}``.

Guarantees: a refused request appends nothing; no exception from one request reaches aiohttp
(an unexpected one is a 500 logged by type only), so nothing a client sends stops the
receiver; no log line carries the token: aiohttp's access log is off and this module never logs
the path (the token is part of it), and aiohttp's own error log for malformed requests goes
through a filter that keeps only the message and the exception's type
(:mod:`daemon.ingest.connections`). A request aiohttp cannot
parse gets a plain ``400 Bad Request`` that never quotes the request (aiohttp's own answer
echoes the request line, token included). Binds exactly the host and port it is given.

Bounds (DESIGN.md): a client gets :data:`HEADER_TIMEOUT_S` to send its request line and
headers (counted from the connection, or from the previous answer on a kept-alive one), else
the connection is closed; :data:`BODY_TIMEOUT_S` for the body, else a 408 and the connection is
closed; at most :data:`MAX_CONNECTIONS` connections are held at once: while that many are open
the receiver accepts no more, and the kernel's backlog holds newcomers until a slot frees (a
slow client frees its slot within the timeouts), so slow clients cannot lock out a good one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import itertools
import socket
import uuid
from collections.abc import Callable, Mapping
from typing import Final

import anyio
import anyio.abc
import msgspec
import structlog
from aiohttp import web

from daemon import settings as config
from daemon.core import events as ev
from daemon.core import secrets, strictjson, webhooks
from daemon.ingest import connections
from daemon.moment import shapes
from daemon.store import eventlog

_log = structlog.get_logger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
HEADER_TIMEOUT_S: Final = 10.0
BODY_TIMEOUT_S: Final = 30.0
MAX_CONNECTIONS: Final = 256
ROUTE: Final = "/webhooks/moment/{token}"
PATH_PREFIX: Final = "/webhooks/moment/"
ECONOMIC_ROUTE: Final = webhooks.PATH + "{token}"
_READ_CHUNK: Final = 16 * 1024
_SHUTDOWN_S: Final = 5.0
_LOGGED_REASON: Final = 200


def _reason(response: web.Response) -> str:
    body = response.body
    if not isinstance(body, bytes):
        return ""
    try:
        message = msgspec.json.decode(body, type=dict[str, object]).get("message", "")
    except msgspec.DecodeError:
        return ""
    return message if isinstance(message, str) else ""


def _answer(status: int, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        body=msgspec.json.encode({"status": status, "message": message}))


def hint_event(hint: shapes.Hint) -> ev.HintReceived:
    """The log's record of one decoded hint (the number as Moment gave it, if it did)."""
    number: str | int | None
    if isinstance(hint, shapes.CustomerHint):
        number = hint.customer.customer_number
    elif isinstance(hint, shapes.ProjectHint):
        number = hint.project.project_number
    else:
        number = hint.invoice.invoice_number
    return ev.HintReceived(kind=hint.kind, moment_id=hint.moment_id,
                           number="" if number is None else str(number),
                           event=hint.event, source="webhook")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


@dataclasses.dataclass(frozen=True, slots=True)
class _Route:
    """One webhook route: whose token (its digest), the header that may repeat it, and how a
    body becomes the event to record (raising :class:`strictjson.BodyError`: a 400)."""

    source: str
    token_digest: bytes
    header: str | None
    decode: Callable[[bytes], ev.Event]


def _moment_event(body: bytes) -> ev.Event:
    return hint_event(shapes.decode_hint(body))


def economic_event(hint: webhooks.Hint) -> ev.EconomicHintReceived:
    """The log's record of one decoded e-conomic hint."""
    return ev.EconomicHintReceived(kind=hint.kind, event=hint.event, old=hint.old, new=hint.new,
                                   daybook=hint.daybook, first=hint.first, last=hint.last)


class Receiver:
    """The receiver on one ``host:port`` (port 0: any free port, see :attr:`port` after
    :meth:`start`). Run it with ``await tg.start(receiver.serve)``, which yields the port.
    ``on_answer(source, status)`` is told the route (``"moment"`` or ``"economic"``) and HTTP
    status of every answer the handler gives (e.g. to feed metrics); it must not raise."""

    def __init__(self, *, log: eventlog.EventLog, token: secrets.Secret,
                 economic_token: secrets.Secret | None = None,
                 economic_events: Mapping[str, str] | None = None,
                 host: str = "127.0.0.1", port: int = 8080,
                 header_timeout_s: float = HEADER_TIMEOUT_S,
                 body_timeout_s: float = BODY_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS,
                 on_answer: Callable[[str, int], None] | None = None) -> None:
        if header_timeout_s <= 0 or body_timeout_s <= 0 or max_connections < 1:
            raise ValueError("the timeouts must be positive and max_connections at least 1")
        if not token:
            raise ValueError("the webhook token is empty: set [moment] webhook_token_file or "
                             "the moment-webhook-token credential")
        self._log = log
        self._routes = {ROUTE: _Route("moment", _digest(token.reveal()), None,
                                      _moment_event)}
        if economic_token is not None:
            if not economic_token:
                raise ValueError("the e-conomic webhook token is empty: set [economic] "
                                 "webhook_token_file or the economic-webhook-token credential")
            events = dict(economic_events or webhooks.DEFAULT_EVENTS)
            self._routes[ECONOMIC_ROUTE] = _Route(
                "economic", _digest(economic_token.reveal()), webhooks.TOKEN_HEADER,
                lambda body: economic_event(webhooks.decode_hint(body, events)))
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self._accepting: anyio.CancelScope | None = None
        self._header_timeout_s = header_timeout_s
        self._body_timeout_s = body_timeout_s
        self._max_connections = max_connections
        self._slots = anyio.Semaphore(max_connections)
        self.connections = 0
        self.peak_connections = 0
        # hint keys: unique per receiver (a random run id) and cheap per hint (a counter)
        self._run_id = uuid.uuid4().hex
        self._counter = itertools.count(1)
        self.accepted = 0
        self.refused = 0
        self._on_answer = on_answer

    def __repr__(self) -> str:
        return f"<Receiver {self.host}:{self.port}>"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[connections.headers_in])
        for route in self._routes:
            app.router.add_post(route, self._handle)
        return app

    async def start(self) -> None:
        """Bind and listen; :attr:`port` is the bound port afterwards. Connections are taken
        by :meth:`serve`. An address that cannot be bound (in use, not this host's) raises
        :class:`daemon.settings.ListenError` naming ``daemon.listen``."""
        if self._runner is not None:
            raise RuntimeError("the receiver is already running")
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                               shutdown_timeout=_SHUTDOWN_S, logger=connections.server_log)
        await runner.setup()
        try:
            family, _, _, _, address = (await anyio.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM))[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
                sock.listen(1024)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            await runner.cleanup()
            raise config.ListenError("daemon.listen", config.Listen(self.host, self.port),
                                     exc) from None
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(sock.getsockname()[1])
        self._runner = runner
        self._sock = sock
        _log.info("webhook receiver listening", host=self.host, port=self.port,
                  max_connections=self._max_connections)

    async def stop(self) -> None:
        """Stop accepting; requests in flight get up to a few seconds. Idempotent."""
        runner, self._runner = self._runner, None
        sock, self._sock = self._sock, None
        if self._accepting is not None:
            self._accepting.cancel()
        if sock is not None:
            sock.close()
        if runner is not None:
            await runner.cleanup()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
                    ) -> None:
        """Start, report the bound port through ``task_status``, serve until cancelled (or
        until :meth:`stop`)."""
        await self.start()
        try:
            task_status.started(self.port)
            with anyio.CancelScope() as self._accepting:
                await self._accept()
        finally:
            self._accepting = None
            with anyio.CancelScope(shield=True):
                await self.stop()

    async def _accept(self) -> None:
        """Take connections while fewer than ``max_connections`` are open (a slot is freed
        when a connection is lost)."""
        loop = asyncio.get_running_loop()
        runner, sock = self._runner, self._sock
        assert runner is not None and sock is not None and runner.server is not None
        server = runner.server
        while True:
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(sock)
            except BaseException:
                self._slots.release()
                raise
            self._opened()
            try:
                conn.setblocking(False)
                await loop.connect_accepted_socket(
                    lambda: connections.Connection(server, header_timeout_s=self._header_timeout_s,
                                        on_lost=self._closed),
                    conn)
            except OSError as exc:  # the peer left before the handshake was done
                conn.close()
                self._closed()
                _log.info("webhook connection dropped at accept", error=type(exc).__name__)

    def _opened(self) -> None:
        self.connections += 1
        self.peak_connections = max(self.peak_connections, self.connections)

    def _closed(self) -> None:
        self.connections -= 1
        self._slots.release()

    # --- one request ----------------------------------------------------------------------

    @staticmethod
    def _token_ok(route: _Route, request: web.Request) -> bool:
        """The path's token, and the route's header when the request carries it, are the
        route's token (constant time: SHA-256 digests, so the length does not show)."""
        ok = hmac.compare_digest(_digest(request.match_info.get("token", "")),
                                 route.token_digest)
        if route.header is not None and route.header in request.headers:
            ok &= hmac.compare_digest(_digest(request.headers[route.header]), route.token_digest)
        return ok

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._check_and_record(request)
        except Exception as exc:
            _log.error("webhook request failed", error=type(exc).__name__)
            response = _answer(500, "internal error; the hint was not recorded")
        if response.status == 202:
            self.accepted += 1
        else:
            self.refused += 1
            # never the path: it holds the token (a wrong one may be a typo of the right one)
            _log.info("webhook request refused", status=response.status,
                      reason=_reason(response)[:_LOGGED_REASON])
        if self._on_answer is not None:
            self._on_answer(self._source(request), response.status)
        return response

    def _route(self, request: web.Request) -> _Route | None:
        resource = request.match_info.route.resource
        return self._routes.get(resource.canonical if resource is not None else "")

    def _source(self, request: web.Request) -> str:
        route = self._route(request)
        return route.source if route is not None else "moment"

    async def _check_and_record(self, request: web.Request) -> web.Response:
        route = self._route(request)
        if route is None or not self._token_ok(route, request):
            return _answer(404, "not found")
        announced = request.content_length
        if announced is not None and announced > MAX_BODY_BYTES:
            return _answer(413, f"body of {announced} bytes is over the limit of "
                                f"{MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        with anyio.move_on_after(self._body_timeout_s) as reading:
            while True:
                chunk = await request.content.read(_READ_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return _answer(413, f"body is over the limit of {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
        if reading.cancelled_caught:
            slow = _answer(408, f"the body did not arrive within {self._body_timeout_s:g} s")
            slow.force_close()
            return slow
        if request.content_type != "application/json":
            return _answer(415, f"content type must be application/json, got "
                                f"{request.content_type or 'none'}")
        try:
            event = route.decode(b"".join(chunks))
        except strictjson.BodyError as exc:
            return _answer(400, str(exc))
        try:
            appended = await self._log.append(
                event, idempotency_key=f"hint:{self._run_id}:{next(self._counter)}")
        except Exception as exc:
            kind, key = ev.entity_of(event)
            _log.error("webhook hint not recorded", kind=kind, key=key,
                       error=type(exc).__name__)
            return _answer(503, "the hint could not be recorded; send it again later")
        return web.Response(status=202, content_type="application/json",
                            body=msgspec.json.encode({"status": 202, "seq": appended.seq}))

