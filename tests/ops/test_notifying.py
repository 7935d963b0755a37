"""sd_notify messages on a real datagram socket, and the progress-gated watchdog."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from daemon.ops import notifying
from tests.clocks import FakeClock


class Listener:
    """A bound SOCK_DGRAM socket standing in for systemd's notify socket."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def messages(self) -> list[str]:
        received = []
        while True:
            try:
                received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return received


@pytest.fixture
def listener() -> Iterator[tuple[Listener, str]]:
    directory = tempfile.mkdtemp(dir="/tmp", prefix="ms-notify-")
    path = str(Path(directory) / "notify.sock")
    bound = Listener(path)
    try:
        yield bound, path
    finally:
        bound.sock.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.anyio
async def test_every_message_arrives_as_one_datagram(listener: tuple[Listener, str]) -> None:
    bound, path = listener
    notifier = notifying.Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.status("catching up: 10 of\n200 events")
    assert notifier.extend_timeout(30_000_000)
    assert await notifier.ready("running")
    assert notifier.watchdog()
    assert await notifier.stopping()
    assert bound.messages() == [
        "STATUS=catching up: 10 of 200 events",
        "EXTEND_TIMEOUT_USEC=30000000",
        "READY=1\nSTATUS=running",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


@pytest.mark.anyio
async def test_abstract_namespace_address() -> None:
    name = f"ms-notify-test-{os.getpid()}"
    bound = Listener(b"\0" + name.encode())
    try:
        assert await notifying.Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert bound.messages() == ["READY=1"]
    finally:
        bound.sock.close()


@pytest.mark.anyio
async def test_no_notify_socket_means_no_ops() -> None:
    notifier = notifying.Notifier({})
    assert not notifier.enabled
    assert not await notifier.ready()
    assert not notifier.watchdog()
    assert not await notifier.stopping()
    assert not notifying.Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled


@pytest.mark.anyio
async def test_a_vanished_notify_socket_is_logged_not_raised(tmp_path: Path) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    notifier = notifying.Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}, sleep=sleep)
    with capture_logs() as logs:
        assert not await notifier.ready()
    assert logs[0]["event"] == "sd_notify failed"
    assert logs[0]["fields"] == ["READY"]
    assert slept == []  # only a full queue is worth another try


def fill(path: str) -> int:
    """Send to ``path`` until its queue is full (``net.unix.max_dgram_qlen``); how many went."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for sent in range(100_000):
            try:
                sock.sendto(b"STATUS=filler", socket.MSG_DONTWAIT, path)
            except BlockingIOError:
                return sent
    raise AssertionError("the queue never filled")


@pytest.mark.anyio
async def test_a_state_message_waits_for_room_in_a_full_queue(
        listener: tuple[Listener, str]) -> None:
    """A busy systemd that has not read its socket yet: READY=1 and STOPPING=1 must still
    arrive (the daemon's own harness once lost STOPPING=1 this way), without blocking the loop;
    a progress message is tried once."""
    bound, path = listener
    slept: list[float] = []
    drained: list[str] = []

    async def systemd_reads_on_the_third_wait(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            drained.extend(bound.messages())

    notifier = notifying.Notifier({"NOTIFY_SOCKET": path}, sleep=systemd_reads_on_the_third_wait)
    filled = fill(path)
    assert filled > 0
    with capture_logs() as logs:
        assert not notifier.status("progress")  # tried once: the next one follows
        assert await notifier.ready("running")
    assert slept == list(notifying.STATE_RETRY_DELAYS[:3])
    assert drained == ["STATUS=filler"] * filled
    assert bound.messages() == ["READY=1\nSTATUS=running"]
    assert [log["fields"] for log in logs] == [["STATUS"]]
    fill(path)
    slept.clear()
    drained.clear()
    assert await notifier.stopping()
    assert bound.messages()[-1] == "STOPPING=1"


@pytest.mark.anyio
async def test_a_state_message_gives_up_after_the_last_wait(
        listener: tuple[Listener, str]) -> None:
    bound, path = listener
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    notifier = notifying.Notifier({"NOTIFY_SOCKET": path}, sleep=sleep)
    fill(path)
    with capture_logs() as logs:
        assert not await notifier.stopping()
    assert slept == list(notifying.STATE_RETRY_DELAYS)
    assert sum(slept) == pytest.approx(1.95)
    assert logs == [{"event": "sd_notify failed", "log_level": "warning",
                     "fields": ["STOPPING"], "error": "Resource temporarily unavailable",
                     "tries": len(notifying.STATE_RETRY_DELAYS) + 1}]
    assert "STOPPING=1" not in bound.messages()


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    environ: dict[str, str], interval: float | None
) -> None:
    assert notifying.watchdog_interval(environ) == interval


def test_watchdog_pings_only_while_every_component_is_fresh(
    listener: tuple[Listener, str],
) -> None:
    bound, path = listener
    clock = FakeClock()
    watchdog = notifying.Watchdog(
        notifying.Notifier({"NOTIFY_SOCKET": path}), interval=1.0, clock=clock
    )
    customers = watchdog.pulse("reconcile.customer")
    invoices = watchdog.pulse("reconcile.invoice")
    assert watchdog.beat_every == 0.5
    assert watchdog.tick()
    clock.advance(1.0)  # exactly at the freshness edge: still fresh
    assert watchdog.tick()
    clock.advance(0.5)
    customers.beat()
    with capture_logs() as logs:
        assert not watchdog.tick()  # invoices is 1.5 s old: wedged
        assert not watchdog.tick()
    assert logs == [{"event": "watchdog withheld: components made no progress",
                     "log_level": "error", "stale": ["reconcile.invoice"], "freshness_s": 1.0}]
    assert watchdog.stale() == ["reconcile.invoice"]
    invoices.beat()
    assert watchdog.tick()
    watchdog.release(invoices)
    clock.advance(0.9)
    customers.beat()
    clock.advance(0.9)
    assert watchdog.tick()  # the released component no longer counts
    assert bound.messages() == ["WATCHDOG=1"] * 4
    with pytest.raises(ValueError, match="already registered"):
        watchdog.pulse("reconcile.customer")


def test_an_excused_pulse_counts_as_beating_until_its_excuse_ends(
    listener: tuple[Listener, str],
) -> None:
    """A reconciler waiting out e-conomic's Retry-After is not wedged: its pulse is fresh while
    the wait lasts, however long, and stale ``freshness`` after it ends without a beat."""
    bound, path = listener
    clock = FakeClock()
    watchdog = notifying.Watchdog(
        notifying.Notifier({"NOTIFY_SOCKET": path}), interval=1.0, clock=clock
    )
    waiting = [True]
    watchdog.pulse("reconcile", excused=lambda: waiting[0])
    pings = []
    for _ in range(60):  # ten minutes of Retry-After, far beyond the freshness of 1 s
        clock.advance(10.0)
        assert watchdog.tick()
        pings += bound.messages()  # the queue holds only a few datagrams
    waiting[0] = False
    clock.advance(1.0)
    assert watchdog.tick()  # last counted as a beat at the tick before: 1 s, at the edge
    clock.advance(0.5)
    with capture_logs():
        assert not watchdog.tick()
    assert watchdog.stale() == ["reconcile"]
    assert pings + bound.messages() == ["WATCHDOG=1"] * 61


@pytest.mark.anyio
async def test_watchdog_loop_stops_pinging_when_beats_stop(
    listener: tuple[Listener, str],
) -> None:
    bound, path = listener
    clock = FakeClock()
    watchdog = notifying.Watchdog(
        notifying.Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}),
        interval=notifying.watchdog_interval({"WATCHDOG_USEC": "2000000"}), clock=clock,
    )
    reconciler = watchdog.pulse("reconciler")
    with capture_logs():
        async with anyio.create_task_group() as group:
            group.start_soon(watchdog.run)
            for second in range(1, 8):
                await clock.settled()  # the tick at second - 1 went out; the loop sleeps
                clock.advance(1.0)
                if second <= 3:
                    reconciler.beat()  # progress during the first three intervals, then wedged
            await clock.settled()
            group.cancel_scope.cancel()
    assert clock.sleeps == [1.0] * 8
    # ticks at t=0..3 see a fresh beat; t=4 sees a beat 1 s old (fresh, at the edge); from
    # t=5 on the last beat is older than the interval and the pings stop
    assert bound.messages() == ["WATCHDOG=1"] * 5


@pytest.mark.anyio
async def test_watchdog_without_systemd_returns_at_once() -> None:
    watchdog = notifying.Watchdog(notifying.Notifier({}), interval=None, clock=FakeClock())
    watchdog.pulse("x").beat()
    with anyio.fail_after(1):
        await watchdog.run()
    assert watchdog.beat_every == notifying.DEFAULT_IDLE_BEAT


@pytest.mark.anyio
async def test_watchdog_loop_pings_while_a_worker_beats_and_stops_when_it_wedges(
        listener: tuple[Listener, str]) -> None:
    bound, path = listener
    clock = FakeClock()
    watchdog = notifying.Watchdog(notifying.Notifier({"NOTIFY_SOCKET": path}), interval=2.0,
                                  clock=clock)
    pulse = watchdog.pulse("worker")

    async def working() -> None:
        for _ in range(10):  # beats at t = 0, 1, ..., 9
            pulse.beat()
            await clock.sleep(1.0)

    with capture_logs():
        async with anyio.create_task_group() as group:
            group.start_soon(watchdog.run)
            group.start_soon(working)
            await clock.run(30.0)  # wedged from t = 9 on: no beats for ten intervals
            group.cancel_scope.cancel()
    # ticks every 2 s: t = 0 .. 10 see a beat at most 2 s old (t = 10: the one at 9); from
    # t = 12 on the last beat is 3 s old or more and the pings stop
    assert bound.messages() == ["WATCHDOG=1"] * 6
