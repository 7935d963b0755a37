"""Telling systemd how the daemon is doing: sd_notify(3) without a library, and a watchdog that
pings only while the daemon makes progress.

:class:`Notifier` guarantees: one datagram per message to ``$NOTIFY_SOCKET`` (``@`` means the
abstract namespace); every method is a no-op returning ``False`` when ``NOTIFY_SOCKET`` is unset;
a failure to send is logged and returned as ``False``, never raised (systemd being away must not
stop the daemon); a ``STATUS=`` text never carries a newline (it would start a new field). A
send never blocks the event loop. A state change (``READY=1``, ``STOPPING=1``) that meets a full
queue (``EAGAIN``: a busy systemd has not read its socket yet) is tried again for up to
:data:`STATE_RETRY_DELAYS` seconds in all, awaiting between tries, since losing it leaves systemd
waiting for READY until its start timeout; libsystemd's sd_notify blocks instead. Progress
messages (``STATUS``, ``EXTEND_TIMEOUT_USEC``, ``WATCHDOG``) are tried once: the next one follows.

:class:`Watchdog` guarantees: ``WATCHDOG=1`` is sent only when every registered component has
beaten within ``freshness`` seconds of now, by the injected clock's monotonic time. A wedged
component therefore stops the pings and systemd restarts the service after ``WatchdogSec=``; an
event loop that is merely alive does not keep a wedged daemon running. A component waiting out
e-conomic's or Moment's Retry-After, however long, is not wedged (DESIGN.md: waiting on a rate
limit or a slow e-conomic is progress): its pulse is excused while its own calls wait or are in
flight (:func:`waiting_on` asks each client's limiter, :class:`Waits`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

import anyio
import structlog

from daemon.core import clocks

_log = structlog.get_logger(__name__)

#: How often an idle component beats when systemd set no watchdog.
DEFAULT_IDLE_BEAT: Final = 5.0

#: The waits between tries of a state message that met a full queue: 1.95 s in all.
STATE_RETRY_DELAYS: Final = (0.01, 0.02, 0.05, 0.1, 0.27, 0.5, 1.0)

Sleep = Callable[[float], Awaitable[None]]


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET`` of ``environ`` (``os.environ`` by default);
    ``sleep`` is how a state message waits between tries."""

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 sleep: Sleep = anyio.sleep) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def _try(self, message: bytes) -> OSError | None:
        assert self._address is not None
        try:
            # a socket per message, as libsystemd does: nothing to keep open or to leak
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            return exc
        return None

    def _failed(self, fields: tuple[str, ...], exc: OSError, *, tries: int = 1) -> bool:
        _log.warning("sd_notify failed", fields=[f.split("=", 1)[0] for f in fields],
                     error=exc.strerror or type(exc).__name__, tries=tries)
        return False

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields as one datagram, trying once; ``True`` if it left."""
        if self._address is None:
            return False
        error = self._try("\n".join(fields).encode())
        return True if error is None else self._failed(fields, error)

    async def deliver(self, *fields: str) -> bool:
        """Send like :meth:`send`, but while the queue is full (``EAGAIN``) try again after
        each of :data:`STATE_RETRY_DELAYS`, awaiting in between; ``True`` if it left."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode()
        delays = iter(STATE_RETRY_DELAYS)
        tries = 1
        while (error := self._try(message)) is not None:
            delay = next(delays, None)
            if not isinstance(error, BlockingIOError) or delay is None:
                return self._failed(fields, error, tries=tries)
            await self._sleep(delay)
            tries += 1
        return True

    async def ready(self, status: str | None = None) -> bool:
        """``READY=1``: the log is open, projections caught up and the status socket bound."""
        return await self.deliver("READY=1", *(() if status is None else (_status(status),)))

    def status(self, text: str) -> bool:
        """``STATUS=<text>``: shown by ``systemctl status``."""
        return self.send(_status(text))

    def extend_timeout(self, usec: int) -> bool:
        """``EXTEND_TIMEOUT_USEC=<usec>``: a long start (catch-up) is still healthy."""
        if usec <= 0:
            raise ValueError("usec must be positive")
        return self.send(f"EXTEND_TIMEOUT_USEC={usec}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: call through :class:`Watchdog`, which gates it on progress."""
        return self.send("WATCHDOG=1")

    async def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return await self.deliver("STOPPING=1", *(() if status is None else (_status(status),)))


def _status(text: str) -> str:
    return "STATUS=" + " ".join(text.split())


def watchdog_interval(
    environ: Mapping[str, str] | None = None, *, pid: int | None = None
) -> float | None:
    """Seconds between pings: half of ``$WATCHDOG_USEC``, or ``None`` when systemd wants none
    (unset, not a positive number, or ``$WATCHDOG_PID`` names another process)."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != (os.getpid() if pid is None else pid)):
        return None
    return int(usec) / 2 / 1_000_000


class Waits(Protocol):
    """A client's limiter, asked whether a component's own calls wait there or are in flight
    (both clients' limiters count them by :data:`daemon.core.callers.CALLER`)."""

    def busy(self, caller: str) -> bool: ...


def waiting_on(caller: str, *limiters: Waits) -> Callable[[], bool]:
    """An ``excused`` for :meth:`Watchdog.pulse`: true while calls of ``caller`` wait on, or
    are in flight at, any of ``limiters``; every such wait ends by itself (a pause at its end,
    a call at its timeout), so it is progress, not a wedge."""
    return lambda: any(limiter.busy(caller) for limiter in limiters)


class Pulse:
    """One component's heartbeat: :meth:`beat` after each unit of progress and while idle-waiting
    (an idle wait must wake at least every :attr:`Watchdog.beat_every` seconds to beat).

    ``excused``, when given, says the component is waiting on something outside that is bounded
    and healthy (a Retry-After pause, a call in flight under its timeout; see
    :func:`waiting_on`): while it holds, the pulse counts as beating, and it goes stale only
    ``freshness`` after it ends.
    """

    __slots__ = ("_clock", "excused", "last", "name")

    def __init__(self, name: str, clock: clocks.Clock,
                 excused: Callable[[], bool] | None = None) -> None:
        self.name = name
        self._clock = clock
        self.excused = excused
        self.last = clock.monotonic()

    def beat(self) -> None:
        self.last = self._clock.monotonic()


class Watchdog:
    """Pings systemd every ``interval`` seconds while every registered :class:`Pulse` is fresh.

    ``interval`` ``None`` means systemd set no watchdog: :meth:`run` then returns at once and
    beats cost a clock read. ``freshness`` (default: ``interval``) is how old the oldest beat may
    be for a ping to go out.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        interval: float | None,
        clock: clocks.Clock,
        freshness: float | None = None,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("interval must be positive")
        self._notifier = notifier
        self.interval = interval
        self._clock = clock
        self.freshness = freshness if freshness is not None else (interval or 0.0)
        self._pulses: dict[str, Pulse] = {}
        self._stale: tuple[str, ...] = ()

    @classmethod
    def from_environment(
        cls, notifier: Notifier, environ: Mapping[str, str] | None = None, *,
        clock: clocks.Clock,
    ) -> Watchdog:
        return cls(notifier, interval=watchdog_interval(environ), clock=clock)

    @property
    def beat_every(self) -> float:
        """How often an idle component should wake to beat (half the freshness window)."""
        return self.freshness / 2 if self.freshness > 0 else DEFAULT_IDLE_BEAT

    def pulse(self, name: str, *, excused: Callable[[], bool] | None = None) -> Pulse:
        """Register a component; it counts as fresh from now. One name, one pulse. See
        :class:`Pulse` for ``excused``."""
        if name in self._pulses:
            raise ValueError(f"a pulse named {name!r} is already registered")
        pulse = Pulse(name, self._clock, excused)
        self._pulses[name] = pulse
        return pulse

    def release(self, pulse: Pulse) -> None:
        """A component that ended on purpose stops counting."""
        if self._pulses.get(pulse.name) is pulse:
            del self._pulses[pulse.name]

    def stale(self) -> list[str]:
        """Names of components whose last beat is older than ``freshness``."""
        for p in self._pulses.values():
            if p.excused is not None and p.excused():
                p.beat()
        now = self._clock.monotonic()
        return sorted(p.name for p in self._pulses.values() if now - p.last > self.freshness)

    def tick(self) -> bool:
        """Ping if every component is fresh; ``True`` if a ping was sent. Logs once when pings
        stop (naming the stale components) and once when they resume."""
        stale = tuple(self.stale())
        if stale != self._stale:
            if stale:
                _log.error("watchdog withheld: components made no progress", stale=list(stale),
                           freshness_s=self.freshness)
            else:
                _log.info("watchdog resumed")
            self._stale = stale
        if stale:
            return False
        return self._notifier.watchdog()

    async def run(self) -> None:
        """Tick every ``interval`` seconds of the clock until cancelled (returns at once without
        a watchdog)."""
        if self.interval is None:
            return
        while True:
            self.tick()
            await self._clock.sleep(self.interval)

