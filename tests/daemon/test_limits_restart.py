"""The real daemon killed during an e-conomic 429 pause (as the watchdog or the OOM killer would)
starts again honouring it: ``/status`` shows the same pause and the count of calls carried
over, and nothing goes to e-conomic while it runs. Exact times and the rolling arithmetic are
tests/ops/test_limits.py's (fake clock); this proves the wiring of ``moment-sync run``."""

from __future__ import annotations

import signal
import sqlite3
from typing import Any

import pytest

from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _recorded_pauses(setup: harness.Setup) -> int:
    with sqlite3.connect(f"file:{setup.db}?mode=ro", uri=True) as db:
        (n,) = db.execute("SELECT count(*) FROM events WHERE type = 'rate_limit_recorded' "
                          "AND json_extract(payload, '$.paused_until') > 0").fetchone()
    return int(n)


def test_a_kill_during_a_429_pause_is_honoured_after_the_restart(
        sandboxes: harness.Sandboxes) -> None:
    setup = harness.write_config(sandboxes, prefix="ms-limits-")
    with harness.running(setup) as daemon:
        harness.in_sync(daemon)

        def refuse() -> None:
            sandboxes.economic.faults.retry_after_s = 3600
            sandboxes.economic.inject("429")
            sandboxes.moment.add_customer(name="Arrives During A Pause ApS")
        sandboxes.call(refuse)
        economic: dict[str, Any] = {}

        def paused() -> bool:
            economic.update(daemon.ask("GET", "/status").json()["economic"])
            return economic["paused_until"] is not None and _recorded_pauses(setup) > 0
        harness.wait_until(paused, timeout=30, what="a 429 pause recorded in the log")
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
    served = len(sandboxes.economic_requests())
    try:
        with harness.running(setup) as daemon:
            after = daemon.ask("GET", "/status").json()["economic"]
            assert after["paused_until"] == economic["paused_until"]
            assert after["calls_today"] >= economic["calls_today"] > 0
            # up and answering, and its start (checks, reconcile) waits out the pause
            assert len(sandboxes.economic_requests()) == served
            # killed on the way out: a stop would give the pass waiting out the pause its grace
    finally:
        sandboxes.call(lambda: setattr(sandboxes.economic.faults, "retry_after_s", 1))
