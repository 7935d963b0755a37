"""``GET /metrics`` over TCP for a Prometheus server (``[daemon] metrics_listen``).

What it guarantees: the answer is the status socket's ``GET /metrics``, byte for byte
(:func:`daemon.ops.statusserver.metrics_response` renders both), and, when the daemon gives
its state, the socket's ``GET /healthz`` (200 running or degraded, 503 starting or stopping:
what a Kubernetes readiness probe asks, which cannot reach a Unix socket); nothing else is
served on this port (any other path is 404, any other method 405), so a scraper that can reach
it learns the metrics and the state and nothing more: no status document, no entity, no write.
It binds exactly the host and port it is given (loopback by default in the examples) and never
reads a secret.

:meth:`MetricsListener.start` raises :class:`daemon.settings.ListenError` naming
``daemon.metrics_listen`` when the address cannot be bound (in use, not this host's), so the
daemon stops its start with that sentence instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from aiohttp import web

from daemon import settings as config
from daemon.ops import providing, statusserver

IDLE_TIMEOUT_S: Final = 75.0  # longer than a scrape interval: Prometheus keeps its connection
SHUTDOWN_TIMEOUT_S: Final = 2.0

_log = structlog.get_logger(__name__)


class MetricsListener:
    """Serves one :class:`~daemon.ops.providing.MetricsSource` on ``address``.

    Lifecycle: :meth:`start` once, then :meth:`stop` (also safe when :meth:`start` failed).
    """

    def __init__(self, source: providing.MetricsSource, address: config.Listen, *,
                 state: Callable[[], Awaitable[str]] | None = None) -> None:
        self._source = source
        self._state = state
        self.address = address
        self.port = address.port
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", self._metrics)
        if self._state is not None:
            app.router.add_get("/healthz", self._healthz)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        assert self._state is not None
        return statusserver.healthz_response(await self._state())

    async def _metrics(self, request: web.Request) -> web.Response:
        return statusserver.metrics_response(self._source)

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the metrics listener is already started")
        runner = web.AppRunner(self.application(), handle_signals=False, access_log=None,
                               keepalive_timeout=IDLE_TIMEOUT_S,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.address.host, self.address.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise config.ListenError("daemon.metrics_listen", self.address, exc) from None
        bound = [a for a in runner.addresses if isinstance(a, tuple)]
        self.port = int(bound[0][1]) if bound else self.address.port
        self._runner = runner
        _log.info("metrics listening", address=f"{self.address.host}:{self.port}")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
