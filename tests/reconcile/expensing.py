"""Helpers for the expense tests: both sandboxes, a log, both clients, the booked-entries poller
and a reconciler that writes to Moment, on one fake clock; and bookings as a person makes them
in e-conomic (a supplier invoice or finance voucher of a cost on a project)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from daemon.core import events as ev
from daemon.core import mapping as mp
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ingest.expensing import BookedEntries
from daemon.moment.client import MomentClient
from daemon.reconcile.running import Reconciler
from daemon.sandbox import economic_books
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.sandbox.moment import MomentSandbox
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock
from tests.reconcile.conftest import FAST, OPTIONS, customer, make_client, record

EXPENSES = mp.Options(**{**{f: getattr(OPTIONS, f) for f in OPTIONS.__struct_fields__},
                         "expenses": True, "cost_types": {2850: "Underleverandør"}})
DAY = "2026-05-20"  # within the lookback of tests.clocks.T0 (2026-05-28)


@dataclass
class World:
    economic: EconomicSandbox
    moment: MomentSandbox
    log: EventLog
    client: EconomicClient
    moment_client: MomentClient
    reader: BookedEntries
    rec: Reconciler
    clock: FakeClock

    def expenses(self) -> list[dict[str, Any]]:
        """Moment's expenses, in the order they were created."""
        return [e.body for _i, e in sorted(self.moment.expenses.items())]

    async def project(self, number: int, *, in_moment: bool = True) -> None:
        """Project ``number`` in e-conomic (bookings need it), and in Moment with its fact in
        the log unless ``in_moment`` is False."""
        if number not in self.economic.agreement.projects:
            self.economic.agreement.add_project(number, f"Projekt {number}", customerNumber=1)
        if not in_moment:
            return
        customer = next(iter(self.moment.customers.values()), None)
        if customer is None:
            customer = self.moment.add_customer(name="Kunde ApS", customer_number="1")
        made = self.moment.add_project(name=f"Projekt {number}", customer_id=customer.id,
                                       project_number=str(number))
        await record(self.log, [ev.ProjectUpserted(moment_id=made.id, number=str(number),
                                                   name=f"Projekt {number}",
                                                   customer_number="1")])

    def cost(self, amount: str, project: int, *, account: int = 2750, text: str = "Rejse",
             kind: str = "supplierInvoice", date: str = DAY, **kw: Any) -> int:
        """Book a cost as a person would; the entry number of its cost row."""
        rows = economic_books.book_cost(self.economic.agreement, kind, {
            "amount": amount, "date": date, "accountNumber": account, "projectNumber": project,
            "text": text, **kw})
        return next(int(r["entryNumber"]) for r in rows if r.get("projectNumber") == project)


@contextlib.asynccontextmanager
async def world(*, accounts: Sequence[int] = (), options: mp.Options = EXPENSES,
                clock: FakeClock | None = None, **rec_kw: Any) -> AsyncIterator[World]:
    clock = clock or FakeClock()
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as esb, \
            MomentSandbox.running(now=clock.utcnow) as msb:
        log = await EventLog.open(":memory:", clock=clock)
        try:
            async with make_client(esb, clock, timeout_s=5.0) as client, \
                    MomentClient(api_url=msb.api_url, company=msb.company,
                                 api_key=Secret(msb.api_key), timeout_s=5.0,
                                 clock=clock) as mc:
                reader = BookedEntries(log=log, client=client, clock=clock, accounts=accounts)
                rec_kw.setdefault("policy", FAST)
                rec = Reconciler(log=log, client=client, options=options, clock=clock,
                                 rng=random.Random(7), moment=mc, **rec_kw)
                await record(log, [customer(1)])
                async with anyio.create_task_group() as tg:
                    await tg.start(rec.run)
                    yield World(economic=esb, moment=msb, log=log, client=client,
                                moment_client=mc, reader=reader, rec=rec, clock=clock)
                    tg.cancel_scope.cancel()
        finally:
            await log.close()
