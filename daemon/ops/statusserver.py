"""The status socket: HTTP/1.1 over a Unix socket, answering DESIGN.md's Status socket requests.

What it guarantees:

- every request in the contract table is answered from the :class:`~daemon.ops.providing.
  StatusProvider` the daemon supplies; answers are JSON (``/metrics`` excepted) and errors are
  ``{"error": "<sentence>"}`` with a 4xx that says what was wrong (unknown kind, bad key, entity
  unknown, not parked), never a traceback;
- a provider that raises gives that one request a 500 ``{"error": "internal error"}`` (logged
  with the exception), and the server keeps serving;
- request bodies are bounded (``max_body`` bytes, 413 above it), headers by aiohttp's line and
  field limits; a client that sends garbage gets aiohttp's 400 and its connection closed; a client
  that sends nothing (or half a request) for ``idle_timeout`` seconds is disconnected; none of this
  touches other connections;
- the socket file is created as :mod:`daemon.ops.binding` describes (0660 in a 0750 directory),
  or taken from systemd socket activation; on :meth:`StatusServer.stop` a socket file the server
  bound itself is removed, one systemd passed is left to systemd.

It never reads secrets and never logs request headers (no access log at all: paths carry only
kinds and Moment numbers, but headers are a client's business).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Final

import msgspec
import structlog
from aiohttp import web

from daemon.core import events as ev
from daemon.economic import errors as economic_errors
from daemon.ops import binding, providing

DEFAULT_IDLE_TIMEOUT: Final = 30.0
DEFAULT_MAX_BODY: Final = 4096
JSON_TYPE: Final = "application/json"

_log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: object, *, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type=JSON_TYPE)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def healthz_response(state: str) -> web.Response:
    """``GET /healthz``: the state, 200 when running or degraded, else 503."""
    return _json({"state": state}, status=200 if state in providing.HEALTHY_STATES else 503)


def metrics_response(source: providing.MetricsSource) -> web.Response:
    """``GET /metrics``: ``source`` rendered now, with its Prometheus content type (the same
    answer on the status socket and on ``[daemon] metrics_listen``)."""
    return web.Response(body=source.render(), headers={"Content-Type": source.content_type})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's plain-text HTTP errors into JSON errors, and crashes into a 500."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _error(404, f"no such request: {request.method} {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return _error(405, f"{request.method} is not allowed on {request.path}; use {allowed}")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "the request body is too large")
    except web.HTTPException:
        raise
    except Exception:
        _log.exception("status request failed", method=request.method, path=request.path)
        return _error(500, "internal error")


class StatusServer:
    """Serves one :class:`~daemon.ops.providing.StatusProvider` on a Unix socket.

    Lifecycle: :meth:`start` once, then :meth:`stop` once (also safe when :meth:`start` failed).
    ``idle_timeout`` is how long a connection may stay silent (before its first request, between
    requests, or in the middle of one) before it is dropped.
    """

    def __init__(
        self,
        provider: providing.StatusProvider,
        metrics: providing.MetricsSource,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_body: int = DEFAULT_MAX_BODY,
        shutdown_timeout: float = 5.0,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        self._provider = provider
        self._metrics = metrics
        self._idle_timeout = idle_timeout
        self._max_body = max_body
        self._shutdown_timeout = shutdown_timeout
        self._runner: web.AppRunner | None = None
        self._path: Path | None = None
        self._bound: tuple[int, int] | None = None
        self._socket: socket.socket | None = None
        self._address = ""

    @property
    def address(self) -> str:
        """The socket's path (``""`` before :meth:`start`)."""
        return self._address

    def application(self) -> web.Application:
        """The aiohttp application with every route of the contract (also for in-process tests)."""
        app = web.Application(client_max_size=self._max_body, middlewares=[_errors])
        app.router.add_get("/status", self._status)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_text)
        app.router.add_get("/entities/{kind}/{key}", self._entity)
        app.router.add_get("/parked", self._parked)
        app.router.add_post("/parked/{kind}/{key}/retry", self._retry)
        app.router.add_post("/resync/{kind}/{key}", self._resync)
        app.router.add_post("/reconcile", self._reconcile)
        app.router.add_post("/backfill/expenses", self._backfill)
        app.router.add_get("/plan", self._plan)
        return app

    async def start(
        self,
        path: Path,
        *,
        environ: MutableMapping[str, str] | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """Listen: on ``sock`` if given, else on systemd's socket if ``environ`` carries one
        (``LISTEN_FDS``), else on a socket bound at ``path``.

        Raises :class:`~daemon.ops.binding.SocketPathError` with a sentence for the operator.
        """
        if self._runner is not None:
            raise RuntimeError("the status server is already started")
        if sock is None:
            sock = binding.inherited_socket(os.environ if environ is None else environ)
        origin = "bound"
        if sock is None:
            sock = binding.bind_unix(path)
            self._path = path
            self._bound = binding.identity(path)
            self._address = str(path)
        else:
            origin = "given"
            name = sock.getsockname()
            self._address = name if isinstance(name, str) else os.fsdecode(name)
        self._socket = sock
        runner = web.AppRunner(
            self.application(),
            handle_signals=False,
            access_log=None,
            keepalive_timeout=self._idle_timeout,
            shutdown_timeout=self._shutdown_timeout,
        )
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            self._forget_socket()
            raise
        self._runner = runner
        _log.info("status socket listening", path=self.address, socket=origin)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to ``shutdown_timeout``), close."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._forget_socket()

    def _forget_socket(self) -> None:
        if self._path is not None:
            binding.remove_socket(self._path, self._bound)
        if self._socket is not None:
            self._socket.close()
        self._socket = None
        self._path = None
        self._bound = None
        self._address = ""

    # -- handlers ---------------------------------------------------------------------------

    def _kind_and_key(self, request: web.Request) -> tuple[providing.Kind, str] | web.Response:
        text = request.match_info["kind"]
        kind = providing.as_kind(text)
        if kind is None:
            return _error(404, f"unknown kind {text!r}: use one of {', '.join(ev.ALL_KINDS)}")
        key = request.match_info["key"]
        if not providing.valid_key(key):
            return _error(
                400,
                f"{key!r} is not a Moment number: use 1-64 letters, digits, '.', '_', '-' "
                "or ':'",
            )
        return kind, key

    async def _drain(self, request: web.Request) -> None:
        # Reading the body applies client_max_size (413); POSTs take no parameters from it.
        await request.read()

    async def _status(self, request: web.Request) -> web.Response:
        return _json(await self._provider.status())

    async def _healthz(self, request: web.Request) -> web.Response:
        return healthz_response(await self._provider.state())

    async def _metrics_text(self, request: web.Request) -> web.Response:
        return metrics_response(self._metrics)

    async def _entity(self, request: web.Request) -> web.Response:
        parsed = self._kind_and_key(request)
        if isinstance(parsed, web.Response):
            return parsed
        kind, key = parsed
        document = await self._provider.entity(kind, key)
        if document is None:
            return _error(404, f"no {kind} {key} in the event log")
        return _json(document)

    async def _parked(self, request: web.Request) -> web.Response:
        return _json(list(await self._provider.parked()))

    async def _retry(self, request: web.Request) -> web.Response:
        await self._drain(request)
        parsed = self._kind_and_key(request)
        if isinstance(parsed, web.Response):
            return parsed
        kind, key = parsed
        if not await self._provider.retry(kind, key):
            return _error(404, f"{kind} {key} is not parked")
        return _json({"kind": kind, "key": key, "retrying": True}, status=202)

    async def _resync(self, request: web.Request) -> web.Response:
        await self._drain(request)
        parsed = self._kind_and_key(request)
        if isinstance(parsed, web.Response):
            return parsed
        kind, key = parsed
        if not await self._provider.resync(kind, key):
            if kind == "expense":
                return _error(404, f"e-conomic has no booked entry {key} (YEAR:ENTRY) that "
                              "the daemon reads: a cost on a project, of a supplier invoice "
                              "or finance voucher")
            return _error(
                404, f"Moment has no {kind} numbered {key}, as far as the daemon can find"
            )
        return _json({"kind": kind, "key": key, "queued": True}, status=202)

    async def _reconcile(self, request: web.Request) -> web.Response:
        await self._drain(request)
        return _json({"queued": await self._provider.reconcile()}, status=202)

    async def _backfill(self, request: web.Request) -> web.Response:
        """``POST /backfill/expenses?since=YYYY-MM-DD``: read booked entries from that day on
        and queue the expenses Moment lacks; 202 ``{"queued": N}``."""
        await self._drain(request)
        unknown = sorted(set(request.query) - {"since"})
        text = request.query.get("since", "")
        if unknown:
            return _error(400, f"unknown query parameter {unknown[0]!r}: /backfill/expenses "
                          "takes only since")
        try:
            since = dt.date.fromisoformat(text)
        except ValueError:
            return _error(400, f"since={text!r} is not a date YYYY-MM-DD")
        try:
            queued = await self._provider.backfill_expenses(since)
        except ValueError as exc:
            return _error(409, str(exc))
        except economic_errors.EconomicError as exc:
            return _error(502, f"reading e-conomic's booked entries failed: {exc}")
        return _json({"queued": queued}, status=202)

    async def _plan(self, request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - {"kind"})
        if unknown:
            return _error(400, f"unknown query parameter {unknown[0]!r}: /plan takes only kind")
        text = request.query.get("kind")
        kind: providing.Kind | None = None
        if text is not None:
            kind = providing.as_kind(text)
            if kind is None:
                return _error(
                    400, f"unknown kind {text!r}: use one of {', '.join(ev.ALL_KINDS)}"
                )
        return _json(await self._provider.plan(kind))
