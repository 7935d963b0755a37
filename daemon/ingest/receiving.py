"""The Moment webhook receiver: ``POST /webhooks/moment/{token}``, answered 202 once durable.

What it does: checks a webhook request in the order DESIGN.md fixes (token, size, content type,
body), appends one :class:`~daemon.core.events.HintReceived` per good hint and answers 202 only
after that append has committed (the log is durable on return). The hint processor picks the
hint up from the log (:mod:`daemon.ingest.hinting`), so the receiver does no fetching.

Answers: 404 for a wrong token (compared in constant time, on SHA-256 digests so the length
does not show either), 413 for a body over :data:`MAX_BODY_BYTES` (announced or streamed), 415
for a content type other than ``application/json``, 400 with the decoder's message for a body
that is not a hint, 503 when the log cannot take the hint. Every answer but the 202 is JSON
``{"status": N, "message": "..."}``.

Guarantees: a refused request appends nothing; no exception from one request reaches aiohttp
(an unexpected one is a 500 logged by type only), so nothing a client sends stops the
receiver; no log line carries the token: aiohttp's access log is off and this module never logs
the path (the token is part of it), and aiohttp's own error log for malformed requests goes
through a filter that keeps only the message and the exception's type. Binds exactly the host
and port it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import socket
import uuid
from typing import Final

import anyio
import anyio.abc
import msgspec
import structlog
from aiohttp import web

from daemon.core import events as ev
from daemon.core import secrets
from daemon.moment import shapes
from daemon.store import eventlog

_log = structlog.get_logger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024
ROUTE: Final = "/webhooks/moment/{token}"
PATH_PREFIX: Final = "/webhooks/moment/"
_READ_CHUNK: Final = 16 * 1024
_SHUTDOWN_S: Final = 5.0
_LOGGED_REASON: Final = 200


class _Scrub(logging.Filter):
    """aiohttp logs a malformed request with the parser's exception, whose text may quote the
    request line, and so the token: keep the message and the exception's type, drop the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        text = record.getMessage()
        record.msg = f"{text}: {type(exc).__name__}" if exc is not None else text
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


_server_log = logging.getLogger(f"{__name__}.http")
_server_log.addFilter(_Scrub())


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


class Receiver:
    """The receiver on one ``host:port`` (port 0: any free port, see :attr:`port` after
    :meth:`start`). Run it with ``await tg.start(receiver.serve)``, which yields the port."""

    def __init__(self, *, log: eventlog.EventLog, token: secrets.Secret,
                 host: str = "127.0.0.1", port: int = 8080) -> None:
        if not token:
            raise ValueError("the webhook token is empty: set [moment] webhook_token_file or "
                             "the moment-webhook-token credential")
        self._log = log
        self._token_digest = hashlib.sha256(token.reveal().encode()).digest()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        # hint keys: unique per receiver (a random run id) and cheap per hint (a counter)
        self._run_id = uuid.uuid4().hex
        self._counter = itertools.count(1)
        self.accepted = 0
        self.refused = 0

    def __repr__(self) -> str:
        return f"<Receiver {self.host}:{self.port}>"

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post(ROUTE, self._handle)
        return app

    async def start(self) -> None:
        """Bind and serve; :attr:`port` is the bound port afterwards."""
        if self._runner is not None:
            raise RuntimeError("the receiver is already running")
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                               shutdown_timeout=_SHUTDOWN_S, logger=_server_log)
        await runner.setup()
        try:
            family, _, _, _, address = (await anyio.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM))[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
                await web.SockSite(runner, sock, backlog=1024).start()
            except BaseException:
                sock.close()
                raise
        except BaseException:
            await runner.cleanup()
            raise
        self.port = int(sock.getsockname()[1])
        self._runner = runner
        _log.info("webhook receiver listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting; requests in flight get up to a few seconds. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
                    ) -> None:
        """Start, report the bound port through ``task_status``, serve until cancelled."""
        await self.start()
        try:
            task_status.started(self.port)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await self.stop()

    # --- one request ----------------------------------------------------------------------

    def _token_ok(self, given: str) -> bool:
        digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        return hmac.compare_digest(digest, self._token_digest)

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
        return response

    async def _check_and_record(self, request: web.Request) -> web.Response:
        if not self._token_ok(request.match_info.get("token", "")):
            return _answer(404, "not found")
        announced = request.content_length
        if announced is not None and announced > MAX_BODY_BYTES:
            return _answer(413, f"body of {announced} bytes is over the limit of "
                                f"{MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(_READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return _answer(413, f"body is over the limit of {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
        if request.content_type != "application/json":
            return _answer(415, f"content type must be application/json, got "
                                f"{request.content_type or 'none'}")
        try:
            hint = shapes.decode_hint(b"".join(chunks))
        except shapes.HintError as exc:
            return _answer(400, str(exc))
        event = hint_event(hint)
        try:
            appended = await self._log.append(
                event, idempotency_key=f"hint:{self._run_id}:{next(self._counter)}")
        except Exception as exc:
            _log.error("webhook hint not recorded", kind=event.kind, moment_id=event.moment_id,
                       error=type(exc).__name__)
            return _answer(503, "the hint could not be recorded; send it again later")
        return web.Response(status=202, content_type="application/json",
                            body=msgspec.json.encode({"status": 202, "seq": appended.seq}))

