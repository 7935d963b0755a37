"""Driving the reconciler pass by pass, without waiting on time: a policy whose backoff is
zero makes a failed item due again at once, so each :func:`settle` step is one pass."""

from __future__ import annotations

from collections import Counter
from typing import Any

from daemon.core.backoff import Policy
from daemon.economic.client import EconomicClient
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import reconciler

AT_ONCE = Policy(base_s=0.0, cap_s=0.0, max_attempts=8)


def stepper(log: EventLog, client: EconomicClient, **kw: Any) -> Reconciler:
    """A reconciler whose retries come due at once (no sleeping between passes)."""
    kw.setdefault("policy", AT_ONCE)
    return reconciler(log, client, **kw)


async def settle(rec: Reconciler, *, passes: int = 30) -> int:
    """Run passes until one does nothing; returns how many did something (fails when the
    work does not end within ``passes``)."""
    for n in range(passes):
        if not await rec.step():
            return n
    raise AssertionError(f"still working after {passes} passes")


def invoice_lines(sb: EconomicSandbox) -> Counter[int]:
    """Invoice number → how many customer-ledger lines carry it (drafts and booked)."""
    out: Counter[int] = Counter()
    for d in sb.agreement.draft_entries.values():
        if d.get("customerInvoiceNumber"):
            out[int(d["customerInvoiceNumber"])] += 1
    for b in sb.agreement.booked_entries.values():
        if b.get("customerInvoiceNumber"):
            out[int(b["customerInvoiceNumber"])] += 1
    return out
