"""Test-only hooks of the reconcile layer, inert unless their environment variable is set.

``MOMENT_SYNC_TEST_CRASH_AT=<step>`` kills the process with SIGKILL the first time the invoice
transfer (or an expense's, :data:`EXPENSE_CRASH_POINTS`) reaches that named step (see
:data:`CRASH_POINTS`); the crash tests run a daemon with
it at every step and check that a restart ends with each invoice in e-conomic exactly once.
``MOMENT_SYNC_TEST_WEDGE=1`` makes the reconcile loop hang without beating its watchdog pulse.
``MOMENT_SYNC_TEST_ECONOMIC_TIMEOUT_S=<seconds>`` shortens the e-conomic client's call timeout
(30 s), so a test of a timed-out call does not wait half a minute of real time.

Guarantees: with none of them set (production), nothing here has any effect. Never read
anything else from the environment here.
"""

from __future__ import annotations

import os
import signal
from typing import Final

CRASH_ENV: Final = "MOMENT_SYNC_TEST_CRASH_AT"
WEDGE_ENV: Final = "MOMENT_SYNC_TEST_WEDGE"
TIMEOUT_ENV: Final = "MOMENT_SYNC_TEST_ECONOMIC_TIMEOUT_S"
CRASH_POINTS: Final = (
    "invoice.after_intent",        # transfer intent committed, nothing sent
    "invoice.after_send",          # bulk draft entries created, outcome not recorded
    "invoice.after_entry",         # InvoiceEntryCreated committed
    "invoice.after_attach_send",   # PDF attached, outcome not recorded
    "invoice.after_attach",        # InvoicePdfAttached committed
    "invoice.after_book_intent",   # booking intent committed, nothing sent
    "invoice.after_book_send",     # booked, outcome not recorded
    "invoice.after_book",          # InvoiceBooked committed, completion not yet
)
PAYMENT_CRASH_POINTS: Final = (
    "payment.after_intent",        # paid-status intent committed, nothing sent to Moment
    "payment.after_send",          # Moment has the status, Applied not recorded
)
EXPENSE_CRASH_POINTS: Final = (
    "expense.after_intent",        # intent committed, nothing sent to Moment
    "expense.after_send",          # Moment created the expense, outcome not recorded
    "expense.after_applied",       # Applied committed
)


def crash_point(step: str) -> None:
    """SIGKILL this process when ``$MOMENT_SYNC_TEST_CRASH_AT`` names ``step``."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def wedged() -> bool:
    """True when ``$MOMENT_SYNC_TEST_WEDGE`` asks the reconcile loop to hang."""
    return os.environ.get(WEDGE_ENV) == "1"


def economic_timeout_s() -> float | None:
    """The e-conomic call timeout ``$MOMENT_SYNC_TEST_ECONOMIC_TIMEOUT_S`` asks for, if any."""
    value = os.environ.get(TIMEOUT_ENV)
    return float(value) if value else None
