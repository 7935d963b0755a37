"""The real daemon stopped by SIGTERM: what it sends and leaves, and the commands that need it
stopped (``status`` without a daemon, ``replay --verify``).

One daemon serves the module, under a fake ``NOTIFY_SOCKET`` with ``WATCHDOG_USEC`` 2 s and
``WATCHDOG_PID`` its own pid, as systemd sets them: it starts, brings e-conomic in sync and is
stopped by the module's fixture, so the tests pass in any order (the running daemon's tests are
test_running.py's).
"""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


@dataclass(frozen=True)
class Stopped:
    """The module's daemon after SIGTERM, and how it went."""

    daemon: harness.Daemon
    exit_code: int
    socket_left: bool

    @property
    def setup(self) -> harness.Setup:
        return self.daemon.setup


@pytest.fixture(scope="module")
def stopped(sandboxes: harness.Sandboxes) -> Iterator[Stopped]:
    setup = harness.write_config(sandboxes, prefix="ms-stop-")
    daemon = harness.Daemon(setup, watchdog_pid="self").start()
    try:
        daemon.wait_for("READY=1")
        harness.in_sync(daemon)
        daemon.signal(signal.SIGTERM)
        daemon.wait_for("STOPPING=1", timeout=20)
        exit_code = daemon.wait(30)
        yield Stopped(daemon, exit_code, setup.socket.exists())
    finally:
        daemon.close()


def test_sigterm_sends_stopping_exits_0_and_removes_the_socket(stopped: Stopped) -> None:
    assert stopped.exit_code == 0, stopped.daemon.tail()
    assert not stopped.socket_left
    assert b"Traceback" not in stopped.daemon.output()
    # systemd reads its socket as messages come (so does the harness): none may be lost
    assert b"sd_notify failed" not in stopped.daemon.output(), stopped.daemon.tail()


def test_status_without_a_daemon_exits_1_saying_so(stopped: Stopped) -> None:
    assert stopped.daemon.proc is not None and stopped.daemon.proc.poll() is not None
    done = harness.cli("status", "-c", str(stopped.setup.config))
    assert done.returncode == 1
    assert "not running" in done.stderr
    assert done.stdout == ""


def test_replay_verify_passes_on_the_log_and_fails_on_a_tampered_projection(
        stopped: Stopped) -> None:
    assert stopped.daemon.proc is not None and stopped.daemon.proc.poll() is not None
    config = str(stopped.setup.config)
    healthy = harness.cli("replay", "--verify", "-c", config)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "OK" in healthy.stdout
    with sqlite3.connect(stopped.setup.db) as db:
        (row,) = db.execute("SELECT row FROM desired_customers WHERE key = '10001'").fetchone()
        doc = json.loads(row)
        doc["name"] = "Tampered by hand"
        db.execute("UPDATE desired_customers SET row = ? WHERE key = '10001'",
                   (json.dumps(doc).encode(),))
    db.close()
    tampered = harness.cli("replay", "--verify", "-c", config)
    assert tampered.returncode == 1, tampered.stdout
    assert "MISMATCH" in tampered.stdout and "10001" in tampered.stdout
