"""Changing ``journal_number`` affects only invoices not yet sent: an invoice in doubt is looked
up in every journal and sent again to the journal it went to, an invoice whose entry exists is
booked in its entry's journal, and a booked one is not reported as changed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from daemon.core import mapping as mp
from daemon.economic.client import EconomicClient
from daemon.reconcile.running import Reconciler
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import OPTIONS, customer, make_client, record, record_invoices
from tests.reconcile.passing import invoice_lines, settle, stepper

pytestmark = pytest.mark.anyio
NUMBERS = (91, 92)


@pytest.fixture
async def sb() -> AsyncIterator[EconomicSandbox]:
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sandbox:
        sandbox.agreement.journals[2] = {
            "journalNumber": 2, "name": "Sales",
            "settings": {"voucherNumbers": {"minimumVoucherNumber": 1,
                                            "maximumVoucherNumber": 999_999}}}
        yield sandbox


@pytest.fixture
async def client(sb: EconomicSandbox, clock: FakeClock) -> AsyncIterator[EconomicClient]:
    async with make_client(sb, clock, timeout_s=5.0) as c:
        yield c


def options(journal: int, **kw: bool) -> mp.Options:
    return msgspec.structs.replace(OPTIONS, journal_number=journal, **kw)


async def restart(log: EventLog, client: EconomicClient, opts: mp.Options) -> Reconciler:
    """The daemon again, with a changed configuration, after a full sweep queued its work."""
    rec = stepper(log, client, options=opts)
    await rec.full_sweep()
    return rec


def journals(sb: EconomicSandbox) -> dict[int, int]:
    """Invoice number → the journal its booked line was booked from."""
    return {b["customerInvoiceNumber"]: b["_journal"] for b in sb.agreement.booked_entries.values()
            if b.get("customerInvoiceNumber")}


@pytest.mark.parametrize("fault", ["drop", "late"])
async def test_an_invoice_in_doubt_when_the_journal_changes_is_not_sent_twice(
        fault: str, sb: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client, options=options(1))
    await record(log, [customer(1), customer(2)])
    await settle(rec)
    sb.inject(fault, on="POST /draft-entries/bulk")  # applied in journal 1, or later
    await record_invoices(log, [(n, n % 2 + 1, None) for n in NUMBERS])
    await rec.step()
    assert all(log.tables.state("invoice", str(n)).intents.get("transfer") for n in NUMBERS)
    rec = await restart(log, client, options(2))
    await settle(rec)
    assert invoice_lines(sb) == {n: 1 for n in NUMBERS}
    assert journals(sb) == {n: 1 for n in NUMBERS}
    assert not any(log.tables.state("invoice", str(n)).parked for n in NUMBERS)


async def test_an_entry_made_before_the_journal_changed_is_booked_in_its_own_journal(
        sb: EconomicSandbox, client: EconomicClient, log: EventLog) -> None:
    rec = stepper(log, client, options=options(1))
    await record(log, [customer(1), customer(2)])
    await settle(rec)
    sb.inject("503", on="POST /journals/1/bookdraftentries")  # the booking waits
    await record_invoices(log, [(n, n % 2 + 1, None) for n in NUMBERS])
    await rec.step()
    assert len(sb.agreement.draft_entries) == 2 and not sb.agreement.booked_entries
    rec = await restart(log, client, options(2))
    await settle(rec)
    assert journals(sb) == {n: 1 for n in NUMBERS} and not sb.agreement.draft_entries
    assert not any(log.tables.state("invoice", str(n)).parked for n in NUMBERS)
    # and a booked invoice is neither re-planned nor reported when the journal changes again
    rec = await restart(log, client, options(1))
    await settle(rec)
    counts = rec.status().entities["invoice"]
    assert (counts.desired, counts.in_sync, counts.pending, counts.parked) == (2, 2, 0, 0)
    assert not any(log.tables.state("invoice", str(n)).warnings for n in NUMBERS)
    assert invoice_lines(sb) == {n: 1 for n in NUMBERS}
