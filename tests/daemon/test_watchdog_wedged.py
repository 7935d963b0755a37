"""A wedged reconciler stops the watchdog pings (``MOMENT_SYNC_TEST_WEDGE=1``), while the
daemon's event loop and status socket stay alive: the watchdog is about progress, not life."""

from __future__ import annotations

import pytest

from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def reconciler_withheld(daemon: harness.Daemon) -> bool:
    """The daemon logged that it withholds the pings, the reconciler among the stale."""
    for line in daemon.output().decode(errors="replace").splitlines():
        if "watchdog withheld" in line and '"reconcile"' in line:
            return True
    return False


def test_a_wedged_reconciler_stops_the_watchdog_pings(sandboxes: harness.Sandboxes) -> None:
    setup = harness.write_config(sandboxes, prefix="ms-wedge-")
    with harness.running(setup, env={"MOMENT_SYNC_TEST_WEDGE": "1"}) as daemon:
        # once the wedged reconciler's last beat is older than the freshness window (1 s of
        # WATCHDOG_USEC=2s), the watchdog withholds the pings, says so, and never pings again
        # (waited for as an event: how soon that is depends on the machine's load)
        # (another component may be stale for a moment on a loaded machine: the reconciler's
        # turn is the one that never ends)
        harness.wait_until(lambda: reconciler_withheld(daemon), timeout=30,
                           what="the watchdog to withhold its pings for the reconciler")
        seen = len(daemon.messages)
        daemon.drain(2.5)
        later = [m for _at, m in list(daemon.messages)[seen:]]
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
