"""Consumers of the log pull from their position; the log calls nobody (on a file and on
``:memory:``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import pytest

from daemon.core import events as ev
from daemon.store import consuming, eventlog, opening, records
from tests.clocks import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["file", "memory"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[eventlog.EventLog]:
    path = tmp_path / "events.db" if request.param == "file" else opening.MEMORY
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as opened:
        yield opened


def customer(n: int) -> ev.CustomerUpserted:
    return ev.CustomerUpserted(moment_id=n, number=str(n), name=f"Kunde {n}")


class Heard:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.failing = False

    async def __call__(self, batch: Sequence[records.Committed]) -> None:
        self.batches.append([c.seq for c in batch])
        if self.failing:
            raise RuntimeError("a bug in a consumer")

    @property
    def seqs(self) -> list[int]:
        return [seq for batch in self.batches for seq in batch]


async def test_a_consumer_is_woken_by_each_commit_and_hears_it_once(
        log: eventlog.EventLog) -> None:
    await log.append(customer(1), idempotency_key="a")
    heard = Heard()
    consumer = consuming.Consumer(name="t", log=log, handle=heard, clock=FakeClock())
    assert consumer.position == 1  # by default from the head
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        await log.append(customer(2), idempotency_key="b")
        await log.append(customer(2), idempotency_key="b")  # a duplicate commits nothing
        await log.append_many([(customer(3), "c", None), (customer(4), "d", None)])
        await consumer.caught_up()
        tg.cancel_scope.cancel()
    assert heard.seqs == [2, 3, 4]
    assert consumer.position == 4 and consumer.lag == 0


async def test_a_consumer_resumes_from_its_recorded_position(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
        await log.append_many([(customer(n), f"k{n}", None) for n in range(1, 6)])
    async with await eventlog.EventLog.open(path, clock=FakeClock()) as log:
        # what the earlier process appended is read from the file, two at a time
        heard = Heard()
        consumer = consuming.Consumer(name="t", log=log, handle=heard, clock=FakeClock(),
                                      position=2, batch=2)
        assert consumer.lag == 3
        assert await consumer.pull()
        await log.append(customer(6), idempotency_key="k6")
        assert await consumer.pull()
    assert heard.batches == [[3, 4], [5], [6]]
    assert consumer.position == 6


async def test_a_failing_consumer_fails_no_appender_and_starts_again_from_its_position(
        log: eventlog.EventLog) -> None:
    clock = FakeClock()
    heard = Heard()
    heard.failing = True
    consumer = consuming.Consumer(name="t", log=log, handle=heard, clock=clock)
    async with anyio.create_task_group() as tg:
        await tg.start(consumer.run)
        first = await log.append(customer(1), idempotency_key="a")
        await clock.asked(1.0)  # the consumer failed and waits out its backoff
        more = await log.append_many([(customer(2), "b", None), (customer(3), "c", None)])
        assert (first.seq, [m.seq for m in more]) == (1, [2, 3])  # every append went through
        assert consumer.position == 0 and consumer.failures == 1
        assert consumer.last_error == "RuntimeError: a bug in a consumer"
        clock.advance(1.0)
        await clock.asked(2.0)  # failed again, from the same position: a longer wait
        heard.failing = False  # the cause is gone
        clock.advance(2.0)
        await consumer.caught_up()
        tg.cancel_scope.cancel()
    assert [batch[0] for batch in heard.batches] == [1, 1, 1]
    assert heard.batches[-1] == [1, 2, 3]
    assert clock.sleeps == [1.0, 2.0]
    assert clock.monotonic() == 3.0
    assert consumer.position == 3 and consumer.failures == 0
