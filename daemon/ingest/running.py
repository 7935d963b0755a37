"""Ingest as one unit for the daemon's root task group: processor, receiver and poller.

Usage (in ``daemon/app.py``)::

    async with MomentClient(api_url=settings.moment.api_url, company=settings.moment.company,
                            api_key=load_secret(settings, "moment-api-key")) as client:
        ingest = running.Ingest(settings=settings, log=log, client=client,
                                webhook_token=load_secret(settings, "moment-webhook-token"))
        port = await root_tg.start(ingest.run)      # returns once all three are running
        ...
        await ingest.resync("customer", "10001")    # the resync command / status socket

Guarantees: the hint processor starts first (its consumer of the log reads on from the hint
watermark, so every hint committed but not processed before is fetched, and every later one),
then the receiver (so no 202 is given before something will act on it), then the poller. On
cancellation all three stop inside :meth:`Ingest.run`: the receiver closes its socket, the
processor saves its hint watermark (shielded). The log and the client must outlive
:meth:`Ingest.run`; close them after it has returned.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc

from daemon import settings as config
from daemon.core import clocks, secrets
from daemon.ingest import hinting, polling, receiving
from daemon.ingest.ingesting import Outcome
from daemon.moment import client as moment_client
from daemon.store import eventlog


class Ingest:
    """The three ingest tasks of one Moment company, built from the settings."""

    def __init__(self, *, settings: config.Settings, log: eventlog.EventLog,
                 client: moment_client.MomentClient, webhook_token: secrets.Secret,
                 clock: clocks.Clock, economic_webhook_token: secrets.Secret | None = None,
                 concurrency: int = 4,
                 on_webhook: Callable[[str, int], None] | None = None) -> None:
        """``on_webhook(source, status)``: told of every answer the webhook receiver gives
        (``source``: ``"moment"`` or ``"economic"``)."""
        listen = settings.daemon.listen
        self.processor = hinting.HintProcessor(log=log, client=client, concurrency=concurrency,
                                               clock=clock)
        self.receiver = receiving.Receiver(
            log=log, token=webhook_token, economic_token=economic_webhook_token,
            economic_events=settings.economic.webhook_events, host=listen.host,
            port=listen.port, on_answer=on_webhook)
        self.poller = polling.Poller(log=log, client=client, processor=self.processor,
                                     poll_interval_s=float(settings.moment.poll_interval),
                                     full_scan_interval_s=float(
                                         settings.moment.full_scan_interval),
                                     clock=clock)

    async def run(self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Run processor, receiver and poller until cancelled; started with the bound port."""
        async with anyio.create_task_group() as tg:
            await tg.start(self.processor.run)
            port: int = await tg.start(self.receiver.serve)
            await tg.start(self.poller.run)
            task_status.started(port)

    async def resync(self, kind: str, key: str) -> Outcome:
        """Re-fetch one entity by its Moment number now (see :meth:`polling.Poller.resync`)."""
        return await self.poller.resync(kind, key)
