"""The listener's connections: aiohttp's connection handler with the receiver's bounds.

:class:`Connection` closes a connection whose request line and headers are not in within its
header timeout (armed when the connection opens and again after each answer; the middleware
:func:`headers_in` disarms it once a request's headers are parsed), frees its connection slot
when the connection is lost, and answers a request aiohttp cannot parse with a fixed text that
never quotes the request (aiohttp's own answer echoes the request line, and so a token in the
path). :data:`server_log` is aiohttp's error log for this listener, through a filter that keeps
only the message and the exception's type. Access logging is off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import structlog
from aiohttp import web, web_protocol

_log = structlog.get_logger(__name__)


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


server_log = logging.getLogger("daemon.ingest.receiving.http")
#: After an answer that left the body unread (a 408, 413 or 404), aiohttp drains what the client
#: still sends for this long before it closes, so the client can read the answer. aiohttp's
#: default of 10 s would let a refused slow client hold its connection slot that much longer.
LINGER_S = 1.0
server_log.addFilter(_Scrub())


class Connection(web_protocol.RequestHandler):
    """aiohttp's connection handler with the receiver's bounds.

    It closes a connection whose request line and headers are not in after
    ``header_timeout_s`` (armed when the connection opens and again after each answer; the
    receiver's middleware disarms it once a request's headers are parsed), frees its
    connection slot when the connection is lost, and answers a request aiohttp cannot parse
    with a fixed text that never quotes the request.
    """

    def __init__(self, manager: web.Server, *, header_timeout_s: float,
                 on_lost: Callable[[], None]) -> None:
        # aiohttp's access log is off: it would record the path, and so the token
        # (aiohttp takes None for "no access log" at run time; its annotation says Logger)
        super().__init__(manager, loop=asyncio.get_running_loop(), logger=server_log,
                         access_log=None, lingering_time=LINGER_S)  # type: ignore[arg-type]
        self._header_timeout_s = header_timeout_s
        self._on_lost: Callable[[], None] | None = on_lost
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.disarm()
        try:
            super().connection_lost(exc)
        finally:
            on_lost, self._on_lost = self._on_lost, None
            if on_lost is not None:
                on_lost()

    def arm(self) -> None:
        """Start counting the time the client has for its next request's headers."""
        self.disarm()
        self._header_timer = asyncio.get_running_loop().call_later(
            self._header_timeout_s, self._headers_late)

    def disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            _log.info("webhook connection closed: no complete request headers in time",
                      timeout_s=self._header_timeout_s)
            transport.close()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # aiohttp's message for a parse error quotes the request line, and so the token
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return super().handle_error(request, status, exc,
                                    f"{status} {phrase}: the request is not valid HTTP/1.1")


@web.middleware
async def headers_in(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                      ) -> web.StreamResponse:
    """A request reached the app, so its headers are in: stop the header clock; the answer
    starts it again for the next request on a kept-alive connection."""
    protocol = request.protocol
    if isinstance(protocol, Connection):
        protocol.disarm()
    try:
        return await handler(request)
    finally:
        if isinstance(protocol, Connection):
            protocol.arm()
