"""Fixtures: the Moment sandbox on loopback, an in-memory log, and ingest running against them.

:class:`Harness` holds one running set on one fake clock (``tests/clocks.py``; autojumping
unless a test passes its own: a wait is recorded in ``clock.sleeps`` and takes virtual time to
its end at once): the sandbox, the Moment client, the hint processor, the webhook receiver on
127.0.0.1 with the sandbox's webhook pointed at it, and the poller.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from daemon.core import events as ev
from daemon.core import secrets
from daemon.ingest import hinting, polling, receiving
from daemon.moment import client as moment_client
from daemon.sandbox import moment as moment_sandbox
from daemon.store import eventlog
from tests.clocks import FakeClock

API_KEY = "ingest-test-key-9c1e"
TOKEN = "hook-token-3b7d0a5e"
START = dt.datetime(2026, 11, 20, 9, 0, 0, tzinfo=dt.UTC)


def fake_clock(*, autojump: bool = True) -> FakeClock:
    return FakeClock(START.timestamp(), autojump=autojump)


class Harness:
    def __init__(self, *, sandbox: moment_sandbox.MomentSandbox, log: eventlog.EventLog,
                 client: moment_client.MomentClient, processor: hinting.HintProcessor,
                 receiver: receiving.Receiver, poller: polling.Poller,
                 clock: FakeClock) -> None:
        self.sandbox = sandbox
        self.log = log
        self.client = client
        self.processor = processor
        self.receiver = receiver
        self.poller = poller
        self.clock = clock

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}/webhooks/moment/{TOKEN}"

    async def settle(self) -> None:
        """Wait until the sandbox delivered every hint and the processor is idle."""
        await self.sandbox.webhooks_idle()
        await self.processor.idle()

    async def events(self, *types: type[ev.Event]) -> list[ev.Event]:
        found = [r.event for r in await self.log.read()]
        return [e for e in found if not types or isinstance(e, types)]


async def raw_answer(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is on a fresh connection to the receiver on ``port`` and read its
    answer until the receiver closes the connection (or breaks it)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        answer = b""
        with anyio.fail_after(30):  # a bound for a broken receiver, not a measurement
            while True:
                try:
                    answer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return answer


@pytest.fixture
def clock() -> FakeClock:
    return fake_clock()


@contextlib.asynccontextmanager
async def running(clock: FakeClock, **processor_options: Any) -> AsyncIterator[Harness]:
    """A started :class:`Harness`; ``processor_options`` override the processor's defaults."""
    options: dict[str, Any] = {"concurrency": 4, "clock": clock, "jitter": lambda: 0.5,
                               "checkpoint_interval_s": 0.0, **processor_options}
    async with moment_sandbox.MomentSandbox.running(
            port=0, company="acme", api_key=API_KEY, now=clock.utcnow) as sb, \
            moment_client.MomentClient(api_url=sb.api_url, company=sb.company,
                                       api_key=secrets.Secret(API_KEY), timeout_s=5.0,
                                       clock=clock) as client, \
            await eventlog.EventLog.open(":memory:", clock=clock) as log:
        processor = hinting.HintProcessor(log=log, client=client, **options)
        receiver = receiving.Receiver(log=log, token=secrets.Secret(TOKEN), host="127.0.0.1",
                                      port=0)
        poller = polling.Poller(log=log, client=client, processor=processor,
                                poll_interval_s=60.0, full_scan_interval_s=3600.0,
                                clock=clock)
        async with anyio.create_task_group() as tg:
            await tg.start(processor.run)
            await tg.start(receiver.serve)
            h = Harness(sandbox=sb, log=log, client=client, processor=processor,
                        receiver=receiver, poller=poller, clock=clock)
            sb.set_webhook(h.url)
            yield h
            tg.cancel_scope.cancel()


@pytest.fixture
async def harness(clock: FakeClock) -> AsyncIterator[Harness]:
    async with running(clock) as h:
        yield h
