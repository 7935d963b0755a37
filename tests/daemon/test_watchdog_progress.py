"""A reconcile pass that takes longer than the watchdog's freshness window, but makes progress
all along (each call of an invoice transfer answers slowly), keeps the watchdog pinging: the
pulse follows outcomes, not only the start of each pass. (With ``WatchdogSec=60s`` a backfill
pass of a few thousand writes outlasts the 30 s window; systemd would restart a working daemon.)
"""

from __future__ import annotations

import pytest

from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_a_long_pass_that_makes_progress_keeps_the_pings(sandboxes: harness.Sandboxes) -> None:
    setup = harness.write_config(sandboxes, prefix="ms-progress-")
    # no incremental sweeps: only the invoice's own calls are slowed
    setup.config.write_text(setup.config.read_text().replace('reconcile_interval = "2s"',
                                                              'reconcile_interval = "1h"'))
    with harness.running(setup) as daemon:
        harness.in_sync(daemon)
        mark = len(daemon.output())

        def slow_invoice() -> int:
            sb = sandboxes
            sb.economic.faults.timeout_s = 0.6  # each call answers in 0.6 s, freshness is 1 s
            sb.economic.inject("timeout", 4)  # entry, lookup, PDF, booking
            customer = next(iter(sb.moment.customers.values()))
            invoice = sb.moment.add_invoice(customer_id=customer.id, total_excluding_vat="100",
                                            finalize=True)
            assert invoice.invoice_number is not None
            return invoice.invoice_number
        number = sandboxes.call(slow_invoice)

        def booked() -> bool:
            state = daemon.ask("GET", f"/entities/invoice/{number}").json().get("state") or {}
            return bool(state.get("booked"))
        harness.wait_until(booked, timeout=30, what=f"invoice {number} booked")
        assert sandboxes.call(lambda: not sandboxes.economic.faults.scheduled), \
            "the slow answers were not all used by the transfer"
        during = daemon.output()[mark:]
        assert b"watchdog withheld" not in during, during.decode()[-2000:]
        assert daemon.stop() == 0
