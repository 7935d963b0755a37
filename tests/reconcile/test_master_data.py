"""Master data through the e-conomic sandbox: the accountant's e-mail for reminders survives
Moment's updates, an e-mail Moment emptied is emptied, a German customer is created as
"Tyskland" in the EU zone, and the zone the accountant chose stands through full sweeps until
Moment changes the country."""

from __future__ import annotations

import anyio
import pytest

from daemon.economic.client import EconomicClient
from daemon.sandbox.economic import EconomicSandbox
from daemon.store.eventlog import EventLog
from tests.reconcile.conftest import customer, reconciler, record, settle

pytestmark = pytest.mark.anyio


async def test_moment_owns_what_it_fills_in(sandbox: EconomicSandbox, client: EconomicClient,
                                            log: EventLog) -> None:
    a = sandbox.agreement
    await record(log, [customer(1, email=""), customer(2), customer(3, country_code="DE",
                                                                       vat_code="")])
    rec = reconciler(log, client)
    async with anyio.create_task_group() as tg:
        await tg.start(rec.run)
        await settle(rec)
        assert "email" not in a.customers[1]
        assert (a.customers[3]["country"], a.customers[3]["vatZone"]["vatZoneNumber"]) == \
            ("Tyskland", 2)
        assert a.customers[2]["country"] == "Danmark"
        # the accountant's reminder e-mail, another name of the country, their own zone
        a.edit_customer(1, {"email": "rykker@kunde1.dk"})
        a.edit_customer(2, {"country": "Denmark"})
        a.edit_customer(3, {"vatZone": {"vatZoneNumber": 3}})
        await rec.full_sweep()
        await settle(rec)
        assert a.customers[1]["email"] == "rykker@kunde1.dk"
        assert a.customers[2]["country"] == "Denmark"
        assert a.customers[3]["vatZone"]["vatZoneNumber"] == 3
        # Moment changes: customer 1's city (the e-mail stays), customer 2 empties its e-mail,
        # customer 3 moves to Sweden (the zone follows the new country)
        await record(log, [customer(1, email="", city="Odense", version=2),
                           customer(2, email="", version=2),
                           customer(3, country_code="SE", vat_code="", version=2)])
        await settle(rec)
        tg.cancel_scope.cancel()
    assert (a.customers[1]["city"], a.customers[1]["email"]) == ("Odense", "rykker@kunde1.dk")
    assert "email" not in a.customers[2]
    assert (a.customers[3]["country"], a.customers[3]["vatZone"]["vatZoneNumber"]) == \
        ("Sverige", 2)
    drift = [r.event for k in ("1", "2", "3") for r in await log.read_entity("customer", k)
             if r.type == "drift_repaired"]
    assert drift == []
