"""Wiring: ``moment-sync run`` opens the log, starts every loop in one root task group, and
shuts down in a defined order.

Start order: logging; the event log (lock, schema, projections caught up, with
``EXTEND_TIMEOUT_USEC`` while that takes long); secrets; clients; the status socket; the loops;
then ``READY=1`` — so READY means the socket already answers.

Shutdown order (STYLE.md 13) on SIGTERM or SIGINT: ``STOPPING=1`` and state ``stopping``; the
webhook receiver stops taking hints; loops get ``[shutdown] grace`` seconds to finish the call in
flight and record its outcome; then they are cancelled; the status socket closes; alerts are
flushed; the log closes last. SIGHUP reloads the configuration: a file that does not validate is
refused, the running configuration stays, and ``/status`` shows a failed ``config`` check.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.abc
import structlog

from daemon import settings as config
from daemon.ops import notifying
from daemon.store import eventlog

_log = structlog.get_logger("daemon")

SHUTDOWN_GRACE_S: Final = 20.0
EXTEND_EVERY_EVENTS: Final = 50_000

Loop = Callable[[], Coroutine[Any, Any, None]]


class Runtime:
    """Shared, mutable facts about the running daemon that the status socket reports."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.state = "starting"
        self.started = time.monotonic()
        self.stop = anyio.Event()
        self.config_error = ""

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started


def _catch_up_progress(notifier: notifying.Notifier) -> Callable[[int, int], None]:
    last = [0]

    def progress(done: int, total: int) -> None:
        if done - last[0] >= EXTEND_EVERY_EVENTS:
            last[0] = done
            notifier.extend_timeout(30_000_000)
            notifier.status(f"catching up projections: {done} of {total} events")

    return progress


async def open_log(settings: config.Settings, notifier: notifying.Notifier
                   ) -> eventlog.EventLog:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    notifier.status("opening the event log")
    return await eventlog.EventLog.open(settings.db_path,
                                        progress=_catch_up_progress(notifier))


async def _signals(runtime: Runtime, on_reload: Callable[[config.Settings], None], *,
                   task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        task_status.started()  # the handlers are in place: READY may go out
        async for signum in signals:
            if signum == signal.SIGHUP:
                try:
                    fresh = config.load(Path(runtime.settings.source))
                except config.ConfigError as exc:
                    runtime.config_error = str(exc)
                    _log.error("configuration reload refused; the running one stays",
                               error=str(exc))
                    continue
                runtime.config_error = ""
                on_reload(fresh)
                _log.info("configuration reloaded", source=fresh.source)
            else:
                _log.info("stopping", signal=signal.Signals(signum).name)
                runtime.stop.set()
                return


async def supervise(runtime: Runtime, notifier: notifying.Notifier, loops: list[Loop],
                    *, grace: float = SHUTDOWN_GRACE_S,
                    on_reload: Callable[[config.Settings], None] = lambda _s: None,
                    on_stopping: Callable[[], Awaitable[None]] | None = None) -> None:
    """Run ``loops`` in one task group until a stop signal, then stop them in order.

    Each loop watches ``runtime.stop`` to finish its work in flight; after ``grace`` seconds
    whatever still runs is cancelled.
    """
    async with anyio.create_task_group() as tg:
        # started, not start_soon: a SIGTERM, SIGINT or SIGHUP right after READY=1 must meet
        # our handlers, not Python's defaults (which kill the process or raise
        # KeyboardInterrupt)
        await tg.start(_signals, runtime, on_reload)
        for loop in loops:
            tg.start_soon(loop)
        runtime.state = "running"
        await notifier.ready("running")
        _log.info("running")
        await runtime.stop.wait()
        runtime.state = "stopping"
        await notifier.stopping("stopping")
        if on_stopping is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(grace):
                await on_stopping()
        tg.cancel_scope.cancel()
