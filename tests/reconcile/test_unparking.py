"""Un-parking scales with the states, not with parked × states: retrying many items at once
(a full reconcile retries every parked one) scans the entity states once per round, not once
per item retried, and takes along every item that waited on them."""

from __future__ import annotations

import pytest

from daemon.core import events as ev
from daemon.core import projections as pj
from daemon.core import rows as rw
from daemon.economic.client import EconomicClient
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import reconciler

pytestmark = pytest.mark.anyio
N = 300


async def test_retrying_many_scans_the_states_once_per_round(
        client: EconomicClient, log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = reconciler(log, client)
    parked: list[tuple[ev.Event, str, None]] = []
    for n in range(1, N + 1):
        parked.append((ev.Parked(kind="customer", key=str(n), reason="refused"), f"pc{n}", None))
        parked.append((ev.Parked(kind="invoice", key=str(n), reason="its customer is parked",
                                 last_error=f"waiting on customer:{n}"), f"pi{n}", None))
    await log.append_many(parked)
    scans = 0
    states = pj.Tables.states

    def counted(self: pj.Tables) -> dict[str, rw.EntityState]:
        nonlocal scans
        scans += 1
        return states(self)

    monkeypatch.setattr(pj.Tables, "states", counted)
    await log.append_many([(ev.RetryRequested(kind="customer", key=str(n)), f"r{n}", None)
                           for n in range(1, N + 1)])
    await rec.intake.pull()
    await rec.unparker.round(pull=rec.intake.pull)
    assert scans <= 2  # a round for the customers, one for the invoices they took along
    monkeypatch.undo()
    assert not any(log.tables.state("invoice", str(n)).parked for n in range(1, N + 1))
    unparked = [r.event for r in await log.read_entity("invoice", "7") if r.type == "unparked"]
    assert [getattr(e, "by", "") for e in unparked] == ["customer 7 retried"]
