"""A wedged reconciler stops the watchdog pings (``MOMENT_SYNC_TEST_WEDGE=1``), while the
daemon's event loop and status socket stay alive: the watchdog is about progress, not life."""

from __future__ import annotations

import time

import pytest

from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_a_wedged_reconciler_stops_the_watchdog_pings(sandboxes: harness.Sandboxes) -> None:
    setup = harness.write_config(sandboxes, prefix="ms-wedge-")
    with harness.running(setup, env={"MOMENT_SYNC_TEST_WEDGE": "1"}) as daemon:
        ready_at = time.monotonic()
        # the first freshness window (1 s of WATCHDOG_USEC=2s) plus a tick, then silence
        daemon.drain(max(0.0, ready_at + 2.0 - time.monotonic()))
        later = daemon.drain(2.5)
        assert not [m for m in later if "WATCHDOG=1" in m.split("\n")], later
        reply = daemon.ask("GET", "/healthz")
        assert reply.status == 200  # alive, yet not making progress
        assert b"watchdog withheld" in daemon.output()
        assert b'"reconcile"' in daemon.output()
        assert daemon.stop() == 0  # the wedged worker is cancelled on shutdown
        daemon.wait_for("STOPPING=1", timeout=5)


def test_no_pings_when_watchdog_pid_names_another_process(
        sandboxes: harness.Sandboxes) -> None:
    """sd_watchdog_enabled(3): ``WATCHDOG_PID`` of another process means the watchdog is not
    ours; READY still comes."""
    setup = harness.write_config(sandboxes, prefix="ms-otherpid-")
    with harness.running(setup, watchdog_pid="1") as daemon:
        got = daemon.drain(2.5)
        assert not [m for m in got if "WATCHDOG=1" in m.split("\n")], got
        assert daemon.stop() == 0
