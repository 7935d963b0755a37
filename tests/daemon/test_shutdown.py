"""SIGTERM while a write to e-conomic is in flight: the daemon lets the call finish (within its
grace period), records its outcome, and only then exits 0 (DESIGN.md, Shutdown)."""

from __future__ import annotations

import json
import signal

import pytest

from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_sigterm_lets_the_write_in_flight_finish_and_records_it(
        sandboxes: harness.Sandboxes) -> None:
    # no sweeps after the first (1 h): after convergence only the renamed customer calls out
    setup = harness.write_config(sandboxes, prefix="ms-term-")
    text = setup.config.read_text().replace('reconcile_interval = "2s"',
                                            'reconcile_interval = "1h"')
    setup.config.write_text(text)
    with harness.running(setup) as daemon:
        harness.in_sync(daemon)

        def slow_next_calls() -> int:
            sandboxes.economic.faults.timeout_s = 1.0  # a slow answer, well inside 30 s
            sandboxes.economic.inject("timeout", 2)    # the read, then the write
            return len(sandboxes.economic.served)
        mark = sandboxes.call(slow_next_calls)
        sandboxes.call(lambda: sandboxes.moment.change_customer(1001, name="Renamed in Moment"))

        def put_in_flight() -> bool:
            return any(r.method == "PUT" and r.path.endswith("/customers/10001")
                       and r.status == 0 for r in sandboxes.economic_requests()[mark:])
        harness.wait_until(put_in_flight, timeout=20, what="the PUT of customer 10001 in flight")
        code = daemon.stop()
        assert code == 0, daemon.tail()

    assert sandboxes.call(lambda: sandboxes.economic.agreement.customers[10001]["name"]) == \
        "Renamed in Moment"
    done = harness.cli("events", "--json", "--entity", "customer:10001",
                       "-c", str(setup.config))
    types = [json.loads(line)["type"] for line in done.stdout.splitlines()]
    # the rename's intent, then its outcome, recorded before the daemon exited
    last_intent = max(i for i, t in enumerate(types) if t == "write_intended")
    assert "applied" in types[last_intent:], types


def test_sigint_stops_like_sigterm(sandboxes: harness.Sandboxes) -> None:
    setup = harness.write_config(sandboxes, prefix="ms-int-")
    with harness.running(setup) as daemon:
        daemon.signal(signal.SIGINT)
        daemon.wait_for("STOPPING=1", timeout=20)
        assert daemon.wait(30) == 0, daemon.tail()
        assert not setup.socket.exists()
