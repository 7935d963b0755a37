"""``moment-sync resync payment N`` with no daemon running: it goes directly against the
stopped daemon's log (taking its lock), reads the paid status from e-conomic and writes it to
Moment, and says what it did; an invoice the log has no paid status of, and payments turned
off, are a sentence and exit 1 with nothing appended."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from daemon.sandbox import economic_books
from tests.daemon import harness
from tests.daemon.test_payments import PAYMENTS, booked

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def stopped(sandboxes: harness.Sandboxes) -> Iterator[harness.Setup]:
    """A daemon with ``[payments]`` on that booked the invoices, then stopped (exit 0)."""
    setup = harness.write_config(sandboxes, prefix="ms-paystop-", extra=PAYMENTS)
    with harness.running(setup) as daemon:
        booked(daemon)
        assert daemon.stop() == 0, daemon.tail()
    yield setup


def events_of(setup: harness.Setup, number: str) -> list[str]:
    done = harness.cli("events", "--json", "--entity", f"payment:{number}", "-c",
                       str(setup.config))
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["type"] for line in done.stdout.splitlines()]


def last_seq(setup: harness.Setup) -> int:
    with sqlite3.connect(setup.db) as db:
        (seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    db.close()
    return int(seq)


def test_resync_payment_without_a_daemon_writes_the_paid_status_to_moment(
        stopped: harness.Setup, sandboxes: harness.Sandboxes) -> None:
    moment = sandboxes.moment
    invoice = sandboxes.call(lambda: next(
        i for i in sorted(moment.invoices.values(), key=lambda i: i.id)
        if i.status == "FINALIZED" and not i.is_credit_note))
    number, gross = invoice.invoice_number, invoice.total_including_vat
    sandboxes.call(lambda: economic_books.pay(sandboxes.economic.agreement, {
        "customerNumber": int(invoice.customer_number), "customerInvoiceNumber": number,
        "amount": str(gross), "date": "2026-11-28"}))
    done = harness.cli("resync", "payment", str(number), "-c", str(stopped.config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == (f"payment {number}: read from e-conomic (1 new paid "
                                   "status); reconciled"), done.stdout
    shown: dict[str, Any] = sandboxes.call(lambda: moment.payment_status(invoice.id))
    assert shown["fullyPaid"] is True and shown["paidAmount"] == f"{gross:.2f}"
    assert str(shown["externalId"]).endswith(f":invoice:{number}")
    assert events_of(stopped, str(number)) == ["payment_observed", "write_intended", "applied"]
    # again: nothing new in e-conomic, nothing to write, still a clear answer
    again = harness.cli("resync", "payment", str(number), "-c", str(stopped.config))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip() == (f"payment {number}: read from e-conomic (0 new paid "
                                    "statuses); reconciled"), again.stdout
    assert events_of(stopped, str(number)) == ["payment_observed", "write_intended", "applied"]


def test_resync_payment_of_an_invoice_without_paid_status_is_a_sentence(
        stopped: harness.Setup) -> None:
    before = last_seq(stopped)
    done = harness.cli("resync", "payment", "99999", "-c", str(stopped.config))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "payment 99999: the log has no paid status of invoice 99999" in done.stderr
    assert "Traceback" not in done.stderr
    assert last_seq(stopped) == before


def test_resync_payment_with_payments_off_is_a_sentence(stopped: harness.Setup) -> None:
    before = last_seq(stopped)
    done = harness.cli("resync", "payment", "1", "-c", str(stopped.config),
                       env={"MOMENT_SYNC_PAYMENTS_ENABLED": "false"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == ("moment-sync resync: payments are off: set [payments] enabled = "
                           "true first\n")
    assert last_seq(stopped) == before
