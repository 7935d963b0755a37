"""The real daemon with ``[payments]`` on: an invoice it booked, paid in e-conomic (a customer
payment booked on the sandbox's admin surface, as a bookkeeper would), shows as paid in Moment;
the operator's commands see the kind (``status``, ``resync payment``, ``events --entity``,
``plan payment``, ``parked``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from daemon.sandbox import economic_books
from tests.daemon import harness

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

PAYMENTS = '\n[payments]\nenabled = true\npoll_interval = "1h"\n'


@pytest.fixture(scope="module")
def running(sandboxes: harness.Sandboxes) -> Iterator[harness.Daemon]:
    setup = harness.write_config(sandboxes, prefix="ms-pay-", extra=PAYMENTS)
    daemon = harness.Daemon(setup).start()
    try:
        daemon.wait_for("READY=1")
        yield daemon
    finally:
        daemon.stop()
        daemon.close()


def booked(daemon: harness.Daemon) -> dict[str, Any]:
    """Wait until every Moment kind is in e-conomic (the payment kind has nothing yet)."""
    seen: list[dict[str, Any]] = []

    def done() -> bool:
        status: dict[str, Any] = daemon.ask("GET", "/status").json()
        seen[:] = [status]
        return all(status["entities"][k]["desired"] > 0 and status["entities"][k]["pending"] == 0
                   for k in ("customer", "project", "invoice"))

    harness.wait_until(done, timeout=30, what="the daemon to book the invoices")
    return seen[0]


def test_an_invoice_paid_in_economic_shows_paid_in_moment(
        running: harness.Daemon, sandboxes: harness.Sandboxes) -> None:
    status = booked(running)
    assert status["entities"]["payment"] == {"desired": 0, "in_sync": 0, "pending": 0,
                                             "parked": 0}
    moment = sandboxes.moment
    invoice = sandboxes.call(lambda: next(
        i for i in sorted(moment.invoices.values(), key=lambda i: i.id)
        if i.status == "FINALIZED" and not i.is_credit_note))
    number, gross = invoice.invoice_number, invoice.total_including_vat
    customer = int(invoice.customer_number)
    sandboxes.call(lambda: economic_books.pay(sandboxes.economic.agreement, {
        "customerNumber": customer, "customerInvoiceNumber": number, "amount": str(gross),
        "date": "2026-11-28"}))
    config = str(running.setup.config)
    done = harness.cli("resync", "payment", str(number), "-c", config)
    assert done.returncode == 0, done.stderr
    assert f"payment {number}: re-fetched from e-conomic" in done.stdout

    def paid() -> bool:
        return bool(sandboxes.call(lambda: moment.payment_status(invoice.id))["fullyPaid"])

    harness.wait_until(paid, timeout=30, what="Moment to show the invoice paid")
    shown = sandboxes.call(lambda: moment.payment_status(invoice.id))
    assert shown["paidAmount"] == f"{gross:.2f}"
    assert str(shown["externalId"]).endswith(f":invoice:{number}")

    def in_sync() -> bool:
        counts = running.ask("GET", "/status").json()["entities"]["payment"]
        return bool(counts == {"desired": 1, "in_sync": 1, "pending": 0, "parked": 0})

    harness.wait_until(in_sync, timeout=30, what="the payment to count as in sync")
    text = harness.cli("status", "-c", config)
    assert any(line.split()[:2] == ["payment", "1"] for line in text.stdout.splitlines()), \
        text.stdout
    events = harness.cli("events", "--json", "--entity", f"payment:{number}", "-c", config)
    types = [json.loads(line)["type"] for line in events.stdout.splitlines()]
    assert types == ["payment_observed", "write_intended", "applied"], events.stdout
    plan = harness.cli("plan", "payment", "-c", config)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert harness.cli("parked", "-c", config).returncode == 0
    unknown = harness.cli("resync", "payment", "99999", "-c", config)
    assert unknown.returncode != 0
