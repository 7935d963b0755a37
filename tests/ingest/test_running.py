"""Ingest as the daemon starts it: from the settings, in one task group, then cancelled."""

from __future__ import annotations

import aiohttp
import anyio
import pytest

from daemon import settings as config
from daemon.core import secrets
from daemon.ingest import receiving, running
from daemon.ingest.ingesting import Outcome
from daemon.moment import client as moment_client
from daemon.sandbox import moment as moment_sandbox
from daemon.store import eventlog
from tests.ingest.conftest import API_KEY, TOKEN, fake_clock

pytestmark = pytest.mark.anyio


async def test_ingest_runs_from_the_settings_and_stops_cleanly() -> None:
    clock = fake_clock(autojump=False)  # the first round ends waiting for the next poll
    async with moment_sandbox.MomentSandbox.running(api_key=API_KEY, now=clock.utcnow) as sb:
        settings = config.Settings(
            moment=config.MomentSettings(company=sb.company, api_url=sb.api_url,
                                         poll_interval=config.Duration(60),
                                         full_scan_interval=config.Duration(3600)),
            daemon=config.DaemonSettings(listen=config.Listen("127.0.0.1", 0)))
        existing = sb.add_customer(name="Før Start ApS", customer_number="90001")
        async with moment_client.MomentClient(api_url=sb.api_url, company=sb.company,
                                              api_key=secrets.Secret(API_KEY),
                                              clock=clock) as client, \
                await eventlog.EventLog.open(":memory:", clock=clock) as log:
            ingest = running.Ingest(settings=settings, log=log, client=client,
                                    webhook_token=secrets.Secret(TOKEN), clock=clock)
            async with anyio.create_task_group() as tg:
                port = await tg.start(ingest.run)
                # the first round scanned everything and waits the poll interval
                await clock.asked(60.0)
                assert log.tables.customers()["90001"].fact.moment_id == existing.id
                sb.set_webhook(f"http://127.0.0.1:{port}{receiving.PATH_PREFIX}{TOKEN}")
                hinted = sb.add_customer(name="Efter Start ApS", customer_number="90002")
                await sb.webhooks_idle()
                await ingest.processor.idle()
                assert log.tables.customers()["90002"].fact.moment_id == hinted.id
                assert await ingest.resync("customer", "90002") == Outcome.UNCHANGED
                tg.cancel_scope.cancel()
            # stopped: the port is closed and the hint watermark was saved
            last_hint = max(r.seq for r in await log.read() if r.type == "hint_received")
            assert int(log.tables.daemon()["cursor:hints"].value) >= last_hint
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.post(f"http://127.0.0.1:{port}/webhooks/moment/{TOKEN}", data=b"{}")
