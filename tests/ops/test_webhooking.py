"""Keeping the e-conomic webhooks installed while the daemon runs: a failed install is a failed
``webhooks`` check (recorded, alerted) and shows in ``/status``, nothing else waits for it, and
the next round, one ``reconcile_interval`` later, installs them; once all are installed the
rounds are a ``full_reconcile_interval`` apart."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from daemon import settings as config
from daemon.core import events as ev
from daemon.core.secrets import Secret
from daemon.economic.client import EconomicClient
from daemon.ops import alerts, webhooking
from daemon.sandbox.economic import EconomicSandbox, RateLimit
from daemon.store.eventlog import EventLog
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio

TOKEN = "keeper-token-4e1b"
SETTINGS = config.parse("""
[moment]
company = "acme"
[economic]
webhook_url = "https://sync.example.com"
reconcile_interval = "10m"
full_reconcile_interval = "6h"
""", environ={})


class Alerts:
    def __init__(self) -> None:
        self.sent: list[alerts.Alert] = []

    def alert(self, alert: alerts.Alert) -> None:
        self.sent.append(alert)


@pytest.fixture
async def parts() -> AsyncIterator[tuple[EconomicSandbox, EconomicClient, EventLog, FakeClock]]:
    clock = FakeClock()
    async with EconomicSandbox.running(rate_limit=RateLimit(enabled=False)) as sb, \
            EconomicClient(rest_url=sb.rest_url, apis_url=sb.apis_url, clock=clock,
                           app_secret_token=Secret(sb.app_secret_token),
                           agreement_grant_token=Secret(sb.agreement_grant_token)) as client:
        log = await EventLog.open(":memory:", clock=clock)
        try:
            yield sb, client, log, clock
        finally:
            await log.close()


async def checks(log: EventLog) -> list[tuple[bool, str]]:
    return [(e.ok, e.detail) for _seq, e in await log.committed(after=0, limit=100)
            if isinstance(e, ev.CheckReported) and e.name == "webhooks"]


async def test_a_failed_install_is_a_failed_check_then_the_next_round_installs(
        parts: tuple[EconomicSandbox, EconomicClient, EventLog, FakeClock]) -> None:
    sb, client, log, clock = parts
    alerter = Alerts()
    keeper = webhooking.Keeper(log=log, client=client, settings=lambda: SETTINGS,
                               token=Secret(TOKEN), alerter=alerter, clock=clock)
    assert keeper.status().detail.startswith("not installed yet")
    sb.inject("503", 1)  # e-conomic down at start
    async with anyio.create_task_group() as tg:
        tg.start_soon(keeper.run)
        await clock.asked(600.0)  # failed: the next round a reconcile_interval on
        status = keeper.status()
        assert not status.ok and "could not be read" in status.detail
        [(ok, detail)] = await checks(log)
        assert not ok and "503" in detail and TOKEN not in detail
        assert [a.kind for a in alerter.sent] == ["check_failed"]
        clock.advance(600.0)
        await clock.asked(6 * 3600.0)  # installed: the next round a full interval on
        assert keeper.status().ok
        assert keeper.status().installed == ["CUSTOMER_UPDATED", "PROJECT_UPDATED"]
        assert (await checks(log))[-1] == (
            True, "installed and enabled: CUSTOMER_UPDATED, PROJECT_UPDATED")
        # e-conomic disables one; the next round puts it back and says so
        sb.agreement.webhooks["CUSTOMER_UPDATED"]["isDisabled"] = True
        clock.advance(6 * 3600.0)
        await clock.asked(6 * 3600.0, times=2)
        assert "CUSTOMER_UPDATED was disabled by e-conomic and is enabled again" in \
            keeper.status().detail
        tg.cancel_scope.cancel()
    assert keeper.rounds == 3
    assert len(await checks(log)) == 2  # the same verdict is recorded once


def test_the_day_book_webhook_is_wanted_once_booked_entries_are_read() -> None:
    assert webhooking.wanted_kinds(SETTINGS) == ["customer", "project"]
    paying = config.parse("""
[moment]
company = "acme"
[economic]
webhook_url = "https://sync.example.com"
[payments]
enabled = true
""", environ={})
    assert webhooking.wanted_kinds(paying) == ["customer", "project", "daybook"]
    plan = webhooking.plan(paying, Secret(TOKEN))
    assert plan is not None and plan.want("daybook").postData == (
        '{"event":"DAYBOOK_BOOKED","daybook":"[DAYBOOKNO]","from":"[FROMSERIALNO]",'
        '"to":"[TOSERIALNO]"}')
    assert webhooking.plan(SETTINGS, None) is None
