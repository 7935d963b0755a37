"""Fixtures: the fake clock (tests/clocks.py), a running Moment sandbox on loopback, and a
client for it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from daemon.core import secrets
from daemon.moment import client as moment_client
from daemon.moment import limiting as moment_limiting
from daemon.sandbox import moment as moment_sandbox
from tests.clocks import FakeClock

API_KEY = "test-moment-key-5f2a"
START = dt.datetime(2026, 11, 20, 9, 0, 0, tzinfo=dt.UTC)


def fake_clock() -> FakeClock:
    """The fake clock at :data:`START`; it moves only when told to."""
    return FakeClock(START.timestamp())


@pytest.fixture
def clock() -> FakeClock:
    return fake_clock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[moment_sandbox.MomentSandbox]:
    async with moment_sandbox.MomentSandbox.running(
            port=0, company="acme", api_key=API_KEY, now=clock.utcnow) as sb:
        yield sb


def make_client(sb: moment_sandbox.MomentSandbox, *, key: str | None = None,
                page_size: int = 100, clock: FakeClock | None = None,
                pace: moment_limiting.Pace | None = None) -> moment_client.MomentClient:
    return moment_client.MomentClient(api_url=sb.api_url, company=sb.company,
                                      api_key=secrets.Secret(key or sb.api_key),
                                      timeout_s=5.0, page_size=page_size,
                                      clock=clock or fake_clock(), pace=pace)


@pytest.fixture
async def client(sandbox: moment_sandbox.MomentSandbox,
                 ) -> AsyncIterator[moment_client.MomentClient]:
    async with make_client(sandbox) as c:
        yield c
