"""Webhook hints over loopback become facts: one fetch, one event, only when content changed."""

from __future__ import annotations

import aiohttp
import anyio
import pytest

from daemon.core import events as ev
from daemon.ingest import hinting
from daemon.ingest.ingesting import Outcome
from daemon.store import eventlog
from tests.ingest.conftest import Harness, fake_clock, running

pytestmark = pytest.mark.anyio


async def test_a_hint_becomes_one_event_with_the_fetched_data(harness: Harness) -> None:
    sb = harness.sandbox
    customer = sb.add_customer(name="Nordlys Arkitekter ApS", customer_number="10001",
                               email="bogholderi@nordlys.dk", organization_number="DK12345678",
                               street="Vestergade 12", postal_code="8000", city="Aarhus")
    await harness.settle()

    hints = await harness.events(ev.HintReceived)
    assert hints == [ev.HintReceived(kind="customer", moment_id=customer.id, number="10001",
                                     event="CREATE_NEW", source="webhook")]
    facts = await harness.events(ev.CustomerUpserted)
    assert facts == [ev.CustomerUpserted(
        moment_id=customer.id, number="10001", name="Nordlys Arkitekter ApS",
        email="bogholderi@nordlys.dk", organization_number="DK12345678",
        street="Vestergade 12", postal_code="8000", city="Aarhus", country_code="DK",
        vat_code="DK", version=1, last_modified="2026-11-20T09:00:00Z")]
    assert harness.log.tables.customers()["10001"].fact == facts[0]
    assert sb.count(path_contains=f"/customers/{customer.id}") == 1
    records = await harness.log.read_entity("customer", "10001")
    fact_record = next(r for r in records if r.type == "customer_upserted")
    assert fact_record.idempotency_key == (
        f"customer:{customer.id}:1:{ev.content_hash(facts[0])}")
    assert sb.webhook_deliveries[-1].status == 202


async def test_a_repeated_hint_for_an_unchanged_object_appends_no_fact(harness: Harness) -> None:
    sb = harness.sandbox
    customer = sb.add_customer(name="Havnens Bådeværft")
    project = sb.add_project(name="Havnebadet", customer_id=customer.id)
    await harness.settle()
    before = await harness.log.count()
    for _ in range(3):
        await sb.fire("customer", customer.id)
        await sb.fire("project", project.id)
        await harness.settle()
    # an unchanged save bumps Moment's version but not the content: no new fact either
    sb.change_customer(customer.id, name="Havnens Bådeværft")
    await harness.settle()
    after = await harness.log.read(since=before)
    assert {r.type for r in after} <= {"hint_received", "hint_watermark_advanced"}
    assert sum(r.type == "hint_received" for r in after) == 7
    assert len(await harness.events(ev.CustomerUpserted)) == 1
    assert len(await harness.events(ev.ProjectUpserted)) == 1


async def test_a_change_and_its_reversal_are_three_facts(harness: Harness) -> None:
    sb = harness.sandbox
    customer = sb.add_customer(name="A/S Alfa", city="Odense")
    await harness.settle()
    sb.change_customer(customer.id, city="Vejle")
    await harness.settle()
    sb.change_customer(customer.id, city="Odense")
    await harness.settle()
    facts = [e for e in await harness.events(ev.CustomerUpserted)
             if isinstance(e, ev.CustomerUpserted)]
    assert [(f.city, f.version) for f in facts] == [("Odense", 1), ("Vejle", 2), ("Odense", 3)]
    assert harness.log.tables.customers()[customer.customer_number].fact.city == "Odense"


async def test_a_thousand_hints_for_ten_objects_cost_two_fetches_each() -> None:
    # time stands still while the burst arrives (the clock moves only when told): each object
    # is fetched on its first hint, and every later hint waits out the refetch interval
    async with running(fake_clock(autojump=False), refetch_interval_s=1.0) as harness:
        await _thousand_hints(harness)


async def _thousand_hints(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    customers = [sb.add_customer(name=f"Kunde {i}") for i in range(10)]
    sb.clear_requests()
    body = [f'{{"event": "UPDATE", "customer": {{"id": {c.id}}}}}'.encode() for c in customers]
    async with aiohttp.ClientSession() as http:
        async def post(i: int) -> int:
            async with http.post(harness.url, data=body[i % 10],
                                 headers={"Content-Type": "application/json"}) as response:
                return response.status

        statuses: list[int] = []

        async def client(start: int) -> None:
            for i in range(start, 1000, 20):
                statuses.append(await post(i))

        async with anyio.create_task_group() as tg:
            for start in range(20):
                tg.start_soon(client, start)
    await harness.clock.run(1.0)  # the refetch interval: each object is fetched once more
    await harness.processor.idle()
    assert statuses == [202] * 1000
    assert len(await harness.events(ev.HintReceived)) == 1000
    assert len(await harness.events(ev.CustomerUpserted)) == 10
    for customer in customers:
        fetches = sb.count(path_contains=f"/customers/{customer.id}")
        assert fetches == 2, (customer.id, fetches)
    last_hint = max(r.seq for r in await harness.log.read() if r.type == "hint_received")
    assert harness.processor.watermark >= last_hint
    assert hinting.saved_watermark(harness.log) >= last_hint


async def test_an_object_moment_no_longer_has_is_recorded_gone(harness: Harness) -> None:
    sb = harness.sandbox
    customer = sb.add_customer(name="Forsvinder ApS", customer_number="10077")
    await harness.settle()
    sb.delete_customer(customer.id)
    await harness.settle()
    gone = await harness.events(ev.EntityGone)
    assert len(gone) == 1 and isinstance(gone[0], ev.EntityGone)
    assert (gone[0].kind, gone[0].key, gone[0].moment_id) == ("customer", "10077", customer.id)
    assert harness.log.tables.customers()["10077"].gone
    # a hint for an id the log never had records nothing
    assert await harness.processor.process("customer", 999_999) == Outcome.UNKNOWN
    assert len(await harness.events(ev.EntityGone)) == 1


async def test_unprocessed_hints_are_read_again_from_the_watermark(harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    customer = sb.add_customer(name="Efter Nedbrud ApS")
    async with await eventlog.EventLog.open(":memory:", clock=harness.clock) as log:
        async def run_once() -> hinting.HintProcessor:
            processor = hinting.HintProcessor(log=log, client=harness.client,
                                              clock=harness.clock, checkpoint_interval_s=0.0)
            async with anyio.create_task_group() as tg:
                await tg.start(processor.run)
                await processor.idle()
                tg.cancel_scope.cancel()
            return processor

        await log.append(ev.HintReceived(kind="customer", moment_id=customer.id),
                         idempotency_key="hint:first")
        first = await run_once()
        saved = hinting.saved_watermark(log)
        assert saved == first.watermark >= 1
        # hints committed while no processor ran (a daemon stopped before processing them)
        sb.change_customer(customer.id, name="Efter Nedbrud A/S")
        await log.append(ev.HintReceived(kind="customer", moment_id=customer.id),
                         idempotency_key="hint:second")
        before = sb.count(path_contains=f"/customers/{customer.id}")
        second = await run_once()
        # only the hint after the watermark was fetched again
        assert sb.count(path_contains=f"/customers/{customer.id}") == before + 1
        names = [r.event.name for r in await log.read()
                 if isinstance(r.event, ev.CustomerUpserted)]
        assert names == ["Efter Nedbrud ApS", "Efter Nedbrud A/S"]
        assert hinting.saved_watermark(log) == second.watermark > saved


async def test_a_log_from_before_the_watermark_event_keeps_its_watermark(
        harness: Harness) -> None:
    sb = harness.sandbox
    sb.set_webhook(None)
    old = sb.add_customer(name="Gammel ApS")
    new = sb.add_customer(name="Ny ApS")
    async with await eventlog.EventLog.open(":memory:", clock=harness.clock) as log:
        # an older daemon processed the first hint and kept its watermark as a poll cursor
        await log.append(ev.HintReceived(kind="customer", moment_id=old.id),
                         idempotency_key="hint:old")
        await log.append(ev.PollCursorAdvanced(kind="hints", cursor="1"),
                         idempotency_key="cursor:hints:1")
        await log.append(ev.HintReceived(kind="customer", moment_id=new.id),
                         idempotency_key="hint:new")
        processor = hinting.HintProcessor(log=log, client=harness.client,
                                          clock=harness.clock, checkpoint_interval_s=0.0)
        assert hinting.saved_watermark(log) == 1 and processor.consumer.position == 1
        async with anyio.create_task_group() as tg:
            await tg.start(processor.run)
            await processor.idle()
            tg.cancel_scope.cancel()
        assert sb.count(path_contains=f"/customers/{old.id}") == 0
        assert sb.count(path_contains=f"/customers/{new.id}") == 1
        assert hinting.saved_watermark(log) == processor.watermark >= 3


async def test_a_renumbered_customer_leaves_its_old_number_gone(harness: Harness) -> None:
    sb = harness.sandbox
    customer = sb.add_customer(name="Omnummereret ApS", customer_number="10500")
    await harness.settle()
    sb.change_customer(customer.id, customer_number="10501")
    await harness.settle()
    customers = harness.log.tables.customers()
    assert customers["10500"].gone and not customers["10501"].gone
    assert customers["10501"].fact.moment_id == customer.id
    gone = [e for e in await harness.events(ev.EntityGone) if isinstance(e, ev.EntityGone)]
    assert [(e.key, e.moment_id) for e in gone] == [("10500", customer.id)]
    assert "renumbered this customer from 10500 to 10501" in gone[0].detail
    # another customer may take the old number: it is managed again, under the new owner
    other = sb.add_customer(name="Ny Ejer ApS", customer_number="10500")
    await harness.settle()
    assert not customers["10500"].gone and customers["10500"].fact.moment_id == other.id
    assert len(await harness.events(ev.EntityGone)) == 1
