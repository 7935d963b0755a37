"""Idempotency-Key: a retried write replays the first answer for an hour
(``X-ResultFromCache: true``) without applying it again; an unknown outcome (answer dropped
after commit, timeout) is resolved by sending the same intent with the same key."""

from __future__ import annotations

import pytest

from daemon.economic import errors, payloads
from daemon.sandbox.economic import EconomicSandbox
from tests.clocks import FakeClock
from tests.economic.conftest import make_client, validate_traffic

pytestmark = pytest.mark.anyio


def project(name: str) -> payloads.ProjectWrite:
    return payloads.ProjectWrite(name=name, projectGroupNumber=1, customerNumber=1)


async def test_same_key_replays_without_applying(sandbox: EconomicSandbox,
                                                 clock: FakeClock) -> None:
    sandbox.agreement.add_customers(1)
    async with make_client(sandbox, clock) as client:
        a = await client.create_project(project("A"), idempotency_key="k-a")
        again = await client.create_project(project("A"), idempotency_key="k-a")
        other = await client.create_project(project("A"), idempotency_key="k-b")
        assert client.counters.replayed == 1
    assert a == again != other
    assert sorted(sandbox.agreement.projects) == [a, other]
    assert [s.from_cache for s in sandbox.served] == [False, True, False]
    assert [s.idempotency_key for s in sandbox.served] == ["k-a", "k-a", "k-b"]
    validate_traffic(sandbox)


async def test_replay_lasts_an_hour(sandbox: EconomicSandbox, clock: FakeClock) -> None:
    sandbox.agreement.add_customers(1)
    async with make_client(sandbox, clock) as client:
        first = await client.create_project(project("A"), idempotency_key="k")
        clock.advance(3599)
        assert await client.create_project(project("A"), idempotency_key="k") == first
        clock.advance(2)
        assert await client.create_project(project("A"), idempotency_key="k") != first
    assert len(sandbox.agreement.projects) == 2


async def test_answer_dropped_after_commit_is_resolved_by_resending(
        sandbox: EconomicSandbox, clock: FakeClock) -> None:
    sandbox.agreement.add_customers(1)
    sandbox.inject("drop")
    async with make_client(sandbox, clock) as client:
        with pytest.raises(errors.TransportError) as ei:
            await client.create_project(project("Dropped"), idempotency_key="k-drop")
        assert ei.value.retryable and ei.value.status == 0
        assert [p["name"] for p in sandbox.agreement.projects.values()] == ["Dropped"]
        number = await client.create_project(project("Dropped"), idempotency_key="k-drop")
    assert list(sandbox.agreement.projects) == [number]
    assert sandbox.served[-1].from_cache


async def test_legacy_put_replays_and_get_ignores_the_key(sandbox: EconomicSandbox,
                                                          clock: FakeClock) -> None:
    body = payloads.CustomerWrite(
        customerNumber=3, name="C", currency="DKK",
        customerGroup=payloads.CustomerGroupRef(customerGroupNumber=1),
        paymentTerms=payloads.PaymentTermsRef(paymentTermsNumber=1),
        vatZone=payloads.VatZoneRef(vatZoneNumber=1))
    async with make_client(sandbox, clock) as client:
        first = await client.put_customer(body, idempotency_key="put-3")
        sandbox.agreement.edit_customer(3, {"name": "Changed by a person"})
        second = await client.put_customer(body, idempotency_key="put-3")
        assert first.created and second.created  # the first answer, replayed
        assert sandbox.agreement.customers[3]["name"] == "Changed by a person"
        with pytest.raises(ValueError, match="idempotency_key"):
            await client.put_customer(body, idempotency_key="")
    validate_traffic(sandbox)


async def test_timeout_is_retryable_and_unknown(sandbox: EconomicSandbox,
                                                clock: FakeClock) -> None:
    sandbox.faults.timeout_s = 0.3
    sandbox.inject("timeout")
    async with make_client(sandbox, clock, timeout_s=0.05) as client:
        with pytest.raises(errors.Timeout) as ei:
            await client.get_self()
        assert ei.value.retryable and isinstance(ei.value, errors.TransportError)
        assert client.counters.calls[("GET /self", 0)] == 1


async def test_a_refused_intent_replays_its_refusal_unless_configured_not_to(
        sandbox: EconomicSandbox, clock: FakeClock) -> None:
    async with make_client(sandbox, clock) as client:
        for _ in range(2):  # customer 1 does not exist yet: 400, then the same 400 replayed
            with pytest.raises(errors.ValidationError):
                await client.create_project(project("P"), idempotency_key="k-refused")
        sandbox.agreement.add_customers(1)
        with pytest.raises(errors.ValidationError):
            await client.create_project(project("P"), idempotency_key="k-refused")
        assert await client.create_project(project("P"), idempotency_key="k-new") == 1
        sandbox.idempotency_cache_errors = False
        with pytest.raises(errors.ValidationError):
            await client.create_project(payloads.ProjectWrite(
                name="Q", projectGroupNumber=1, customerNumber=2), idempotency_key="k-q")
        sandbox.agreement.add_customers(1, start=2)
        assert await client.create_project(payloads.ProjectWrite(
            name="Q", projectGroupNumber=1, customerNumber=2), idempotency_key="k-q") == 2
    assert [s.from_cache for s in sandbox.served] == [False, True, True, False, False, False]
